import keras
import numpy as np
import pytest

from keras_s2s.models import Seq2Seq
from keras_s2s.training import MaskedAccuracy, MaskedSparseCategoricalCrossentropy
from tests.contract import run_contract

SOURCE = np.array([[5, 6, 7, 8, 0, 0], [4, 9, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3]], "int32")
DECODER_IN = np.array([[2, 5, 6, 7], [2, 8, 0, 0], [2, 4, 4, 4]], "int32")
LABELS = np.array([[5, 6, 7, 3], [8, 3, 0, 0], [4, 4, 4, 3]], "int32")
INPUTS = {"encoder_token_ids": SOURCE, "decoder_token_ids": DECODER_IN}
TINY = dict(source_vocabulary_size=12, target_vocabulary_size=10, embedding_dim=8, hidden_dim=16)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_contract(tmp_path, cell):
    run_contract(
        Seq2Seq,
        {**TINY, "cell": cell, "reverse_source": cell == "lstm"},
        INPUTS,
        tmp_path,
        train_labels=LABELS,
        loss=MaskedSparseCategoricalCrossentropy(),
        expected_output_shape=(3, 4, 10),
        mixed_precision=True,
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_decode_step_matches_training_call(cell):
    model = Seq2Seq(**TINY, cell=cell, reverse_source=True)
    full = np.asarray(model(INPUTS))
    state = model.encode(SOURCE)
    steps = []
    for t in range(DECODER_IN.shape[1]):
        logits, state = model.decode_step(DECODER_IN[:, t], state, t)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.stack(steps, axis=1), full, rtol=1e-5, atol=1e-5)


def test_reverse_source_reverses_real_tokens_only():
    plain = Seq2Seq(**TINY)
    reversed_model = Seq2Seq(**TINY, reverse_source=True)
    reversed_model.set_weights(plain.get_weights())
    flipped = SOURCE.copy()
    for row in flipped:
        n = int((row != 0).sum())
        row[:n] = row[:n][::-1]
    np.testing.assert_allclose(
        np.asarray(reversed_model(INPUTS)),
        np.asarray(plain({**INPUTS, "encoder_token_ids": flipped})),
        rtol=1e-6,
        atol=1e-6,
    )


def test_extra_padding_changes_neither_loss_nor_metrics():
    model = Seq2Seq(**TINY)
    model.compile(
        optimizer="adam", loss=MaskedSparseCategoricalCrossentropy(), metrics=[MaskedAccuracy()]
    )
    padded = {k: np.pad(v, [[0, 0], [0, 7]]) for k, v in INPUTS.items()}
    a = model.evaluate(INPUTS, LABELS, verbose=0, return_dict=True)
    b = model.evaluate(padded, np.pad(LABELS, [[0, 0], [0, 7]]), verbose=0, return_dict=True)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6)
    assert a["loss"] > 0 and 0.0 <= a["token_accuracy"] <= 1.0


def test_loss_ignores_padding_labels():
    loss = MaskedSparseCategoricalCrossentropy()
    logits = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[1, 2, 0], [3, 0, 0]])
    manual = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    manual = np.asarray(manual)
    expected = (manual[0, 0] + manual[0, 1] + manual[1, 0]) / 3
    np.testing.assert_allclose(float(loss(labels, logits)), expected, rtol=1e-6)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="cell='transformer'"):
        Seq2Seq(**TINY, cell="transformer")
    with pytest.raises(ValueError, match="hidden_dim=0"):
        Seq2Seq(**{**TINY, "hidden_dim": 0})
