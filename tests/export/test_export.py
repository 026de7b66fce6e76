"""Export parity: Keras == SavedModel == TFLite for every model family, on trained models.

One module fixture trains a small model per family on a generated addition file (random tiny
models have near-tied logits), exports both formats, and loads every artifact in one fresh
process (`load_artifacts.py`) that imports only tensorflow, tensorflow_text and the shipped
TFLite wrapper.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.errors import ExportError
from keras_s2s.export import custom_ops, export, export_tflite
from keras_s2s.export.tflite import _Module
from keras_s2s.training import train
from keras_s2s.translator import Translator

HERE = Path(__file__).resolve().parent

FAMILIES = {
    "plain-reverse": {"model.reverse_source": True},
    "peeky-gru-bidirectional": {
        "model.decoder": "peeky",
        "model.cell": "gru",
        "model.bidirectional": True,
        "model.merge_mode": "sum",
    },
    "bahdanau": {"model.decoder": "bahdanau"},
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
    # SentencePiece tokenization: tensorflow-text in the SavedModel, sentencepiece in the wrapper.
    "sentencepiece": {
        "model.decoder": "luong",
        "data.tokenizer": "sentencepiece",
        "data.vocabulary_size": 40,
    },
}
BATCHES = [["16+75", "52+7", "9+1"], ["1+1", "99+99", "40+2", "7+70", "3+33", "12+21", "88+8"]]
# Empty, whitespace only, 10,000 characters, characters not in the vocabulary, invalid UTF-8.
EDGE_CASES = [
    b"", b"   ", b"1" * 10_000, "\u00e9\u4e2d+\U0001f600".encode(), b"12+\xff\xfe3", b"5+5"
]  # fmt: skip
LENGTH_PENALTY, NUM_RESULTS = 0.6, 2


def addition_file(path: Path, n=800, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 100, n), rng.integers(0, 100, n)
    path.write_text("".join(f"{x}+{y}_{x + y}\n" for x, y in zip(a, b, strict=True)))
    return path


def small_config(data_file, overrides):
    settings = {
        "data.source": "dlfs2",
        "data.train": [str(data_file)],
        "data.test_size": 40,
        "data.max_source_length": 7,
        "data.max_target_length": 4,
        "model.embedding_dim": 16,
        "model.hidden_dim": 32,
        "training.epochs": 4,
        "training.batch_size": 32,
        "training.learning_rate": 0.01,
    }
    return apply_overrides(load_pipeline("addition_seq2seq"), {**settings, **overrides})


def keras_greedy_with_logits(translator, source_ids):
    """The Keras model's greedy ids and per-step logits, by the same loop the TFLite file runs."""
    meta_length = translator.max_target_length + 1
    module = _Module(translator.model, translator.max_source_length, meta_length)
    out = module.translate(tf.constant(source_ids, tf.int32))
    return out["token_ids"].numpy(), out["logits"].numpy()


def fixed_source_ids(translator, texts):
    ids = translator.encode_sources(tf.constant(texts)).numpy()
    width = translator.max_source_length
    return np.pad(ids, [[0, 0], [0, width - ids.shape[1]]])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Trains, exports and loads every family (about 2-3 minutes on 2 cores)."""
    root = tmp_path_factory.mktemp("export")
    data_file = addition_file(root / "addition.txt")
    jobs, keras_side = {}, {}
    for family, overrides in FAMILIES.items():
        run_dir = root / "runs" / family
        train(small_config(data_file, overrides), run_dir, verbose=0)
        paths = export(run_dir, output_root=root / "saved_models", name=family, beam_size=3)
        translator = Translator.from_run_directory(run_dir)
        source_ids = [fixed_source_ids(translator, batch) for batch in BATCHES]
        keras_side[family] = {
            "greedy": [translator.translate(batch) for batch in BATCHES],
            "beam": translator.translate_nbest(
                BATCHES[0], beam_size=3, num_results=NUM_RESULTS, length_penalty=LENGTH_PENALTY
            ),
            "ids": [keras_greedy_with_logits(translator, ids) for ids in source_ids],
            "paths": paths,
            "has_attention": translator.has_attention,
        }
        jobs[family] = {
            "savedmodel": str(paths["savedmodel"]),
            "tflite": str(paths["tflite"]),
            "batches": BATCHES,
            "source_ids": [ids.tolist() for ids in source_ids],
            "length_penalty": LENGTH_PENALTY,
            "num_results": NUM_RESULTS,
            "edge_cases": [t.hex() for t in EDGE_CASES],
        }
    request = root / "request.json"
    request.write_text(json.dumps({"jobs": jobs}))
    result = subprocess.run(
        [sys.executable, str(HERE / "load_artifacts.py"), str(request)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    return keras_side, loaded


def test_artifacts_load_without_keras_s2s(exported):
    _, loaded = exported
    assert loaded["imported_keras_s2s"] is False


@pytest.mark.parametrize("family", FAMILIES)
def test_savedmodel_equals_keras(exported, family):
    keras_side, loaded = exported
    ours, served = keras_side[family], loaded[family]["savedmodel"]
    # Greedy: identical strings, at the batch size of the first call and at another one.
    assert served["greedy"] == ours["greedy"]
    # Beam search (beam 3, n-best 2, length penalty 0.6): same hypotheses, same scores.
    assert served["beam"] == [[text for text, _ in row] for row in ours["beam"]]
    np.testing.assert_allclose(
        served["beam_scores"], [[s for _, s in row] for row in ours["beam"]], atol=1e-4
    )
    attention = {"attention"} if ours["has_attention"] else set()
    assert set(served["signatures"]) == {"serving_default", "beam_search"} | attention
    if ours["has_attention"]:
        batch, steps = len(BATCHES[0]), served["attention_shape"][1]
        assert served["attention_shape"][0] == batch and steps >= 1
        sums = np.array(served["attention_row_sums"])
        assert np.all((np.abs(sums - 1) < 1e-4) | (np.abs(sums) < 1e-6))  # 0 after eos


@pytest.mark.parametrize("family", FAMILIES)
def test_tflite_equals_keras(exported, family):
    keras_side, loaded = exported
    ours, lite = keras_side[family], loaded[family]["tflite"]
    assert lite["translations"] == ours["greedy"]
    for (ids, logits), run in zip(ours["ids"], lite["ids"], strict=True):
        np.testing.assert_array_equal(np.array(run["token_ids"]), ids)
        np.testing.assert_allclose(np.array(run["logits"]), logits, atol=1e-4)
    np.testing.assert_allclose(lite["first_step_logits"], ours["ids"][0][1][:, 0], atol=1e-4)
    assert set(lite["state_names"]) >= {"rnn_0_0"}
    model_bytes = next(Path(ours["paths"]["tflite"]).glob("*.tflite")).read_bytes()
    assert custom_ops(model_bytes) == []


def test_serving_edge_cases_never_fail_the_batch(exported):
    _, loaded = exported
    for family in FAMILIES:
        cases = loaded[family]["savedmodel"]["edge_cases"]
        assert len(cases["translations"]) == len(EDGE_CASES)
        assert cases["truncated"] == [False, False, True, False, False, False]
        assert cases["invalid_utf8"] == [False, False, False, False, True, False]


def test_saved_model_cli_show_and_run(exported):
    keras_side, _ = exported
    path = str(keras_side["luong-dot"]["paths"]["savedmodel"])
    show = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all",
         "--dir", path],
        capture_output=True, text=True,
    )  # fmt: skip
    assert show.returncode == 0, show.stderr[-2000:]
    for name in ("serving_default", "beam_search", "attention"):
        assert f"signature_def['{name}']" in show.stdout
    # The session-based loader TF Serving uses (tensorflow_text imported first for its ops).
    code = (
        "import sys, tensorflow_text\n"
        "from tensorflow.python.tools.saved_model_cli import main\n"
        "sys.argv = ['saved_model_cli', 'run', '--dir', sys.argv[1], '--tag_set', 'serve',\n"
        "            '--signature_def', 'serving_default', '--input_exprs',\n"
        '            \'text=["16+75", "52+7"]\']\n'
        "main()\n"
    )
    run = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = keras_side["luong-dot"]["greedy"][0][:2]
    assert f"[b'{expected[0]}' b'{expected[1]}']" in run.stdout, run.stdout


def test_versions_count_up_and_bad_options_are_named(exported, tmp_path):
    keras_side, _ = exported
    run_dir = Path(keras_side["plain-reverse"]["paths"]["savedmodel"]).parents[2] / "runs"
    run_dir = run_dir / "plain-reverse"
    first = export(run_dir, formats=("savedmodel",), output_root=tmp_path, name="m")
    second = export(run_dir, formats=("savedmodel",), output_root=tmp_path, name="m")
    assert (first["savedmodel"].name, second["savedmodel"].name) == ("1", "2")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]  # nothing staged
    with pytest.raises(ExportError, match="Unknown export format 'onnx'"):
        export(run_dir, formats=("onnx",), output_root=tmp_path)
    with pytest.raises(ExportError, match="Unknown quantization 'int4'"):
        export_tflite(run_dir, tmp_path / "lite", quantizations=("int4",))


@pytest.mark.slow
def test_quantized_tflite_variants_mostly_agree(exported, tmp_path):
    """float16 and dynamic-range int8 files: smaller, builtin only, mostly the same outputs."""
    sys.path.insert(0, str(HERE.parents[1] / "keras_s2s" / "export"))
    from tflite_runtime import TFLiteTranslator

    keras_side, _ = exported
    run_dir = Path(keras_side["luong-dot"]["paths"]["savedmodel"]).parents[2] / "runs/luong-dot"
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


def test_export_command(exported, tmp_path, capsys):
    from keras_s2s.cli.main import main

    keras_side, _ = exported
    run_dir = str(Path(keras_side["bahdanau"]["paths"]["savedmodel"]).parents[2] / "runs/bahdanau")
    assert main(["export", run_dir, "--format", "all", "--output-root", str(tmp_path)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(figures["savedmodel"]) == tmp_path / "addition_seq2seq" / "1"
    assert (Path(figures["tflite"]) / "model.float32.tflite").is_file()
    assert (Path(figures["savedmodel"]) / "assets" / "vocabulary.chars.txt").is_file()
    code = main(["export", run_dir, "--format", "tflite", "--quantization", "int4"])
    assert code == 2 and "Unknown quantization 'int4'" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
