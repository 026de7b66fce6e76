import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_s2s.decoding import greedy_search
from keras_s2s.models import Seq2Seq
from keras_s2s.training import MaskedAccuracy, MaskedSparseCategoricalCrossentropy
from tests.conftest import REPO
from tests.contract import run_contract
from tests.models.test_conformance import variants_of

SOURCE = np.array([[5, 6, 7, 8, 0, 0], [4, 9, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3]], "int32")
DECODER_IN = np.array([[2, 5, 6, 7], [2, 8, 0, 0], [2, 4, 4, 4]], "int32")
LABELS = np.array([[5, 6, 7, 3], [8, 3, 0, 0], [4, 4, 4, 3]], "int32")
INPUTS = {"encoder_token_ids": SOURCE, "decoder_token_ids": DECODER_IN}
TINY = dict(source_vocabulary_size=12, target_vocabulary_size=10, embedding_dim=8, hidden_dim=16)


# Each axis of the recurrent matrix at least once: cell x plain/reverse/peeky/reverse+peeky x
# uni/bidirectional (concat/sum/ave) x depth with residual connections; dropout (unused by the
# eager calls, used by the jit-compiled training step).
MATRIX = [
    dict(cell="lstm"),
    dict(cell="gru", reverse_source=True),
    dict(cell="rnn", decoder="peeky"),
    dict(cell="lstm", decoder="peeky", reverse_source=True),
    dict(cell="lstm", bidirectional=True, merge_mode="concat"),
    dict(cell="gru", bidirectional=True, merge_mode="sum", decoder="peeky"),
    dict(cell="rnn", bidirectional=True, merge_mode="ave", reverse_source=True),
    dict(cell="lstm", num_layers=3, residual=True, decoder="peeky"),
    dict(cell="gru", num_layers=2, residual=True, bidirectional=True, merge_mode="concat"),
    dict(cell="lstm", decoder="bahdanau", reverse_source=True, dropout=0.2),
    dict(cell="gru", decoder="bahdanau", bidirectional=True, num_layers=2, residual=True),
    dict(cell="lstm", decoder="luong", attention_score="dot"),
    dict(cell="rnn", decoder="luong", attention_score="scaled", num_layers=2, residual=True),
    dict(cell="lstm", decoder="luong", attention_score="general", bidirectional=True),
    dict(cell="gru", decoder="luong", attention_score="concat", bidirectional=True),
]


# The jit-compiled training step (several seconds of XLA compilation each) runs for one
# configuration per decoder kind and encoder shape, dropout included; every layer of the family
# also has its own contract (test_seq2seq_layers.py). The default run compiles the two attention
# ones (a bidirectional encoder, dropout); the plain and Peeky ones run without jit there, and
# with it when slow tests are selected.
JIT_TRAINED = (0, 2, 5, 9, 14)
JIT_IN_DEFAULT_RUN = (9, 14)


def _id(options):
    return "-".join(f"{k}={v}" for k, v in options.items())


@pytest.mark.parametrize(
    "index, jit",
    [(i, False) for i in range(len(MATRIX)) if i not in JIT_IN_DEFAULT_RUN]
    + [pytest.param(i, True, marks=() if i in JIT_IN_DEFAULT_RUN else pytest.mark.slow)
       for i in JIT_TRAINED],
    ids=lambda v: _id(MATRIX[v]) if isinstance(v, int) and not isinstance(v, bool) else f"jit={v}",
)  # fmt: skip
def test_contract(tmp_path, index, jit):
    options = MATRIX[index]
    run_contract(
        Seq2Seq,
        {**TINY, **options},
        INPUTS,
        tmp_path,
        train_labels=LABELS if jit else None,
        loss=MaskedSparseCategoricalCrossentropy(),
        expected_output_shape=(3, 4, 10),
        mixed_precision=options.get("cell") == "lstm",
        expected_mixed_precision_dtype="float32",  # logits, for the loss and the decoders
    )


def teacher_forced_steps(model):
    """The logits of `decode_step` fed DECODER_IN one position at a time: [B, T, V]."""
    state = model.encode(SOURCE)
    steps = []
    for t in range(DECODER_IN.shape[1]):
        logits, state = model.decode_step(DECODER_IN[:, t], state, t)
        steps.append(np.asarray(logits))
    return np.stack(steps, axis=1)


# The other variants' decode steps are checked by the conformance suite.
@pytest.mark.parametrize("options", [o for o in MATRIX if o not in variants_of("seq2seq")], ids=_id)
def test_decode_step_matches_training_call(options):
    model = Seq2Seq(**TINY, **options)
    full = np.asarray(model(INPUTS))
    np.testing.assert_allclose(teacher_forced_steps(model), full, rtol=1e-5, atol=1e-5)


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
    with pytest.raises(ValueError, match="merge_mode='mul'"):
        Seq2Seq(**TINY, bidirectional=True, merge_mode="mul")
    with pytest.raises(ValueError, match="decoder='attention'"):
        Seq2Seq(**TINY, decoder="attention")
    with pytest.raises(ValueError, match="attention_score='cosine'"):
        Seq2Seq(**TINY, decoder="luong", attention_score="cosine")
    with pytest.raises(ValueError, match="score='dot' needs equal query and memory widths"):
        Seq2Seq(**TINY, decoder="luong", attention_score="dot", bidirectional=True)


def test_peeky_feeds_the_summary_to_every_step():
    model = Seq2Seq(**TINY, decoder="peeky")
    state = model.encode(SOURCE)
    summary = state["encoding"]["summary"]
    assert summary.shape == (3, 16)
    # Changing only the summary changes every step's logits (it enters input and output).
    logits, _ = model.decode_step(DECODER_IN[:, 0], state)
    other, _ = model.decode_step(
        DECODER_IN[:, 0], {**state, "encoding": {"summary": summary + 1.0}}
    )
    assert np.all(np.abs(np.asarray(logits) - np.asarray(other)).max(axis=-1) > 1e-4)
    out_kernel = model.output_projection.kernel
    assert out_kernel.shape == (16 + 16, 10)  # decoder output + summary


def test_bidirectional_concat_bridges_states_to_the_decoder_size():
    model = Seq2Seq(**TINY, bidirectional=True, merge_mode="concat", num_layers=2)
    state = model.encode(SOURCE)
    assert [[tuple(s.shape) for s in layer] for layer in state["rnn"]] == [[(3, 16), (3, 16)]] * 2
    assert len(model.encoder.bridges) == 2


def test_encoder_ignores_source_padding():
    for options in MATRIX:
        model = Seq2Seq(**TINY, **options)
        padded = {**INPUTS, "encoder_token_ids": np.pad(SOURCE, [[0, 0], [0, 5]])}
        np.testing.assert_allclose(
            np.asarray(model(padded)), np.asarray(model(INPUTS)), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(
    "options",
    [o for o in MATRIX if "decoder" in o and o["decoder"] in ("bahdanau", "luong")],
    ids=_id,
)
def test_attention_gives_source_padding_exactly_zero_weight(options):
    model = Seq2Seq(**TINY, **options)
    source = np.pad(SOURCE, [[0, 0], [0, 3]])
    state = model.encode(source)
    assert np.all(np.asarray(state["attention"]) == 0)
    for t in range(DECODER_IN.shape[1]):
        _, state = model.decode_step(DECODER_IN[:, t], state, t)
        weights = np.asarray(state["attention"])
        assert weights.shape == source.shape
        assert np.all(weights[source == 0] == 0.0)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)


UNROLLED = [
    dict(cell="lstm", decoder="peeky", reverse_source=True),
    dict(cell="gru", bidirectional=True, merge_mode="concat", num_layers=2, residual=True),
    dict(cell="lstm", decoder="bahdanau"),
    dict(cell="rnn", decoder="luong", attention_score="dot"),
]
STATIC = dict(source_length=6, target_length=4, unroll=True)


@pytest.mark.parametrize("options", UNROLLED, ids=_id)
def test_unrolled_model_equals_the_loop_with_the_same_weights(tmp_path, options):
    # The jit-compiled training step of an unrolled model: once, for the attention RNN's
    # unrolled loop (compiling the others took 5-19 s each).
    run_contract(
        Seq2Seq,
        {**TINY, **options, **STATIC},
        INPUTS,
        tmp_path,
        train_labels=LABELS if options.get("decoder") == "bahdanau" else None,
        loss=MaskedSparseCategoricalCrossentropy(),
        expected_output_shape=(3, 4, 10),
    )
    looped = Seq2Seq(**TINY, **options)
    unrolled = Seq2Seq(**TINY, **options, **STATIC)
    unrolled.set_weights(looped.get_weights())
    np.testing.assert_allclose(unrolled(INPUTS), looped(INPUTS), rtol=1e-5, atol=1e-6)
    # `encode` pads a shorter source to the static length; padding is masked, so the decode
    # step gives what the looped model gives on the unpadded source.
    short = SOURCE[:2, :4]
    want, _ = looped.decode_step(DECODER_IN[:2, 0], looped.encode(short))
    got, _ = unrolled.decode_step(DECODER_IN[:2, 0], unrolled.encode(short))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_unroll_needs_static_lengths():
    with pytest.raises(ValueError, match="`unroll=True` needs static lengths"):
        Seq2Seq(**TINY, unroll=True, source_length=6)
    with pytest.raises(ValueError, match="`target_length` must be a positive integer"):
        Seq2Seq(**TINY, source_length=6, target_length=0)


FIXED_WIDTH = [
    dict(cell="lstm", decoder="luong", attention_score="dot", reverse_source=True),
    dict(cell="gru", decoder="bahdanau", bidirectional=True, unroll=True, target_length=4),
    dict(cell="lstm", decoder="peeky", reverse_source=True, unroll=True, target_length=4),
]


@pytest.mark.parametrize("options", FIXED_WIDTH, ids=_id)
def test_fixed_width_source_reads_its_padding(tmp_path, options):
    options = {**TINY, **options, "source_length": 6, "mask_source_padding": False}
    run_contract(
        Seq2Seq,
        options,
        INPUTS,
        tmp_path,
        # The jit-compiled training step once: the DLFS2 setting (Luong dot, not unrolled).
        train_labels=LABELS if not options.get("unroll") else None,
        loss=MaskedSparseCategoricalCrossentropy(),
        expected_output_shape=(3, 4, 10),
    )
    model = Seq2Seq(**options)
    full = np.asarray(model(INPUTS))
    # The decode step equals the training call, and `encode` pads a narrower batch to the
    # fixed width, so a sentence's result does not depend on its batch's padding.
    for source, want in ((SOURCE, full), (SOURCE[:2, :4], full[:2])):
        state = model.encode(source)
        steps = []
        for t in range(DECODER_IN.shape[1]):
            logits, state = model.decode_step(DECODER_IN[: len(source), t], state, t)
            steps.append(np.asarray(logits))
            if "attention" in state:  # Padding is attended to, not masked out.
                assert np.all(np.asarray(state["attention"])[SOURCE[: len(source)] == 0] > 0)
        np.testing.assert_allclose(np.stack(steps, axis=1), want, rtol=1e-5, atol=1e-5)
    # Padding is read: the masked model with the same weights gives other outputs.
    masked = Seq2Seq(**{**options, "mask_source_padding": True})
    masked.set_weights(model.get_weights())
    assert np.abs(np.asarray(masked(INPUTS)) - full).max() > 1e-4


def test_fixed_width_reverse_flips_whole_rows():
    options = {**TINY, "source_length": 6, "mask_source_padding": False}
    plain = Seq2Seq(**options)
    reversed_model = Seq2Seq(**options, reverse_source=True)
    reversed_model.set_weights(plain.get_weights())
    flipped = {**INPUTS, "encoder_token_ids": SOURCE[:, ::-1].copy()}
    np.testing.assert_allclose(
        np.asarray(reversed_model(INPUTS)), np.asarray(plain(flipped)), rtol=1e-6, atol=1e-6
    )


def test_fixed_width_needs_a_source_length():
    with pytest.raises(ValueError, match="`mask_source_padding=False` .* `source_length`"):
        Seq2Seq(**TINY, mask_source_padding=False)


# === Dropout ===
# `dropout` is the input dropout of every encoder and decoder RNN cell (Keras `dropout=`, one
# mask per sequence); for Bahdanau it covers the cell input [y_{t-1}; c].
DROPOUT = dict(TINY, hidden_dim=8, dropout=0.5)
DECODERS = ("plain", "peeky", "bahdanau", "luong")


CELLS = ("lstm", "gru", "rnn")
# Every decoder with every cell; the default run takes each decoder once (cells in turn) and
# the static one, the rest are slow.
DROPOUT_MATRIX = [
    pytest.param(dict(decoder=d, cell=c), marks=() if i % 3 == j else pytest.mark.slow)
    for i, d in enumerate(DECODERS)
    for j, c in enumerate(CELLS)
] + [dict(decoder="bahdanau", cell="gru", **STATIC)]


@pytest.mark.parametrize("options", DROPOUT_MATRIX, ids=_id)
def test_one_training_step_with_dropout(options):
    # The Bahdanau loop cached the cell's dropout mask and never reset it: the first traced
    # training step failed ("stateless_dropout/SelectV2:0 is out of scope"), and unrolled, the
    # next training call read a tensor of the first call's graph.
    model = Seq2Seq(**DROPOUT, **options)
    model.compile(optimizer="sgd", loss=MaskedSparseCategoricalCrossentropy())
    assert np.isfinite(model.train_on_batch(INPUTS, LABELS))
    assert np.all(np.isfinite(np.asarray(model(INPUTS, training=True))))


@pytest.mark.parametrize(
    "options",
    [dict(decoder="bahdanau"), dict(decoder="bahdanau", **STATIC), dict(decoder="luong")],
    ids=_id,
)
def test_dropout_acts_in_training_only(options):
    model = Seq2Seq(**DROPOUT, **options)
    inference = np.asarray(model(INPUTS, training=False))
    np.testing.assert_array_equal(np.asarray(model(INPUTS, training=False)), inference)
    assert np.abs(np.asarray(model(INPUTS, training=True)) - inference).max() > 1e-4
    # Decoding reads no dropout: the decode steps equal the inference call, and greedy search
    # gives the same tokens and scores twice.
    np.testing.assert_allclose(teacher_forced_steps(model), inference, rtol=1e-5, atol=1e-5)
    first, second = (
        greedy_search(model.decode_step, model.encode(SOURCE), len(SOURCE), max_length=5)
        for _ in range(2)
    )
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# === No "unbuilt state" warning ===

# Keras warns only while building the first instance of a Model subclass in a process, so the
# warning itself is checked in a fresh one, on the load path (`keras.saving.load_model` builds
# the model); run_contract checks its condition (every sublayer built) for every configuration.
LOAD_FIT_PREDICT = """
import sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import keras
    import keras_s2s.models
    from keras_s2s.training import MaskedSparseCategoricalCrossentropy
    from tests.models.test_seq2seq import INPUTS, LABELS
    model = keras.saving.load_model(sys.argv[1])
    model.compile(optimizer="sgd", loss=MaskedSparseCategoricalCrossentropy())
    model.fit(INPUTS, LABELS, epochs=1, verbose=0)
    model.predict(INPUTS, verbose=0)
for w in caught:
    print(f"{w.category.__name__}: {w.message}")
"""


def test_no_unbuilt_state_warning_when_loading_fitting_predicting(tmp_path):
    # The Bahdanau model used to create and track a plain decoder RNN that the attention
    # decoder then replaced: Keras warned "`build()` was called on layer 'seq2_seq' ... unbuilt
    # state" in every process that built one first (training, or loading to translate).
    path = str(tmp_path / "model.keras")
    Seq2Seq(**TINY, decoder="bahdanau", dropout=0.2).save(path)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_FIT_PREDICT, path],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "unbuilt state" not in result.stdout + result.stderr, result.stdout


@pytest.mark.parametrize("mask_source_padding", [True, False], ids=["masked", "fixed-width"])
def test_a_reversed_source_is_attended_in_source_order(mask_source_padding):
    """`attention_weights` of a model that reverses its source are over the source as given:
    they equal the weights of the same model without the reversal, fed the reversed source,
    put back in order."""
    fixed = {} if mask_source_padding else {"mask_source_padding": False, "source_length": 8}
    source = np.pad(SOURCE, [[0, 0], [0, 2]])
    reversed_model = Seq2Seq(**TINY, decoder="luong", reverse_source=True, **fixed)
    plain = Seq2Seq(**TINY, decoder="luong", **fixed)
    inputs = {"encoder_token_ids": source, "decoder_token_ids": DECODER_IN}
    reversed_model(inputs), plain(inputs)
    plain.set_weights(reversed_model.get_weights())
    if mask_source_padding:
        lengths = (source != 0).sum(axis=1)
        order = [[n - 1 - p if p < n else p for p in range(source.shape[1])] for n in lengths]
    else:
        order = [list(range(source.shape[1]))[::-1]] * len(source)
    order = np.array(order)
    flipped = np.take_along_axis(source, order, axis=1)
    state, plain_state = reversed_model.encode(source), plain.encode(flipped)
    for t in range(DECODER_IN.shape[1]):
        _, state = reversed_model.decode_step(DECODER_IN[:, t], state, t)
        _, plain_state = plain.decode_step(DECODER_IN[:, t], plain_state, t)
        expected = np.take_along_axis(np.asarray(plain_state["attention"]), order, axis=1)
        np.testing.assert_allclose(
            np.asarray(reversed_model.attention_weights(state)), expected, atol=1e-6
        )
