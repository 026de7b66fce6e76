"""The Transformer family: contract, masks, cached decoding, learning, mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.decoding import beam_search, greedy_search
from keras_s2s.models import Transformer
from keras_s2s.tokenizers import BOS_ID, EOS_ID, PAD_ID
from keras_s2s.training import MaskedSparseCategoricalCrossentropy
from tests.contract import run_contract

SOURCE = np.array([[5, 6, 7, 8, 0, 0], [4, 9, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3]], "int32")
DECODER_IN = np.array([[2, 5, 6, 7], [2, 8, 0, 0], [2, 4, 4, 4]], "int32")
LABELS = np.array([[5, 6, 7, 3], [8, 3, 0, 0], [4, 4, 4, 3]], "int32")
INPUTS = {"encoder_token_ids": SOURCE, "decoder_token_ids": DECODER_IN}
REAL = DECODER_IN != 0  # [B, T] real decoder positions
TINY = dict(
    source_vocabulary_size=12,
    target_vocabulary_size=10,
    hidden_dim=16,
    intermediate_dim=32,
    num_heads=2,
    num_encoder_layers=2,
    num_decoder_layers=2,
)
# Post-norm with a dense output layer; pre-norm with one embedding for source, target and
# output (equal vocabularies), another reported layer and a static source width.
VARIANTS = [
    dict(TINY, dropout=0.1),
    dict(
        TINY,
        source_vocabulary_size=12,
        target_vocabulary_size=12,
        normalize_first=True,
        share_embeddings=True,
        tie_output_embedding=True,
        attention_layer=0,
        source_length=6,
    ),
]
IDS = ["post_norm", "pre_norm_shared_tied_static"]


def logits_of(model, source, decoder_in):
    return np.asarray(model({"encoder_token_ids": source, "decoder_token_ids": decoder_in}))


def log_probs_of(logits):
    """Log-softmax over `[..., V]` with pad and bos excluded, as the decoders compute it."""
    logits = np.where(np.isin(np.arange(logits.shape[-1]), [PAD_ID, BOS_ID]), -1e9, logits)
    return np.asarray(tf.nn.log_softmax(logits.astype("float32")))


# The jit-compiled training step (XLA compilation, about 10 s) in the slow run only: the
# default run compiles a Seq2Seq's step (tests/models/test_seq2seq.py) and the Transformer's
# decoding (`test_decoding_compiles_with_xla`); the default run's budget.
@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_contract_post_norm(tmp_path, jit):
    # One layer each: XLA compiles the training step in half the time of two.
    run_contract(
        Transformer,
        {**VARIANTS[0], "num_encoder_layers": 1, "num_decoder_layers": 1},
        INPUTS,
        tmp_path,
        train_labels=LABELS if jit else None,
        loss=MaskedSparseCategoricalCrossentropy(),
        expected_output_shape=(3, 4, 10),
        mixed_precision=True,
        # Embeddings 2, encoder layer 16, decoder layer 26, output layer 2.
        expected_num_trainable_weights=46,
        expected_num_non_trainable_weights=0,
        expected_mixed_precision_dtype="float32",
    )


def test_contract_pre_norm_shared_tied_static(tmp_path):
    run_contract(
        Transformer,
        VARIANTS[1],
        INPUTS,
        tmp_path,
        expected_output_shape=(3, 4, 12),
        mixed_precision=True,
        # One embedding, layers 32 + 52, two final norms 4, no output layer.
        expected_num_trainable_weights=89,
        expected_num_non_trainable_weights=0,
        expected_mixed_precision_dtype="float32",
    )


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="Received: hidden_dim=30"):
        Transformer(**{**TINY, "hidden_dim": 30, "num_heads": 4})
    with pytest.raises(ValueError, match="Received: num_encoder_layers=0"):
        Transformer.validate_arguments(num_encoder_layers=0)
    with pytest.raises(ValueError, match="target_vocabulary_size=10"):
        Transformer(**TINY, share_embeddings=True)
    with pytest.raises(ValueError, match="Received: attention_layer=2"):
        Transformer.validate_arguments(num_decoder_layers=2, attention_layer=2)
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        Transformer.validate_arguments(dropout=1.0)
    with pytest.raises(ValueError, match="Received: source_length=0"):
        Transformer.validate_arguments(source_length=0)
    Transformer.validate_arguments(attention_layer=-3, num_decoder_layers=3)


# === Masks ===


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
def test_source_padding_changes_nothing(options):
    model = Transformer(**options)
    want = logits_of(model, SOURCE, DECODER_IN)
    # More padding columns change nothing (up to the static width, if any)...
    wider = np.pad(SOURCE, [[0, 0], [0, 0 if options.get("source_length") else 3]])
    np.testing.assert_allclose(logits_of(model, wider, DECODER_IN)[REAL], want[REAL], atol=1e-5)
    # ... nor does the vector the padding id embeds to, at real positions (but for the pad
    # logit itself: with a tied output layer, that vector is its weight).
    embedding = model.source_embedding.embeddings
    table = embedding.numpy()
    table[PAD_ID] = np.random.default_rng(0).normal(size=table.shape[1]) * 10.0
    embedding.assign(table)
    got = logits_of(model, SOURCE, DECODER_IN)
    not_pad = np.arange(want.shape[-1]) != PAD_ID
    np.testing.assert_allclose(got[REAL][:, not_pad], want[REAL][:, not_pad], atol=1e-5)
    # The decoder's attention gives source padding exactly zero weight.
    state = model.encode(SOURCE, max_length=4)
    for t in range(4):
        _, state = model.decode_step(DECODER_IN[:, t], state, t)
        weights = np.asarray(model.attention_weights(state))
        assert weights.shape == SOURCE.shape
        assert np.all(weights[SOURCE == PAD_ID] == 0.0)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_future_target_positions_change_nothing():
    model = Transformer(**VARIANTS[0])
    want = logits_of(model, SOURCE, DECODER_IN)
    for t in range(DECODER_IN.shape[1] - 1):
        changed = DECODER_IN.copy()
        changed[:, t + 1 :] = np.random.default_rng(t).integers(0, 10, changed[:, t + 1 :].shape)
        got = logits_of(model, SOURCE, changed)
        np.testing.assert_allclose(got[:, : t + 1], want[:, : t + 1], atol=1e-5)
        assert np.abs(got[:, t + 1 :] - want[:, t + 1 :]).max() > 1e-4


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
def test_training_call_on_real_positions_only_computes_the_same(options):
    """In training the position-wise layers run on the real positions only (`Packing`): same
    logits at real positions and same gradients as the padded (inference) call."""
    model = Transformer(**dict(options, dropout=0.0))
    loss_fn = MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)

    def logits_and_gradients(training):
        with tf.GradientTape() as tape:
            logits = model(INPUTS, training=training)
            loss = loss_fn(LABELS, logits)
        return np.asarray(logits), tape.gradient(loss, model.trainable_weights)

    padded, padded_gradients = logits_and_gradients(False)
    packed, packed_gradients = logits_and_gradients(True)
    np.testing.assert_allclose(packed[REAL], padded[REAL], atol=1e-5)
    for weight, want, got in zip(
        model.trainable_weights, padded_gradients, packed_gradients, strict=True
    ):
        want, got = np.asarray(tf.convert_to_tensor(want)), np.asarray(tf.convert_to_tensor(got))
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4, err_msg=weight.path)
    # The packed layers skip the padding: their outputs there are 0 (no work done).
    assert np.all(packed[~REAL] == packed[~REAL][:1])


# === Cached decoding: the training path on one position ===


def test_decode_state_is_flat_fixed_and_constant_where_declared():
    model = Transformer(**VARIANTS[0])
    state = model.encode(SOURCE, max_length=5)
    layers = range(model.num_decoder_layers)
    assert set(state) == {"memory_mask", "attention"} | {
        f"{kind}_{part}_{i}"
        for kind in ("self", "cross")
        for part in ("key", "value")
        for i in layers
    }
    assert set(model.constant_state_keys) == {"memory_mask"} | {
        f"cross_{part}_{i}" for part in ("key", "value") for i in layers
    }
    assert state["self_key_1"].shape == (3, 2, 5, 8)  # [B, H, L, Dh]
    assert state["cross_value_0"].shape == (3, 2, 6, 8)  # [B, H, S, Dh]
    for t in range(5):
        _, new_state = model.decode_step(DECODER_IN[:, min(t, 3)], state, t)
        assert {k: (v.shape, v.dtype) for k, v in new_state.items()} == {
            k: (v.shape, v.dtype) for k, v in state.items()
        }
        for key in model.constant_state_keys:
            assert new_state[key] is state[key]
        state = new_state


def test_growing_caches_decode_as_the_fixed_ones():
    """`encode(max_length=None)`: caches of the positions so far (`past_*`, one more each
    step) give the fixed-size caches' logits at every step, greedy and beam search."""
    model = Transformer(**VARIANTS[0])
    fixed, growing = model.encode(SOURCE, max_length=5), model.encode(SOURCE)
    assert not any(k.startswith("self_") for k in growing)
    assert growing["past_key_1"].shape == (3, 2, 0, 8)  # [B, H, 0, Dh]
    for t in range(5):
        want, fixed = model.decode_step(DECODER_IN[:, min(t, 3)], fixed, t)
        got, growing = model.decode_step(DECODER_IN[:, min(t, 3)], growing, t)
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert growing["past_value_0"].shape == (3, 2, t + 1, 8)
    for width in (1, 3):
        want = beam_search(model.decode_step, model.encode(SOURCE, max_length=6), 3, 6, width)
        got = tf.function(
            lambda source, width=width: beam_search(
                model.decode_step,
                model.encode(source),
                3,
                6,
                width,
                constant_state_keys=model.constant_state_keys,
            ),  # fmt: skip
            autograph=False,
        )(tf.constant(SOURCE))
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[2], want[2], atol=1e-4)


def greedy_by_recomputing(model, source, max_length):
    """Greedy decoding that runs the training call on the whole prefix at every step.
    Returns tokens `[B, L]` (pad after eos) and each step's logits `[B, L, V]`."""
    batch = len(source)
    prefix = np.full((batch, 1), BOS_ID, "int32")
    tokens = np.full((batch, max_length), PAD_ID, "int32")
    all_logits, finished = [], np.zeros(batch, bool)
    for t in range(max_length):
        logits = logits_of(model, source, prefix)[:, t]
        all_logits.append(logits)
        allowed = logits.copy()
        allowed[:, [PAD_ID, BOS_ID]] = -np.inf
        next_tokens = np.where(finished, PAD_ID, allowed.argmax(-1))
        tokens[:, t] = next_tokens
        finished |= next_tokens == EOS_ID
        prefix = np.concatenate([prefix, next_tokens[:, None]], axis=1).astype("int32")
        if finished.all():
            break
    return tokens, np.stack(all_logits, axis=1)


def with_logits(model):
    """`model.decode_step` that also keeps its logits in the state (to collect them)."""

    def step(token_ids, state, step):
        logits, state = model.decode_step(token_ids, state, step)
        return logits, {**state, "logits": logits}

    return step


# Recomputing the first step attends over one position (bos), which Keras's softmax warns of.
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
def test_cached_greedy_equals_recomputing_the_prefix(options):
    model = Transformer(**options)
    # Make eos likely, so that rows finish at different steps.
    if model.output_projection is not None:
        vocabulary = np.arange(model.target_vocabulary_size)
        model.output_projection.bias.assign(np.where(vocabulary == EOS_ID, 1.0, 0.0))
    source, length = SOURCE, 7
    want_tokens, want_logits = greedy_by_recomputing(model, source, length)
    state = model.encode(source, max_length=length)
    state["logits"] = tf.zeros((len(source), want_logits.shape[-1]))
    tokens, scores, logits = greedy_search(
        with_logits(model), state, len(source), length, collect=lambda s: s["logits"]
    )
    np.testing.assert_array_equal(tokens, want_tokens)
    steps = want_logits.shape[1]
    # Compare every step up to each row's eos (later ones feed padding to the prefix call).
    for row, row_tokens in enumerate(want_tokens):
        ends = np.flatnonzero(row_tokens == EOS_ID)
        last = ends[0] + 1 if len(ends) else steps
        np.testing.assert_allclose(logits[row, :last], want_logits[row, :last], atol=1e-4)
    # Its scores are the log-probabilities of the tokens up to eos.
    chosen = np.take_along_axis(log_probs_of(want_logits), want_tokens[:, :steps, None], -1)
    real = want_tokens[:, :steps] != PAD_ID
    np.testing.assert_allclose(scores, (chosen[..., 0] * real).sum(1), atol=1e-4)


def test_decoding_compiles_with_xla():
    model = Transformer(**{**TINY, "num_encoder_layers": 1, "num_decoder_layers": 1})

    @tf.function(jit_compile=True)
    def decode(source):
        state = model.encode(source, max_length=5)
        return greedy_search(model.decode_step, state, tf.shape(source)[0], 5)

    want = greedy_search(model.decode_step, model.encode(SOURCE, max_length=5), 3, 5)
    got = decode(tf.constant(SOURCE))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], atol=1e-4)


def test_beam_search_runs_on_the_model():
    model = Transformer(**VARIANTS[0])
    greedy_tokens, _ = greedy_search(model.decode_step, model.encode(SOURCE, max_length=6), 3, 6)
    one, _, _ = beam_search(model.decode_step, model.encode(SOURCE, max_length=6), 3, 6, 1)
    np.testing.assert_array_equal(one[:, 0], greedy_tokens)
    tokens, _, log_probs = beam_search(
        model.decode_step, model.encode(SOURCE, max_length=6), 3, 6, beam_size=3, num_results=2
    )
    assert tokens.shape == (3, 2, 6)
    # Keeping the constant state out of the loop (tiled once, never gathered) changes nothing.
    same_tokens, _, same_log_probs = beam_search(
        model.decode_step, model.encode(SOURCE, max_length=6), 3, 6, beam_size=3, num_results=2,
        constant_state_keys=model.constant_state_keys,
    )  # fmt: skip
    np.testing.assert_array_equal(same_tokens, tokens)
    np.testing.assert_allclose(same_log_probs, log_probs, atol=1e-5)


# === Saving, static copies, mixed precision ===


def test_static_copy_pads_sources_to_its_width():
    model = Transformer(**VARIANTS[0])
    static = model.static_copy(source_length=9, target_length=5)
    assert static.source_length == 9 and static.get_config()["source_length"] == 9
    want = logits_of(model, SOURCE, DECODER_IN)
    np.testing.assert_allclose(
        logits_of(static, np.pad(SOURCE, [[0, 0], [0, 3]]), DECODER_IN)[REAL],
        want[REAL],
        atol=1e-5,
    )
    state = static.encode(SOURCE, max_length=3)  # padded to 9 wide
    assert state["memory_mask"].shape == (3, 9) and state["cross_key_0"].shape == (3, 2, 9, 8)
    logits, _ = static.decode_step(DECODER_IN[:, 0], state, 0)
    np.testing.assert_allclose(logits, want[:, 0], atol=1e-5)


def test_mixed_precision_training_step_and_decoding():
    options = {**VARIANTS[0], "num_encoder_layers": 1, "num_decoder_layers": 1}
    model = Transformer(**options, dtype="mixed_float16")
    model.compile(optimizer="adam", loss=MaskedSparseCategoricalCrossentropy())
    loss = model.train_on_batch(INPUTS, LABELS)
    assert np.isfinite(loss)
    state = model.encode(SOURCE, max_length=4)
    assert state["self_key_0"].dtype == "float16" and state["attention"].dtype == "float32"
    logits, state = model.decode_step(DECODER_IN[:, 0], state, 0)
    assert logits.dtype == "float32" and np.all(np.isfinite(logits))


# === Learning ===


# Slow (21 s): the small Multi30k test (tests/pipelines) trains a Transformer in the default run.
@pytest.mark.slow
def test_small_transformer_learns_two_digit_addition(tfds_dir):
    """Exact match >= 0.3 on the 500 test additions ("16+75" -> "91") after 10 epochs of the
    6000 training ones; measured 0.68-0.71 over three seeds (final loss 0.25-0.29, first epoch
    1.6-1.7), in 15-18 s on 2 shared cores (D=32, 1+1 layers, batch 64,
    Adam(3e-3, 0.9, 0.98, 1e-9))."""
    from keras_s2s.data import as_strings, load_tfds_split, make_dataset
    from keras_s2s.tokenizers import CharTokenizer

    train = load_tfds_split("addition", "two_digits", "train", tfds_dir)
    test_sources, test_targets = as_strings(
        load_tfds_split("addition", "two_digits", "test", tfds_dir)
    )
    tokenizer = CharTokenizer.build(["0123456789+"])
    dataset = make_dataset(
        train,
        tokenizer,
        tokenizer,
        max_source_length=5,
        max_target_length=3,
        batch_tokens=0,
        batch_size=64,
        shuffle_buffer=6000,
        seed=0,
        fixed_lengths=True,
    )
    keras.utils.set_random_seed(0)
    size = tokenizer.vocabulary_size
    model = Transformer(
        size, size, hidden_dim=32, intermediate_dim=64, num_heads=4,
        num_encoder_layers=1, num_decoder_layers=1, dropout=0.0,
    )  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
        loss=MaskedSparseCategoricalCrossentropy(),
    )
    history = model.fit(dataset, epochs=10, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]

    sources = tokenizer.tokenize(tf.constant(test_sources)).to_tensor(shape=[None, 5])
    state = model.encode(sources, max_length=4)
    tokens, _ = greedy_search(model.decode_step, state, len(test_sources), 4)
    outputs = [s.decode() for s in tokenizer.detokenize(tokens).numpy()]
    exact_match = np.mean([o == t for o, t in zip(outputs, test_targets, strict=True)])
    assert exact_match >= 0.3, exact_match
