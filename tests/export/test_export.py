"""Export parity: Keras == SavedModel == TFLite for every model family, on trained models.

One module fixture trains a small model per family on a generated addition file (random tiny
models have near-tied logits), exports both formats, and loads every artifact in fresh
processes (`load_artifacts.py`): the SavedModels in one that imports only tensorflow and
tensorflow_text, the TFLite files in one where tensorflow cannot be imported, through the
shipped wrapper alone. `saved_model_cli` runs beside them.
"""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.errors import ExportError, RunDirectoryError
from keras_s2s.export import custom_ops, export, export_saved_model, export_tflite
from keras_s2s.export.savedmodel import EXPORT_INFO_FILE
from keras_s2s.export.tflite import TFLITE_INFO_FILE, _Module, convert
from keras_s2s.training import train
from keras_s2s.translator import DecodingControls, Translator

HERE = Path(__file__).resolve().parent

FAMILIES = {
    "plain-reverse": {"model.reverse_source": True},
    "peeky-gru-bidirectional": {
        "model.decoder": "peeky",
        "model.cell": "gru",
        "model.bidirectional": True,
        "model.merge_mode": "sum",
    },
    "luong-dot": {"model.decoder": "luong", "model.attention_score": "dot"},
    "luong-general-deep": {
        "model.decoder": "luong",
        "model.attention_score": "general",
        "model.num_layers": 2,
        "model.residual": True,
    },
    "luong-scaled-rnn": {
        "model.decoder": "luong",
        "model.attention_score": "scaled",
        "model.cell": "rnn",
    },
    "luong-concat": {"model.decoder": "luong", "model.attention_score": "concat"},
    # The DLFS2 setting: fixed-width source read padding included, reversed whole.
    "luong-dot-fixed-width": {
        "model.decoder": "luong",
        "model.attention_score": "dot",
        "model.reverse_source": True,
        "model.mask_source_padding": False,
    },
    # The Transformer family: fixed-size K/V cache in the decode loop, cross-attention keys and
    # values computed once per source.
    "transformer": {
        "model.type": "transformer",
        "model.hidden_dim": 32,
        "model.intermediate_dim": 64,
        "model.num_heads": 2,
        "model.num_encoder_layers": 1,
        "model.num_decoder_layers": 2,
        "model.dropout": 0.0,
        "training.epochs": 6,
        "training.learning_rate": 0.003,
    },
    # SentencePiece tokenization (tensorflow-text in the SavedModel, sentencepiece in the
    # wrapper) under Bahdanau et al.'s setting: a bidirectional GRU encoder under additive
    # attention.
    "sentencepiece": {
        "model.decoder": "bahdanau",
        "model.cell": "gru",
        "model.bidirectional": True,
        "model.merge_mode": "sum",
        "data.tokenizer": "sentencepiece",
        "data.vocabulary_size": 40,
    },
}
# The slow families' export paths in the default run: tiny (embedding 8, width 16, 2 epochs),
# with variants combined in one model where they are independent (the score function, the
# cell, the depth, the source reading and the training policy), which is what the default run
# can afford.
TINY = {"model.embedding_dim": 8, "model.hidden_dim": 16, "training.epochs": 2}
FAMILIES |= {
    # The Peeky decoder over a deep residual stack of plain RNN cells reading the source
    # reversed, trained under mixed_bfloat16: the run reloads in it, and exports compute in
    # float32.
    "tiny-peeky-rnn-deep-reverse-bfloat16": {
        "model.decoder": "peeky",
        "model.reverse_source": True,
        "model.cell": "rnn",
        "model.num_layers": 2,
        "model.residual": True,
        "training.precision": "mixed_bfloat16",
        **TINY,
    },
    # The DLFS2 setting (a fixed-width source, padding included, reversed whole) under Luong's
    # concat score.
    "tiny-luong-concat-fixed-width": {
        **FAMILIES["luong-dot-fixed-width"],
        "model.attention_score": "concat",
        **TINY,
    },
}

# Most families export the signatures every family had before the decoding controls
# (`signatures=`); `sample`, `constrained_beam_search` and `align` (model-independent loops
# over the `decode_step` every signature uses) are exported and checked on the Transformer and
# the SentencePiece family (Bahdanau attention; multi-piece phrases and prefixes tokenized in
# the graph) in the default run, on every family in the slow run (the default run's budget).
BASE_SIGNATURES = ("serving_default", "beam_search", "score")
ALL_SIGNATURE_FAMILIES = ("transformer", "sentencepiece")


def signatures_of(family: str, with_slow: bool = False) -> tuple[str, ...] | None:
    """The `signatures` option a family is exported with (None: all)."""
    if with_slow or family in ALL_SIGNATURE_FAMILIES:
        return None
    overrides = FAMILIES[family]
    attention = overrides.get("model.decoder") in ("luong", "bahdanau")
    return BASE_SIGNATURES + ("attention",) * attention


BATCHES = [["16+75", "52+7", "9+1"], ["1+1", "99+99", "40+2", "7+70", "3+33", "12+21", "88+8"]]
# Empty, whitespace only, 10,000 characters, characters not in the vocabulary, invalid UTF-8,
# and a valid sentence, all in one batch.
VALID_EDGE_CASE = "5+5"
EDGE_CASES = [
    b"", b"   ", b"1" * 10_000, "\u00e9\u4e2d+\U0001f600".encode(), b"12+\xff\xfe3",
    VALID_EDGE_CASE.encode(),
]  # fmt: skip
LENGTH_PENALTY, NUM_RESULTS, BEAM_SIZE = 0.6, 2, 3
# The constrained beam search of BATCHES[0]: a prefix, two phrases, none; with and without
# phrases, under the length and repetition controls.
PREFIXES, CONSTRAINTS = ["1", "", ""], [[], ["9", "0"], []]
CONTROLS = {"min_length_ratio": 0.5, "max_length_ratio": 2.0, "n": 2, "banned_words": ["0"]}
# Exported as a SavedModel alone first (version 1), then in both formats (version 2 of both).
# Attention scores (and a deep residual stack, the fixed-width source of the DLFS2 setting,
# the Peeky GRU bidirectional family) whose export shares its paths with the families kept
# but their score function (depth, source padding, cell and decoder): trained and exported
# only when slow tests are selected (`pytest -m slow`), for the default run's budget; their
# tiny versions (`TINY`) run in the default run.
SLOW_FAMILIES = (
    # The plain decoder: the path of the Peeky one without the context at every step.
    "plain-reverse",
    # Luong attention is exported in the default run by `tiny-luong-concat-fixed-width`.
    "luong-dot",
    "luong-scaled-rnn",
    "luong-concat",
    "luong-general-deep",
    "luong-dot-fixed-width",
    "peeky-gru-bidirectional",
)
LINKED_FAMILY = "tiny-peeky-rnn-deep-reverse-bfloat16"
# Exported with float16 and int8 TFLite variants too: an attention family, and in the slow run
# one without attention.
QUANTIZED_FAMILIES = ("plain-reverse", "tiny-luong-concat-fixed-width")
# Loaded with the session-based loader of TF Serving (`saved_model_cli run`) too (one family:
# two processes of its own each, for the default run's budget; the loader is model-independent).
CLI_FAMILIES = ("transformer",)
AGREEMENT_TEXTS = [f"{a}+{b}" for a in range(3, 100, 8) for b in range(0, 100, 10)]


def addition_file(path: Path, n=800, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 100, n), rng.integers(0, 100, n)
    path.write_text("".join(f"{x}+{y}_{x + y}\n" for x, y in zip(a, b, strict=True)))
    return path


def small_config(data_file, overrides):
    """The addition pipeline on `data_file`, small; `model.type` in `overrides` replaces the
    whole `[model]` section (another family's arguments do not apply)."""
    pipeline = load_pipeline("addition_seq2seq")
    if "model.type" in overrides:
        pipeline["model"] = {"type": overrides["model.type"]}
    seq2seq = pipeline["model"]["type"] == "seq2seq"
    settings = {
        "data.source": "dlfs2",
        "data.train": [str(data_file)],
        "data.test_size": 40,
        "data.max_source_length": 7,
        "data.max_target_length": 4,
        **({"model.embedding_dim": 16, "model.hidden_dim": 32} if seq2seq else {}),
        "training.epochs": 4,
        "training.batch_size": 32,
        "training.learning_rate": 0.01,
    }
    return apply_overrides(pipeline, {**settings, **overrides})


def decoding_controls(controls: dict) -> DecodingControls:
    """The `DecodingControls` of the SavedModel's control inputs `controls`."""
    names = {"n": "no_repeat_ngram_size"}
    return DecodingControls(**{names.get(k, k): v for k, v in controls.items()})


def keras_greedy_with_logits(translator):
    """The Keras model's greedy ids and per-step logits, by the same loop the TFLite file runs
    (one trace for every batch size)."""
    module = _Module(
        translator.model,
        translator.max_source_length,
        translator.max_target_length + 1,
        translator.target_tokenizer.special_ids,
    )

    def run(source_ids):
        out = module.translate(tf.constant(source_ids, tf.int32))
        return out["token_ids"].numpy(), out["logits"].numpy()

    return run


def fixed_source_ids(translator, texts):
    ids = translator.encode_sources(tf.constant(texts)).numpy()
    width = translator.max_source_length
    return np.pad(ids, [[0, 0], [0, width - ids.shape[1]]])


def _start(args):
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process):
    out, err = process.communicate()
    return {"returncode": process.returncode, "stdout": out, "stderr": err}


def _saved_model_cli(path):
    """`saved_model_cli show` (bare), and `run` through its Python entry point after importing
    tensorflow_text (for its ops): the session-based loader TF Serving uses."""
    show = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all",
            "--dir", path]  # fmt: skip
    code = (
        "import sys, tensorflow_text\n"
        "from tensorflow.python.tools.saved_model_cli import main\n"
        "sys.argv = ['saved_model_cli', 'run', '--dir', sys.argv[1], '--tag_set', 'serve',\n"
        "            '--signature_def', 'serving_default', '--input_exprs',\n"
        '            \'text=["16+75", "52+7"]\']\n'
        "main()\n"
    )
    return _start(show), _start([sys.executable, "-c", code, path])


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def exported(tmp_path_factory, request):
    """Trains, exports and loads every family (about 4-5 minutes on 2 cores)."""
    root = tmp_path_factory.mktemp("export")
    data_file = addition_file(root / "addition.txt")
    output_root = root / "saved_models"
    jobs, keras_side = {}, {}
    export_logs = _Records()  # what TensorFlow logs (Python logging) while exporting
    with_slow = "not slow" not in (request.config.getoption("markexpr") or "")
    for family, overrides in FAMILIES.items():
        if family in SLOW_FAMILIES and not with_slow:
            continue
        run_dir = root / "runs" / family
        train(small_config(data_file, overrides), run_dir, verbose=0)
        options = {
            "output_root": output_root, "name": family, "beam_size": BEAM_SIZE,
            "signatures": signatures_of(family, with_slow),
        }  # fmt: skip
        quantizations = (
            ("float32", "float16", "int8") if family in QUANTIZED_FAMILIES else ("float32",)
        )
        logging.getLogger("tensorflow").addHandler(export_logs)
        try:
            first = None
            if family == LINKED_FAMILY:
                first = export(run_dir, formats=("savedmodel",), **options)
            paths = export(run_dir, quantizations=quantizations, **options)
        finally:
            logging.getLogger("tensorflow").removeHandler(export_logs)
        # Exports compute in float32 whatever the training policy: they equal this model.
        translator = Translator.from_run_directory(run_dir, dtype="float32")
        source_ids = [fixed_source_ids(translator, batch) for batch in BATCHES]
        keras_side[family] = {
            "greedy": [translator.translate(batch) for batch in BATCHES],
            "beam": translator.translate_nbest(
                BATCHES[0], beam_size=BEAM_SIZE, num_results=NUM_RESULTS,
                length_penalty=LENGTH_PENALTY,
            ),
            "ids": list(map(keras_greedy_with_logits(translator), source_ids)),
            "alone": translator.translate([VALID_EDGE_CASE]),
            "score": translator.score(BATCHES[0], translator.translate(BATCHES[0])),
            "signatures": options["signatures"],
            **({} if options["signatures"] else {
                "samples": [
                    translator.detokenize_nbest(translator.sample_ids(ids, seed=seed)[0]).numpy()
                    for ids, seed in ((source_ids[0], 7), (source_ids[0], 8))
                ],
                "translate": translator.translate(
                    BATCHES[0], prefixes=PREFIXES, controls=decoding_controls(CONTROLS)
                ),
                "constrained": translator.translate_nbest(
                    BATCHES[0], BEAM_SIZE, NUM_RESULTS, LENGTH_PENALTY, prefixes=PREFIXES,
                    constraints=CONSTRAINTS, controls=decoding_controls(CONTROLS),
                ),
                "alignments": translator.align(BATCHES[0], translator.translate(BATCHES[0]))
                if translator.has_attention
                else None,
            }),
            "run_dir": run_dir,
            "paths": paths,
            "first_paths": first,
            "has_attention": translator.has_attention,
            "max_length": translator.max_target_length + 1,
            "source_length": translator.max_source_length,
            "trained_policy": Translator.from_run_directory(run_dir).model.dtype_policy.name,
        }  # fmt: skip
        jobs[family] = {
            "savedmodel": str(paths["savedmodel"]),
            "tflite": str(paths["tflite"]),
            "batches": BATCHES,
            "source_ids": [ids.tolist() for ids in source_ids],
            "length_penalty": LENGTH_PENALTY,
            "num_results": NUM_RESULTS,
            "edge_cases": [t.hex() for t in EDGE_CASES],
            "valid_edge_case": VALID_EDGE_CASE,
            "prefixes": PREFIXES,
            "constraints": CONSTRAINTS,
            "controls": CONTROLS,
        }
        if family in QUANTIZED_FAMILIES:
            jobs[family]["quantized"] = {"variants": ["float16", "int8"], "texts": AGREEMENT_TEXTS}
    request = root / "request.json"
    request.write_text(json.dumps({"jobs": jobs}))
    script = str(HERE / "load_artifacts.py")
    processes = {
        kind: _start([sys.executable, script, kind, str(request)])
        for kind in ("savedmodel", "tflite")
    }
    cli = {family: _saved_model_cli(jobs[family]["savedmodel"]) for family in CLI_FAMILIES}
    loaded = {}
    for kind, process in processes.items():
        result = _finish(process)
        assert result["returncode"] == 0, result["stderr"][-3000:]
        loaded[kind] = json.loads(result["stdout"].strip().splitlines()[-1])
    loaded["saved_model_cli"] = {
        family: [_finish(p) for p in processes] for family, processes in cli.items()
    }
    loaded["export_logs"] = export_logs.messages
    return keras_side, loaded


def test_artifacts_load_without_keras_s2s(exported):
    _, loaded = exported
    assert loaded["savedmodel"]["imported_keras_s2s"] is False
    assert loaded["tflite"]["imported_keras_s2s"] is False


def test_a_mixed_precision_run_reloads_in_its_policy_and_exports_in_float32(exported):
    """A run keeps its `training.precision` when reloaded; its exports (whose parity with the
    float32 model the tests below check) compute in float32, which TFLite's builtins need."""
    keras_side, _ = exported
    policies = {family: side["trained_policy"] for family, side in keras_side.items()}
    assert policies.pop(LINKED_FAMILY) == "mixed_bfloat16"
    assert set(policies.values()) == {"float32"}


def test_tflite_wrapper_needs_no_tensorflow(exported):
    """The TFLite process ran every family (the parity tests below read its results) with
    tensorflow, tensorflow_text, keras and keras_s2s unimportable."""
    keras_side, loaded = exported
    lite = loaded["tflite"]
    assert lite["tensorflow_importable"] is False
    assert lite["loaded"] == []
    assert all(family in lite for family in keras_side)


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f for f in FAMILIES],
)
def test_savedmodel_equals_keras(exported, family):
    keras_side, loaded = exported
    ours, served = keras_side[family], loaded["savedmodel"][family]
    # Greedy: identical strings, at the batch size of the first call and at another one.
    assert served["greedy"] == ours["greedy"]
    # Beam search (beam 3, n-best 2, length penalty 0.6): same hypotheses, same scores.
    assert served["beam"] == [[text for text, _ in row] for row in ours["beam"]]
    np.testing.assert_allclose(
        served["beam_scores"], [[s for _, s in row] for row in ours["beam"]], atol=1e-4
    )
    if ours["signatures"]:
        assert set(served["signatures"]) == set(ours["signatures"])
    else:
        attention = {"attention", "align"} if ours["has_attention"] else set()
        assert set(served["signatures"]) == {
            "serving_default", "beam_search", "score", "translate", "sample",
            "constrained_beam_search",
        } | attention  # fmt: skip
        _check_decoding_controls(ours, served)
    # Scoring the greedy translations: the log-probabilities `Translator.score` gives.
    scored = served["score"]
    np.testing.assert_allclose(scored["scores"], [s.log_prob for s in ours["score"]], atol=1e-4)
    np.testing.assert_allclose(
        scored["normalized_scores"], [s.normalized() for s in ours["score"]], atol=1e-4
    )
    assert scored["target_truncated"] == [s.truncated for s in ours["score"]]
    if ours["has_attention"]:
        batch, steps = len(BATCHES[0]), served["attention_shape"][1]
        assert served["attention_shape"][0] == batch and steps >= 1
        sums = np.array(served["attention_row_sums"])
        assert np.all((np.abs(sums - 1) < 1e-4) | (np.abs(sums) < 1e-6))  # 0 after eos


def _check_decoding_controls(ours, served):
    """The `translate`, `sample`, `constrained_beam_search` and `align` signatures against
    Keras."""
    # Sampling: the samples Keras draws with the same seed (twice), and with another seed.
    seven, eight = ([t.decode() for t in samples[:, 0]] for samples in ours["samples"])
    assert served["samples"][0] == served["samples"][1] == seven
    assert served["samples"][2] == eight
    # The controls: the translations (and constrained hypotheses) of Translator's, and a
    # bad setting failing the request by name.
    assert served["translate"] == ours["translate"] != ours["greedy"][0]
    errors = served["errors"]
    assert "temperature must be > 0" in errors["['temperature']"]
    assert (
        "min_length_ratio must be <= max_length_ratio"
        in errors["['max_length_ratio', 'min_length_ratio']"]
    )
    assert "no_repeat_ngram_size must be >= 0" in errors["['no_repeat_ngram_size']"]
    assert "prefix needs one string per text" in errors["['prefix']"]
    # The constrained beam search: the hypotheses and scores of Translator's.
    assert served["constrained"] == [[t for t, _ in row] for row in ours["constrained"]]
    np.testing.assert_allclose(
        served["constrained_scores"], [[v for _, v in row] for row in ours["constrained"]],
        atol=1e-4,
    )  # fmt: skip
    if ours["has_attention"]:
        for row, alignment in zip(served["alignments"], ours["alignments"], strict=True):
            assert [(i, j) for j, i in enumerate(row) if i >= 0] == alignment.pairs


def _smallest_margin(token_ids, logits):
    """The smallest gap between the best and the second best logit over the greedy steps up to
    each row's eos: equal token ids mean something only if it is far above float noise."""
    top = np.sort(logits, axis=-1)
    gaps = top[..., -1] - top[..., -2]  # [B, T]
    smallest = np.inf
    for row, gap in zip(token_ids, gaps, strict=True):
        end = list(row).index(3) + 1 if 3 in row else len(row)
        smallest = min(smallest, float(gap[:end].min()))
    return smallest


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f for f in FAMILIES],
)
def test_tflite_equals_keras(exported, family):
    keras_side, loaded = exported
    ours, lite = keras_side[family], loaded["tflite"][family]
    assert lite["translations"] == ours["greedy"]
    for (ids, logits), run in zip(ours["ids"], lite["ids"], strict=True):
        # Logits within 1e-4 and a best logit ahead by more than twice that: the same argmax
        # on any CPU, so the equal token ids below are no accident of this one's rounding.
        assert _smallest_margin(ids, logits) > 2e-4, family
        np.testing.assert_array_equal(np.array(run["token_ids"]), ids)
        np.testing.assert_allclose(np.array(run["logits"]), logits, atol=1e-4)
    np.testing.assert_allclose(lite["first_step_logits"], ours["ids"][0][1][:, 0], atol=1e-4)
    assert lite["state_names"]  # the decoding state as named tensors
    model_bytes = next(Path(ours["paths"]["tflite"]).glob("*.tflite")).read_bytes()
    assert custom_ops(model_bytes) == []


def test_serving_edge_cases_never_fail_the_batch(exported):
    keras_side, loaded = exported
    for family in keras_side:
        cases = loaded["savedmodel"][family]["edge_cases"]
        assert len(cases["translations"]) == len(EDGE_CASES)
        assert cases["truncated"] == [False, False, True, False, False, False]
        assert cases["invalid_utf8"] == [False, False, False, False, True, False]
        # The valid sentence translates in the mixed batch exactly as it does alone.
        alone = keras_side[family]["alone"]
        assert cases["alone"] == alone, family
        assert cases["translations"][-1] == alone[0], family
        lite = loaded["tflite"][family]
        assert len(lite["edge_cases"]) == len(EDGE_CASES)
        assert lite["edge_alone"] == alone and lite["edge_cases"][-1] == alone[0], family


def test_empty_batch_gets_empty_results(exported):
    """B = 0 to every signature: each output has its usual dtype and rank, batch 0."""
    keras_side, loaded = exported
    flags = {"truncated": [[0], "bool"], "invalid_utf8": [[0], "bool"]}
    for family in keras_side:
        empty = loaded["savedmodel"][family]["empty"]
        assert empty["serving_default"] == {
            "translations": [[0], "string"], "scores": [[0], "float32"], **flags
        }, family  # fmt: skip
        n = NUM_RESULTS
        assert empty["beam_search"] == {
            "translations": [[0, n], "string"], "scores": [[0, n], "float32"], **flags
        }, family  # fmt: skip
        if keras_side[family]["has_attention"]:
            attention = empty.pop("attention")
            steps = keras_side[family]["max_length"]
            width = attention["source_token_ids"][0][1]
            # Attention spans the source ids, or the fixed width of a model that reads padding.
            spans = attention["attention_weights"][0][2]
            assert width >= 1 and spans in (width, keras_side[family]["source_length"]), family
            assert attention == {
                "translations": [[0], "string"], "scores": [[0], "float32"],
                "attention_weights": [[0, steps, spans], "float32"],
                "target_token_ids": [[0, steps], "int32"],
                "source_token_ids": [[0, width], "int32"], **flags,
            }, family  # fmt: skip
        if keras_side[family]["signatures"] is None:
            assert empty.pop("sample") == empty["serving_default"], family
            assert empty.pop("translate") == empty["serving_default"], family
            assert empty.pop("constrained_beam_search") == empty["beam_search"], family
        if "align" in empty:
            align = empty.pop("align")
            assert align["alignments"] == [[0, 1], "int32"], family
            assert align["target_truncated"] == [[0], "bool"], family
        assert empty.pop("score") == {
            "scores": [[0], "float32"], "normalized_scores": [[0], "float32"],
            "target_truncated": [[0], "bool"], **flags,
        }, family  # fmt: skip
        assert set(empty) == {"serving_default", "beam_search"}
        lite = loaded["tflite"][family]["empty"]
        assert lite["translate"] == []
        (_, steps), _ = lite["ids"]["token_ids"]
        assert lite["ids"]["token_ids"] == [[0, steps], "int32"] and steps >= 1
        assert lite["ids"]["scores"] == [[0], "float32"]
        assert lite["ids"]["logits"][0][:2] == [0, steps]


def test_export_logs_no_table_initializer_warnings(exported):
    """Freezing the TFLite signatures used to log "Issue encountered when serializing
    table_initializer ... 'NoneType' object has no attribute 'name'" three times an export
    (once per frozen function) after a character vocabulary's table was made eagerly."""
    _, loaded = exported
    assert not [m for m in loaded["export_logs"] if "Issue encountered" in m]


@pytest.mark.parametrize("family", CLI_FAMILIES)
def test_saved_model_cli_show_and_run(exported, family):
    keras_side, loaded = exported
    show, run = loaded["saved_model_cli"][family]
    assert show["returncode"] == 0, show["stderr"][-2000:]
    for name in ("serving_default", "beam_search", "attention"):
        assert f"signature_def['{name}']" in show["stdout"]
    # The session-based loader TF Serving uses (tensorflow_text imported first for its ops).
    assert run["returncode"] == 0, run["stderr"][-3000:]
    expected = keras_side[family]["greedy"][0][:2]
    assert f"[b'{expected[0]}' b'{expected[1]}']" in run["stdout"], run["stdout"]


def test_one_call_links_savedmodel_and_tflite_versions(exported):
    """A SavedModel exported alone got version 1; the next call, both formats, gave both
    version 2 (the TFLite folder had no version yet), and their JSON files say so."""
    keras_side, _ = exported
    ours = keras_side[LINKED_FAMILY]
    root = ours["run_dir"].parents[1] / "saved_models"
    assert ours["first_paths"] == {"savedmodel": root / LINKED_FAMILY / "1"}
    assert ours["paths"] == {
        "savedmodel": root / LINKED_FAMILY / "2",
        "tflite": root / f"{LINKED_FAMILY}-tflite" / "2",
    }
    # Nothing else there: no staging folder left behind.
    assert sorted(p.name for p in (root / LINKED_FAMILY).iterdir()) == ["1", "2"]
    assert sorted(p.name for p in (root / f"{LINKED_FAMILY}-tflite").iterdir()) == ["2"]
    run_dir = str(ours["run_dir"].resolve())
    both = {"savedmodel": f"{LINKED_FAMILY}/2", "tflite": f"{LINKED_FAMILY}-tflite/2"}
    saved = json.loads(
        (ours["paths"]["savedmodel"] / "assets.extra" / EXPORT_INFO_FILE).read_text()
    )
    lite = json.loads((ours["paths"]["tflite"] / TFLITE_INFO_FILE).read_text())
    for info in (saved, lite):
        assert info["run_dir"] == run_dir and info["name"] == LINKED_FAMILY
        assert info["version"] == 2 and info["exported_together"] == both
    first = ours["first_paths"]["savedmodel"] / "assets.extra" / EXPORT_INFO_FILE
    first = json.loads(first.read_text())
    assert first["version"] == 1
    assert first["exported_together"] == {"savedmodel": f"{LINKED_FAMILY}/1"}


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_bad_options_write_nothing(exported, tmp_path):
    """Every option is checked before anything is written: after a failing call the output
    root holds exactly what it held before (no new version, no staging folder)."""
    keras_side, _ = exported
    run_dir = keras_side[LINKED_FAMILY]["run_dir"]
    root = run_dir.parents[1] / "saved_models"
    before = _files(root)
    bad = [
        # The reported case: a valid format list, then an unknown quantization.
        ({"formats": ("savedmodel", "tflite"), "quantizations": ("int4",)},
         "Unknown quantization 'int4'"),
        ({"formats": ("savedmodel",), "quantizations": ("float32", "int4")}, "int4"),
        ({"formats": ("onnx",)}, "Unknown export format 'onnx'"),
        ({"formats": ()}, "No export format"),
        ({"quantizations": ()}, "No TFLite quantization"),
        ({"beam_size": 0}, "beam_size must be a positive integer"),
        ({"beam_size": True}, "beam_size must be a positive integer"),
        ({"beam_size": "3"}, "beam_size must be a positive integer"),
        ({"name": "a/b"}, "one folder name"),
        ({"name": ".."}, "one folder name"),
        ({"name": ""}, "non-empty"),
    ]  # fmt: skip
    for options, message in bad:
        with pytest.raises(ExportError, match=message):
            export(run_dir, **{"output_root": root, "name": LINKED_FAMILY, **options})
        assert _files(root) == before, options
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ExportError, match="not a folder"):
        export(run_dir, output_root=a_file)
    with pytest.raises(RunDirectoryError):
        export(tmp_path / "missing", output_root=root)
    with pytest.raises(ExportError, match="Unknown quantization 'int4'"):
        export_tflite(run_dir, tmp_path / "lite", quantizations=("int4",))
    with pytest.raises(ExportError, match="beam_size"):
        export_saved_model(run_dir, root, LINKED_FAMILY, beam_size=-1)
    assert _files(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_unexpected_converter_failure_propagates(exported, tmp_path, monkeypatch):
    """A converter crash is a bug, not bad input: it propagates as raised (not as an
    ExportError, which the command line reports as the user's mistake), and nothing is left."""
    keras_side, _ = exported
    from_saved_model = tf.lite.TFLiteConverter.from_saved_model

    def broken_converter(*args, **kwargs):
        converter = from_saved_model(*args, **kwargs)

        def convert():
            raise RuntimeError("converter crashed")

        converter.convert = convert
        return converter

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", broken_converter)
    output_root = tmp_path / "out"
    with pytest.raises(RuntimeError, match="converter crashed") as raised:
        export(keras_side[LINKED_FAMILY]["run_dir"], output_root=output_root, name="m")
    assert not isinstance(raised.value, ExportError)
    assert not output_root.exists()  # the folders this call created are gone too


def test_ops_outside_builtins_are_an_export_error(tmp_path):
    """What the user can fix (a model needing Flex or custom ops) is an ExportError naming the
    ops, chained to the converter's own error."""
    from tensorflow.lite.python.convert_phase import ConverterError

    class NeedsCustomOp(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([3, 3], tf.float32)])
        def f(self, x):
            return {"y": tf.linalg.svd(x)[0]}

    module = NeedsCustomOp()
    tf.saved_model.save(module, str(tmp_path), signatures={"f": module.f})
    with pytest.raises(ExportError, match="not TFLite builtins: tf.Svd") as raised:
        convert(str(tmp_path), "float32", signature_keys=("f",))
    assert isinstance(raised.value.__cause__, ConverterError)


@pytest.mark.parametrize(
    "family",
    [
        pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f
        for f in QUANTIZED_FAMILIES
    ],
)
def test_quantized_tflite_variants_run(exported, family):
    """float16 and dynamic-range int8 files of a family with attention and (slow run) of one
    without:
    smaller, builtin only, they run at two batch sizes with valid token ids; float16 gives
    float32's translation almost always."""
    keras_side, loaded = exported
    files = keras_side[family]["paths"]["tflite"].glob("*.tflite")
    paths = {p.name.split(".")[1]: p for p in files}
    assert set(paths) == {"float32", "float16", "int8"}
    size = {q: p.stat().st_size for q, p in paths.items()}
    assert size["float16"] < size["float32"] and size["int8"] < size["float32"]
    runs = loaded["tflite"][family]["quantized"]
    steps = keras_side[family]["max_length"]
    for q in ("float16", "int8"):
        assert custom_ops(paths[q].read_bytes()) == []
        for batch, run in zip(BATCHES, runs[q]["runs"], strict=True):
            ids = np.array(run["token_ids"])
            assert run["dtype"] == "int32" and ids.shape == (len(batch), steps), q
            assert ids.min() >= 0 and ids.max() < run["vocabulary_size"], q
            assert run["finite_scores"], q
            # eos (3) once at most, then only padding (0).
            for row in ids:
                after = row[list(row).index(3) + 1 :] if 3 in row else []
                assert all(token == 0 for token in after), (q, row)
        assert len(runs[q]["translations"]) == len(AGREEMENT_TEXTS)
    want, got = runs["float32"]["translations"], runs["float16"]["translations"]
    agreement = np.mean([g == w for g, w in zip(got, want, strict=True)])
    assert agreement >= 0.9, agreement


@pytest.mark.slow
def test_quantized_tflite_variants_mostly_agree(exported, tmp_path):
    """float16 and dynamic-range int8 files: smaller, builtin only, mostly the same outputs."""
    sys.path.insert(0, str(HERE.parents[1] / "keras_s2s" / "export"))
    from tflite_runtime import TFLiteTranslator

    keras_side, _ = exported
    run_dir = keras_side["luong-dot"]["run_dir"]
    paths = export_tflite(run_dir, tmp_path, quantizations=("float32", "float16", "int8"))
    sizes = {q: p.stat().st_size for q, p in paths.items()}
    assert sizes["float16"] < sizes["float32"] and sizes["int8"] < sizes["float32"]
    texts = [f"{a}+{b}" for a in range(0, 100, 7) for b in range(0, 100, 9)]
    want = TFLiteTranslator(tmp_path, "float32").translate(texts)
    for q in ("float16", "int8"):
        assert custom_ops(paths[q].read_bytes()) == []
        got = TFLiteTranslator(tmp_path, q).translate(texts)
        agreement = np.mean([g == w for g, w in zip(got, want, strict=True)])
        assert agreement >= 0.8, (q, agreement)


def test_export_command(exported, tmp_path, capsys, monkeypatch):
    from keras_s2s.cli import main as cli

    keras_side, _ = exported
    run_dir = str(keras_side[LINKED_FAMILY]["run_dir"])
    monkeypatch.setattr(cli, "_show_progress", lambda: True)  # as on a terminal
    assert cli.main(["export", run_dir, "--format", "all", "--output-root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    figures = json.loads(out.strip().splitlines()[-1])
    # The progress bar went through every step to the end.
    for step in ("tflite: tracing", "tflite: converting float32", "savedmodel: tracing"):
        assert f"exporting ({step}" in err, err
    assert "3/3" in err, err
    assert Path(figures["savedmodel"]) == tmp_path / "addition_seq2seq" / "1"
    assert Path(figures["tflite"]) == tmp_path / "addition_seq2seq-tflite" / "1"
    assert (Path(figures["tflite"]) / "model.float32.tflite").is_file()
    assert (Path(figures["savedmodel"]) / "assets" / "vocabulary.chars.txt").is_file()
    monkeypatch.setattr(cli, "_show_progress", lambda: False)
    code = cli.main(["export", run_dir, "--format", "tflite", "--quantization", "int4"])
    assert code == 2 and "Unknown quantization 'int4'" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_the_signatures_option_is_checked_and_nothing_is_left_on_failure(exported, tmp_path):
    keras_side, _ = exported
    run_dir = keras_side[LINKED_FAMILY]["run_dir"]  # no attention
    out = tmp_path / "out"
    for signatures, message in [
        (("beam_search",), "must include serving_default"),
        (("serving_default", "nope"), "Unknown SavedModel signature"),
        (("serving_default", "align"), "no align signature"),
    ]:
        with pytest.raises(ExportError, match=message):
            export(run_dir, formats=("savedmodel",), output_root=out, signatures=signatures)
    assert not list(out.rglob("saved_model.pb"))
