"""The CTranslate2 export: CTranslate2 running the converted weights computes what Keras does."""

import importlib.util
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.cli import main as cli
from keras_s2s.errors import ExportError
from keras_s2s.export import export
from keras_s2s.models.transformer import Transformer
from keras_s2s.models.transformer.ctranslate2 import transformer_spec
from keras_s2s.training import train
from keras_s2s.translator import Translator
from tests.export.test_export import (
    FAMILIES,
    _smallest_margin,
    addition_file,
    fixed_source_ids,
    keras_greedy_with_logits,
    small_config,
)

ctranslate2 = pytest.importorskip("ctranslate2")

TEXTS = ["16+75", "52+7", "9+1", "1+1", "99+99", "40+2", "7+70", "3+33", "12+21", "88+8"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A small Transformer trained on addition (pre-norm, shared and tied embeddings, as the
    Multi30k pipelines), and a Seq2Seq run (which does not convert)."""
    root = tmp_path_factory.mktemp("ctranslate2")
    data = addition_file(root / "addition.txt")
    transformer = {
        **FAMILIES["transformer"], "model.normalize_first": True,
        "model.share_embeddings": True, "model.tie_output_embedding": True,
        "data.shared_vocabulary": True,
    }  # fmt: skip
    train(small_config(data, transformer), root / "transformer", verbose=0)
    train(small_config(data, {"training.epochs": 1}), root / "seq2seq", verbose=0)
    return root


def load_wrapper(folder):
    """`CTranslate2Translator` of the wrapper shipped in `folder` (not keras-s2s's module)."""
    spec = importlib.util.spec_from_file_location("shipped", folder / "ctranslate2_translator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CTranslate2Translator


def tokens_of(translator, texts):
    ids = translator.encode_sources(tf.constant(texts)).numpy()
    pad, tokenizer = translator.source_tokenizer.pad_id, translator.source_tokenizer
    return [[tokenizer.id_to_token(i) for i in row if i != pad] for row in ids]


def test_ctranslate2_greedy_equals_keras_greedy(runs, tmp_path):
    paths = export(runs / "transformer", formats=("ctranslate2",), output_root=tmp_path)
    folder = paths["ctranslate2"]
    assert folder == tmp_path / "addition_seq2seq-ctranslate2" / "1"
    info = json.loads((folder / "keras_s2s_export.json").read_text())
    assert info["format"] == "ctranslate2" and info["quantization"] == "float32"
    assert (folder / "model.bin").exists() and list((folder / "assets").iterdir())

    translator = Translator.from_run_directory(runs / "transformer", dtype="float32")
    greedy = translator.translate(TEXTS)
    source_ids = translator.encode_sources(tf.constant(TEXTS))
    keras_ids, keras_scores = (t.numpy()[:, 0] for t in translator.decode_ids(source_ids))
    # The best logit of every greedy step is ahead by more than float noise: equal tokens mean
    # the same computation, on any CPU.
    ids, logits = keras_greedy_with_logits(translator)(fixed_source_ids(translator, TEXTS))
    np.testing.assert_array_equal(ids, keras_ids)
    assert _smallest_margin(ids, logits) > 2e-4
    # The wrapper shipped beside the model (ctranslate2 and sentencepiece only) decodes as
    # keras-s2s does: pad and bos ruled out (their probability shared by the others), eos
    # allowed at the first step (CTranslate2's min_decoding_length 0; its default, 1, rules it
    # out), scores as sums (length_penalty 0; CTranslate2's default, 1, divides by the length).
    engine = load_wrapper(folder)(folder, intra_threads=1)
    results = engine.translate_tokens(tokens_of(translator, TEXTS))
    target = translator.target_tokenizer
    for result, ids, score in zip(results, keras_ids, keras_scores, strict=True):
        ours = [target.id_to_token(i) for i in ids[: list(ids).index(target.eos_id)]]
        assert result.hypotheses[0] == ours  # token for token (eos not returned)
        assert result.scores[0] == pytest.approx(float(score), abs=1e-3)  # eos included
    assert engine.translate(TEXTS) == greedy
    # Beam search without a length penalty: CTranslate2's n-best of the same scores.
    beam = translator.translate_nbest(TEXTS, beam_size=4, num_results=2, length_penalty=0.0)
    theirs = engine.translate_nbest(TEXTS, beam_size=4, num_results=2)
    for ours, hypotheses in zip(beam, theirs, strict=True):
        assert [t for t, _ in hypotheses] == [t for t, _ in ours]
        np.testing.assert_allclose([v for _, v in hypotheses], [v for _, v in ours], atol=1e-3)


@pytest.mark.parametrize(
    "arguments",
    [
        {"normalize_first": False, "share_embeddings": False, "tie_output_embedding": False},
        {"normalize_first": True, "share_embeddings": True, "tie_output_embedding": True},
    ],
    ids=["post-norm-untied", "pre-norm-tied"],
)
def test_converted_log_probabilities_equal_keras(arguments, tmp_path):
    """Every weight lands where CTranslate2 reads it: the log-probabilities of given targets
    under an untrained model (random weights everywhere, biases included) agree."""
    vocabulary = ["<pad>", "<unk>", "<s>", "</s>", *"abcdefghijklmnop"]
    model = Transformer(
        len(vocabulary), len(vocabulary), hidden_dim=16, intermediate_dim=32, num_heads=2,
        num_encoder_layers=2, num_decoder_layers=2, dropout=0.0, **arguments,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for weight in model.weights:  # biases and norms too: none left at its initial 0 or 1
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    spec = transformer_spec(model, ctranslate2.specs, vocabulary, vocabulary, positions=16)
    spec.config.layer_norm_epsilon = 1e-5
    spec.validate()
    spec.optimize()
    spec.save(str(tmp_path))
    sources = [list("abcde"), list("fgh"), list("ponmlkji")]
    targets = [list("hij"), list("abcdefg"), list("k")]
    width = max(map(len, sources))
    source_ids = [[vocabulary.index(t) for t in s] + [0] * (width - len(s)) for s in sources]
    decoder_width = max(map(len, targets)) + 1
    decoder_ids = [[2] + [vocabulary.index(t) for t in s] for s in targets]
    decoder_ids = [row + [0] * (decoder_width - len(row)) for row in decoder_ids]
    logits = model(
        {"encoder_token_ids": np.array(source_ids), "decoder_token_ids": np.array(decoder_ids)}
    )
    log_probs = tf.nn.log_softmax(logits).numpy()
    engine = ctranslate2.Translator(str(tmp_path), device="cpu")
    scored = engine.score_batch(sources, targets)
    for row, (target, result) in enumerate(zip(targets, scored, strict=True)):
        labels = [vocabulary.index(t) for t in target] + [3]  # then eos
        expected = [log_probs[row, t, label] for t, label in enumerate(labels)]
        np.testing.assert_allclose(result.log_probs, expected, atol=1e-4)


def test_families_that_do_not_convert_are_an_export_error(runs, tmp_path):
    with pytest.raises(ExportError, match="does not convert to CTranslate2.*transformer"):
        export(runs / "seq2seq", formats=("ctranslate2",), output_root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing left behind
    with pytest.raises(ExportError, match="one model"):
        export(runs / "transformer", formats=("ctranslate2",), output_root=tmp_path,
               quantizations=("float32", "int8"))  # fmt: skip
    argv = ["export", str(runs / "seq2seq"), "--format", "ctranslate2", "--output-root"]
    assert cli.main([*argv, str(tmp_path)]) == 2


def test_quantized_exports_store_smaller_weights_and_translate(runs, tmp_path):
    paths = {
        q: export(
            runs / "transformer", formats=("ctranslate2",), output_root=tmp_path / q,
            quantizations=(q,),
        )["ctranslate2"]
        for q in ("float32", "float16", "int8")
    }  # fmt: skip
    info = json.loads((paths["int8"] / "keras_s2s_export.json").read_text())
    assert info["quantization"] == "int8"
    sizes = {q: (path / "model.bin").stat().st_size for q, path in paths.items()}
    assert sizes["int8"] < 0.6 * sizes["float32"]  # 1-byte weights (and their scales)
    assert sizes["float16"] < 0.6 * sizes["float32"]
    translations = load_wrapper(paths["int8"])(paths["int8"]).translate(TEXTS, beam_size=2)
    assert len(translations) == len(TEXTS) and all(isinstance(t, str) for t in translations)
    # CTranslate2 also quantizes a float32 model as it loads it.
    loaded = load_wrapper(paths["float32"])(paths["float32"], compute_type="int8")
    assert loaded.translator.compute_type.startswith("int8")  # int8 weights, float32 math
    assert len(loaded.translate(TEXTS)) == len(TEXTS)
