"""The Transformer's layers: contract, masks, caches (B=3 batches, tiny widths)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.layers import MultiHeadAttention, PositionalEncoding
from keras_s2s.models.transformer import (
    PositionwiseFeedForward,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)
from tests.contract import run_contract

RNG = np.random.default_rng(0)
B, T, S, D = 3, 4, 6, 16
TARGET = RNG.normal(size=(B, T, D)).astype("float32")
SOURCE = RNG.normal(size=(B, S, D)).astype("float32")
SOURCE_MASK = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], bool)
TARGET_MASK = np.array([[1] * 4, [1] * 2 + [0] * 2, [1] * 4], bool)
LAYER = dict(intermediate_dim=32, num_heads=2, dropout=0.1)


# === Contract: config, .keras round trip, symbolic call, jit training step, float16 ===
# The encoder and decoder layers skip the jit-compiled training step: compiling one alone takes
# about 15 s on 2 shared cores, and the Transformer's contract trains through both
# (tests/models/test_transformer.py).


# The contract fits a model around the layer; this layer has no weights, which Keras warns of.
@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_positional_encoding_contract(tmp_path):
    run_contract(
        PositionalEncoding,
        {"max_wavelength": 100.0},
        TARGET,
        tmp_path,
        train_labels=TARGET,
        loss="mse",
        expected_output_shape=(B, T, D),
        mixed_precision=True,
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )


def test_multi_head_attention_contract(tmp_path):
    run_contract(
        MultiHeadAttention,
        {"num_heads": 2, "key_dim": 4, "dropout": 0.1},
        {"query": TARGET, "value": SOURCE, "attention_mask": SOURCE_MASK[:, None, :]},
        tmp_path,
        train_labels=TARGET,
        loss="mse",
        expected_output_shape=(B, T, D),
        mixed_precision=True,
        expected_num_trainable_weights=8,  # 4 projections x (kernel, bias)
        expected_num_non_trainable_weights=0,
    )


def test_feed_forward_contract(tmp_path):
    run_contract(
        PositionwiseFeedForward,
        {"intermediate_dim": 32, "activation": "gelu"},
        TARGET,
        tmp_path,
        train_labels=TARGET,
        loss="mse",
        expected_output_shape=(B, T, D),
        mixed_precision=True,
        expected_num_trainable_weights=4,
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_layer_contract(tmp_path, normalize_first):
    run_contract(
        TransformerEncoderLayer,
        {**LAYER, "normalize_first": normalize_first},
        {"encoder_sequence": SOURCE, "encoder_padding_mask": SOURCE_MASK},
        tmp_path,
        expected_output_shape=(B, S, D),
        mixed_precision=True,
        expected_num_trainable_weights=16,  # attention 8, 2 norms 4, feed-forward 4
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoder_layer_contract(tmp_path, normalize_first):
    run_contract(
        TransformerDecoderLayer,
        {**LAYER, "normalize_first": normalize_first},
        {
            "decoder_sequence": TARGET,
            "encoder_sequence": SOURCE,
            "decoder_padding_mask": TARGET_MASK,
            "encoder_padding_mask": SOURCE_MASK,
        },
        tmp_path,
        expected_output_shape=(B, T, D),
        mixed_precision=True,
        expected_num_trainable_weights=26,  # 2 attentions 16, 3 norms 6, feed-forward 4
        expected_num_non_trainable_weights=0,
    )


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="num_heads=0"):
        MultiHeadAttention(num_heads=0, key_dim=4)
    with pytest.raises(ValueError, match="dropout=1.0"):
        MultiHeadAttention(num_heads=2, key_dim=4, dropout=1.0)
    with pytest.raises(ValueError, match="intermediate_dim=0"):
        PositionwiseFeedForward(0)
    with pytest.raises(ValueError, match="num_heads=3"):
        TransformerEncoderLayer(32, num_heads=3)(SOURCE)
    with pytest.raises(ValueError, match="exactly one of `encoder_sequence` and"):
        TransformerDecoderLayer(32, num_heads=2)(TARGET)


# === PositionalEncoding ===


def test_positional_encoding_values_and_offset():
    layer = PositionalEncoding()
    zeros = np.zeros((1, 50, 8), "float32")
    pe = np.asarray(layer(zeros))[0]
    position, channel = np.arange(50)[:, None], np.arange(8)[None, :]
    angle = position / 10000.0 ** ((channel - channel % 2) / 8)
    np.testing.assert_allclose(
        pe, np.where(channel % 2 == 0, np.sin(angle), np.cos(angle)), atol=1e-5
    )
    # A decode step at position t gets position t's encoding, with a tensor start index too,
    # inside a jit-compiled function.
    step = tf.function(lambda x, t: layer(x, start_index=t), jit_compile=True)
    for t in (0, 7, 49):
        np.testing.assert_allclose(step(zeros[:, :1], tf.constant(t))[0, 0], pe[t], atol=1e-5)


# === MultiHeadAttention ===


def test_attention_masked_keys_get_exactly_zero_weight_and_do_not_matter():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    mask = SOURCE_MASK[:, None, :]
    out, weights = layer(TARGET, SOURCE, attention_mask=mask, return_attention_scores=True)
    weights = np.asarray(weights)
    assert weights.shape == (B, 2, T, S)
    assert np.all(weights[np.broadcast_to(~SOURCE_MASK[:, None, None, :], weights.shape)] == 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    changed = np.where(SOURCE_MASK[..., None], SOURCE, 100.0 * RNG.normal(size=SOURCE.shape))
    np.testing.assert_allclose(layer(TARGET, changed, attention_mask=mask), out, atol=1e-5)


def test_attention_mask_is_safe_in_float16():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, dtype="mixed_float16")
    out, weights = layer(
        TARGET, SOURCE, attention_mask=SOURCE_MASK[:, None, :], return_attention_scores=True
    )
    assert out.dtype == "float16" and np.all(np.isfinite(np.asarray(out, "float32")))
    assert np.all(np.asarray(weights)[:, :, :, ~SOURCE_MASK[2]][2] == 0)


def test_attention_cache_written_in_place_equals_full_call():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    causal = np.tril(np.ones((T, T), bool))[None]
    full = np.asarray(layer(TARGET, attention_mask=causal))
    cache = (np.zeros((B, 2, T, 4), "float32"),) * 2  # [B, H, L, Dh]
    grown = (np.zeros((B, 2, 0, 4), "float32"),) * 2
    for t in range(T):
        out, cache = layer(
            TARGET[:, t : t + 1],
            attention_mask=causal[:, t : t + 1],
            cache=cache,
            cache_update_index=tf.constant(t),
        )
        np.testing.assert_allclose(out[:, 0], full[:, t], atol=1e-5)
        # A growing cache: the positions so far, one appended per step.
        out, grown = layer(
            TARGET[:, t : t + 1],
            attention_mask=causal[:, t : t + 1, : t + 1],
            cache=grown,
            cache_update_index=tf.constant(t),
            grow_cache=True,
        )
        np.testing.assert_allclose(out[:, 0], full[:, t], atol=1e-5)
        assert tuple(grown[0].shape) == (B, 2, t + 1, 4)
    # Each cache holds every position's projections (the fixed one at its fixed shape).
    keys, values = layer.project_key_value(TARGET)
    for written in (cache, grown):
        np.testing.assert_allclose(written[0], keys, atol=1e-6)
        np.testing.assert_allclose(written[1], values, atol=1e-6)


def test_attention_precomputed_key_value_equals_projecting():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    mask = SOURCE_MASK[:, None, :]
    want = np.asarray(layer(TARGET, SOURCE, attention_mask=mask))
    got, _ = layer(TARGET, attention_mask=mask, cache=layer.project_key_value(SOURCE))
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_attention_dropout_acts_in_training_only():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
    inference = np.asarray(layer(TARGET, SOURCE))
    np.testing.assert_array_equal(layer(TARGET, SOURCE, training=False), inference)
    assert np.abs(np.asarray(layer(TARGET, SOURCE, training=True)) - inference).max() > 1e-3


# === Encoder and decoder layers ===


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_layer_ignores_padding(normalize_first):
    layer = TransformerEncoderLayer(**LAYER, normalize_first=normalize_first)
    out = np.asarray(layer(SOURCE, encoder_padding_mask=SOURCE_MASK))
    changed = np.where(SOURCE_MASK[..., None], SOURCE, RNG.normal(size=SOURCE.shape) + 5.0)
    again = np.asarray(layer(changed.astype("float32"), encoder_padding_mask=SOURCE_MASK))
    np.testing.assert_allclose(again[SOURCE_MASK], out[SOURCE_MASK], atol=1e-5)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoder_layer_is_causal_and_ignores_source_padding(normalize_first):
    layer = TransformerDecoderLayer(**LAYER, normalize_first=normalize_first)
    out = np.asarray(layer(TARGET, SOURCE, encoder_padding_mask=SOURCE_MASK))
    future = TARGET.copy()
    future[:, 2:] += 3.0
    again = np.asarray(layer(future, SOURCE, encoder_padding_mask=SOURCE_MASK))
    np.testing.assert_allclose(again[:, :2], out[:, :2], atol=1e-5)
    assert np.abs(again[:, 2:] - out[:, 2:]).max() > 1e-3
    source = np.where(SOURCE_MASK[..., None], SOURCE, -4.0).astype("float32")
    again = np.asarray(layer(TARGET, source, encoder_padding_mask=SOURCE_MASK))
    np.testing.assert_allclose(again, out, atol=1e-5)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoder_layer_cached_steps_equal_the_training_call(normalize_first):
    layer = TransformerDecoderLayer(**LAYER, normalize_first=normalize_first)
    full, full_weights = layer(
        TARGET, SOURCE, encoder_padding_mask=SOURCE_MASK, return_attention_scores=True
    )
    key_value = layer.cross_attention.project_key_value(SOURCE)
    length = T + 2  # A cache longer than what is decoded.
    cache = (np.zeros((B, 2, length, D // 2), "float32"),) * 2
    for t in range(T):
        out, cache, weights = layer(
            TARGET[:, t : t + 1],
            cross_key_value=key_value,
            encoder_padding_mask=SOURCE_MASK,
            self_attention_cache=cache,
            cache_update_index=tf.constant(t),
            return_attention_scores=True,
        )
        assert tuple(cache[0].shape) == (B, 2, length, D // 2)
        np.testing.assert_allclose(out[:, 0], np.asarray(full)[:, t], atol=1e-5)
        np.testing.assert_allclose(weights[:, :, 0], np.asarray(full_weights)[:, :, t], atol=1e-6)


def test_serialization_registered():
    for cls in (
        MultiHeadAttention,
        PositionalEncoding,
        PositionwiseFeedForward,
        TransformerEncoderLayer,
        TransformerDecoderLayer,
    ):
        assert keras.saving.get_registered_object(f"keras_s2s>{cls.__name__}") is cls
