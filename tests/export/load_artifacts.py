"""Loads exported artifacts in a fresh process, as a server or an app would, and runs them.

    python load_artifacts.py savedmodel REQUEST.json  ->  prints one JSON object (the results)
    python load_artifacts.py tflite REQUEST.json

`savedmodel` imports only tensorflow and tensorflow_text. `tflite` first makes tensorflow,
tensorflow_text, keras and keras_s2s unimportable (a meta path hook: importing any of them
raises ImportError), then runs the `tflite_translator.py` shipped beside the TFLite files, which
must need only numpy, ai-edge-litert and sentencepiece. Neither imports keras_s2s.
"""

import importlib.abc
import json
import sys

BLOCKED = ("tensorflow", "tensorflow_text", "keras", "keras_s2s", "tf_keras")


class BlockImports(importlib.abc.MetaPathFinder):
    """Makes `BLOCKED` packages unimportable, as if they were not installed; records tries."""

    def __init__(self):
        self.attempts = []

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            self.attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None


def run_saved_model(path, request):
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)

    def strings(tensor):
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(tensor.numpy()).tolist()

    loaded = tf.saved_model.load(path)
    out = {"signatures": sorted(loaded.signatures.keys())}
    greedy = loaded.signatures["serving_default"]
    out["greedy"] = [
        strings(greedy(text=tf.constant(batch))["translations"]) for batch in request["batches"]
    ]
    beam_options = {
        "length_penalty": tf.constant(request["length_penalty"], tf.float32),
        "num_results": tf.constant(request["num_results"], tf.int32),
    }
    beam = loaded.signatures["beam_search"](text=tf.constant(request["batches"][0]), **beam_options)
    out["beam"] = strings(beam["translations"])
    out["beam_scores"] = beam["scores"].numpy().tolist()
    texts = [bytes.fromhex(h) for h in request["edge_cases"]]
    result = greedy(text=tf.constant(texts))
    out["edge_cases"] = {
        "translations": strings(result["translations"]),
        "truncated": result["truncated"].numpy().tolist(),
        "invalid_utf8": result["invalid_utf8"].numpy().tolist(),
        "alone": strings(greedy(text=tf.constant([request["valid_edge_case"]]))["translations"]),
    }
    # An empty batch (B = 0) to every signature: the shape and dtype of each output.
    empty = tf.constant([], tf.string)
    out["empty"] = {}
    sampling = {
        "temperature": tf.constant(1.0), "top_k": tf.constant(0), "top_p": tf.constant(1.0),
    }  # fmt: skip
    no_phrases = tf.zeros([0, 2], tf.string)

    def controls(prefix, min_length_ratio=0.0, max_length_ratio=0.0, n=0, banned_words=()):
        return {
            "prefix": tf.constant(prefix, tf.string),
            "min_length_ratio": tf.constant(min_length_ratio, tf.float32),
            "max_length_ratio": tf.constant(max_length_ratio, tf.float32),
            "no_repeat_ngram_size": tf.constant(n, tf.int32),
            "banned_words": tf.constant(list(banned_words), tf.string, shape=[len(banned_words)]),
        }

    options = {
        "beam_search": beam_options,
        "score": {"target": empty},
        "align": {"target": empty},
        "translate": controls([]),
        "sample": {**sampling, "seed": tf.constant(0), **controls([])},
        "constrained_beam_search": {
            "constraints": no_phrases,
            **beam_options,
            **controls([]),
        },  # fmt: skip
    }
    for name in out["signatures"]:
        result = loaded.signatures[name](text=empty, **options.get(name, {}))
        out["empty"][name] = {k: [list(v.shape), v.dtype.name] for k, v in result.items()}
    # Sampling, twice with seed 7 and once with seed 8; the constrained beam search of the
    # request's prefixes and phrases; alignments of the greedy translations.
    first = tf.constant(request["batches"][0])
    if "sample" in out["signatures"]:  # not in every export (`signatures=`)
        off = controls([""] * len(first.numpy()))
        out["samples"] = [
            strings(
                loaded.signatures["sample"](text=first, **sampling, seed=tf.constant(seed), **off)[
                    "translations"
                ]
            )
            for seed in (7, 7, 8)
        ]
        phrases = request["constraints"]
        most = max(len(p) for p in phrases)
        # The request's prefixes and controls; alone, and with the request's phrases.
        settings = controls(request["prefixes"], **request["controls"])
        out["translate"] = strings(
            loaded.signatures["translate"](text=first, **settings)["translations"]
        )
        constrained = loaded.signatures["constrained_beam_search"](
            text=first,
            constraints=tf.constant([p + [""] * (most - len(p)) for p in phrases]),
            **beam_options,
            **settings,
        )
        out["errors"] = {}  # A bad setting fails the request, named.
        for name, call, bad in [
            ("sample", {**sampling, "seed": tf.constant(1), **off}, {"temperature": 0.0}),
            ("translate", off, {"min_length_ratio": 2.0, "max_length_ratio": 1.0}),
            ("translate", off, {"no_repeat_ngram_size": -1}),
            ("translate", off, {"prefix": ["1"]}),
        ]:
            bad = {k: tf.constant(v) for k, v in bad.items()}
            try:
                loaded.signatures[name](text=first, **{**call, **bad})
                out["errors"][str(sorted(bad))] = ""
            except tf.errors.InvalidArgumentError as e:
                out["errors"][str(sorted(bad))] = e.message
        out["constrained"] = strings(constrained["translations"])
        out["constrained_scores"] = constrained["scores"].numpy().tolist()
    if "align" in out["signatures"]:
        aligned = loaded.signatures["align"](text=first, target=tf.constant(out["greedy"][0]))
        out["alignments"] = aligned["alignments"].numpy().tolist()
    # Scores of the greedy translations of the first batch, given as targets.
    scored = loaded.signatures["score"](
        text=tf.constant(request["batches"][0]), target=tf.constant(out["greedy"][0])
    )
    out["score"] = {k: v.numpy().tolist() for k, v in scored.items()}
    if "attention" in out["signatures"]:
        result = loaded.signatures["attention"](text=tf.constant(request["batches"][0]))
        out["attention_shape"] = list(result["attention_weights"].shape)
        out["attention_row_sums"] = result["attention_weights"].numpy().sum(-1).tolist()
    return out


def run_tflite(directory, request):
    import numpy as np

    sys.path.insert(0, directory)
    from tflite_translator import TFLiteTranslator

    translator = TFLiteTranslator(directory)
    out = {"translations": [translator.translate(batch) for batch in request["batches"]]}
    runs = []
    for source_ids in request["source_ids"]:
        result = translator.translate_ids(np.array(source_ids, np.int32))
        runs.append(
            {"token_ids": result["token_ids"].tolist(), "logits": result["logits"].tolist()}
        )
    out["ids"] = runs
    # An app's own loop: encode once, then decode_step from bos gives translate's first logits.
    first = np.array(request["source_ids"][0], np.int32)
    state = translator.signature("encode")(encoder_token_ids=first)
    bos = np.full(len(first), translator.bos_id, np.int32)
    step = translator.signature("decode_step")(token_ids=bos, step=np.int32(0), **state)
    out["first_step_logits"] = step["logits"].tolist()
    out["state_names"] = sorted(state)
    texts = [bytes.fromhex(h) for h in request["edge_cases"]]
    out["edge_cases"] = translator.translate(texts)
    out["edge_alone"] = translator.translate([request["valid_edge_case"]])
    empty = translator.translate_ids(np.zeros([0, translator.source_length], np.int32))
    out["empty"] = {
        "translate": translator.translate([]),
        "ids": {k: [list(v.shape), v.dtype.name] for k, v in empty.items()},
    }
    if "quantized" in request:
        out["quantized"] = run_quantized(directory, request, TFLiteTranslator)
    sys.path.remove(directory)
    sys.modules.pop("tflite_translator")
    return out


def run_quantized(directory, request, TFLiteTranslator):
    """Each variant: token ids at two batch sizes, and translations of more texts."""
    import numpy as np

    texts = request["quantized"]["texts"]
    out = {}
    for q in ["float32", *request["quantized"]["variants"]]:
        translator = TFLiteTranslator(directory, q)
        runs = []
        for source_ids in request["source_ids"]:  # batch sizes 3 and 7, on one interpreter
            result = translator.translate_ids(np.array(source_ids, np.int32))
            runs.append(
                {
                    "token_ids": result["token_ids"].tolist(),
                    "dtype": result["token_ids"].dtype.name,
                    "vocabulary_size": result["logits"].shape[-1],
                    "finite_scores": bool(np.isfinite(result["scores"]).all()),
                }
            )
        out[q] = {"runs": runs, "translations": translator.translate(texts)}
    return out


def main():
    kind, request_file = sys.argv[1], sys.argv[2]
    if kind == "tflite":
        blocker = BlockImports()
        sys.meta_path.insert(0, blocker)
    request = json.loads(open(request_file).read())
    run = run_saved_model if kind == "savedmodel" else run_tflite
    results = {name: run(job[kind], job) for name, job in request["jobs"].items()}
    results["imported_keras_s2s"] = any(m.startswith("keras_s2s") for m in sys.modules)
    if kind == "tflite":
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            importable = False
        else:
            importable = True
        results["tensorflow_importable"] = importable
        results["loaded"] = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
        results["blocked_attempts"] = sorted(set(blocker.attempts) - {"tensorflow"})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
