"""`Packing`: position-wise work on the real tokens only, and where it is (not) used."""

import numpy as np
import tensorflow as tf

from keras_s2s.layers import MultiHeadAttention, Packing

MASK = np.array([[True, True, False, False], [True, True, True, False], [False] * 4])


def test_pack_takes_real_rows_in_order_and_unpack_puts_them_back_with_zero_padding():
    x = np.arange(3 * 4 * 2, dtype="float32").reshape(3, 4, 2)
    packing = Packing(MASK)
    packed = np.asarray(packing.pack(x))
    np.testing.assert_array_equal(packed, x[MASK])  # row-major, as numpy's boolean index
    unpacked = np.asarray(packing.unpack(packed))
    np.testing.assert_array_equal(unpacked, np.where(MASK[..., None], x, 0.0))


def test_all_padding_packs_to_nothing():
    packing = Packing(np.zeros((2, 3), bool))
    packed = packing.pack(np.ones((2, 3, 5), "float32"))
    assert tuple(packed.shape) == (0, 5)
    np.testing.assert_array_equal(np.asarray(packing.unpack(packed)), np.zeros((2, 3, 5)))


def test_packing_only_in_training_and_never_under_xla():
    assert Packing.for_mask(MASK, training=False) is None
    assert Packing.for_mask(MASK, training=None) is None
    assert Packing.for_mask(None, training=True) is None
    assert isinstance(Packing.for_mask(MASK, training=True), Packing)  # eager
    found = {}

    def probe(mask):
        found[tf.inside_function()] = Packing.for_mask(mask, training=True)
        return tf.constant(0)

    tf.function(probe)(MASK)
    assert isinstance(found.pop(True), Packing)  # a graph without XLA: dynamic shapes are fine
    tf.function(probe, jit_compile=True)(MASK)
    assert found.pop(True) is None  # XLA needs static shapes


def test_attention_on_packed_queries_and_values_equals_the_padded_call():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(3, 4, 8)).astype("float32")
    memory = rng.normal(size=(3, 5, 6)).astype("float32")
    memory_mask = np.array([[True] * 5, [True] * 2 + [False] * 3, [True] * 3 + [False] * 2])
    attention = MultiHeadAttention(num_heads=2, key_dim=4)
    cross_mask = memory_mask[:, None, :]
    want = np.asarray(attention(query, memory, attention_mask=cross_mask))
    queries, values = Packing(MASK), Packing(memory_mask)
    got = attention(
        queries.pack(query),
        values.pack(memory),
        attention_mask=cross_mask,
        query_packing=queries,
        value_packing=values,
    )
    np.testing.assert_allclose(np.asarray(got), want[MASK], atol=1e-5)
    # Self-attention: keys and values are the packed queries' own.
    attention = MultiHeadAttention(num_heads=2, key_dim=4)
    self_mask = MASK[:, None, :]
    want = np.asarray(attention(query, attention_mask=self_mask))
    got = attention(queries.pack(query), attention_mask=self_mask, query_packing=queries)
    np.testing.assert_allclose(np.asarray(got), want[MASK], atol=1e-5)
