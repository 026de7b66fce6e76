"""Loads exported artifacts in a fresh process, as a server or an app would, and runs them.

    python load_artifacts.py REQUEST.json  ->  prints one JSON object (the results)

Imports only tensorflow and tensorflow_text for the SavedModels, and for the TFLite exports
the `tflite_translator.py` shipped beside them (numpy + ai-edge-litert); never keras_s2s.
"""

import json
import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)


def strings(tensor):
    return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(tensor.numpy()).tolist()


def run_saved_model(path, request):
    loaded = tf.saved_model.load(path)
    out = {"signatures": sorted(loaded.signatures.keys())}
    greedy = loaded.signatures["serving_default"]
    out["greedy"] = [
        strings(greedy(text=tf.constant(batch))["translations"]) for batch in request["batches"]
    ]
    beam = loaded.signatures["beam_search"](
        text=tf.constant(request["batches"][0]),
        length_penalty=tf.constant(request["length_penalty"], tf.float32),
        num_results=tf.constant(request["num_results"], tf.int32),
    )
    out["beam"] = strings(beam["translations"])
    out["beam_scores"] = beam["scores"].numpy().tolist()
    if "edge_cases" in request:
        texts = [bytes.fromhex(h) for h in request["edge_cases"]]
        result = greedy(text=tf.constant(texts))
        out["edge_cases"] = {
            "translations": [t.decode("utf-8", "replace") for t in result["translations"].numpy()],
            "truncated": result["truncated"].numpy().tolist(),
            "invalid_utf8": result["invalid_utf8"].numpy().tolist(),
        }
    if "attention" in out["signatures"]:
        result = loaded.signatures["attention"](text=tf.constant(request["batches"][0]))
        out["attention_shape"] = list(result["attention_weights"].shape)
        out["attention_row_sums"] = result["attention_weights"].numpy().sum(-1).tolist()
    return out


def run_tflite(directory, request):
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
    step = translator.signature("decode_step")(token_ids=bos, **state)
    out["first_step_logits"] = step["logits"].tolist()
    out["state_names"] = sorted(state)
    sys.path.remove(directory)
    sys.modules.pop("tflite_translator")
    return out


def main():
    request = json.loads(open(sys.argv[1]).read())
    results = {}
    for name, job in request["jobs"].items():
        results[name] = {
            "savedmodel": run_saved_model(job["savedmodel"], job),
            "tflite": run_tflite(job["tflite"], job),
        }
    results["imported_keras_s2s"] = any(m.startswith("keras_s2s") for m in sys.modules)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
