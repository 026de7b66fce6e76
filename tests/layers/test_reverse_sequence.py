import numpy as np

from keras_s2s.layers import ReverseSequence
from tests.contract import run_contract


def test_reverse_keeps_padding_at_the_end():
    ids = np.array([[5, 6, 7, 0, 0], [4, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]], "int32")
    out = np.asarray(ReverseSequence()(ids))
    np.testing.assert_array_equal(
        out, [[7, 6, 5, 0, 0], [4, 0, 0, 0, 0], [0, 0, 0, 0, 0], [5, 4, 3, 2, 1]]
    )


def test_reverse_twice_is_identity():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 9, size=16)
    ids = np.zeros((16, 9), "int32")
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, 50, size=n)
    layer = ReverseSequence()
    np.testing.assert_array_equal(np.asarray(layer(layer(ids))), ids)


def test_contract(tmp_path):
    ids = np.array([[5, 6, 7, 0], [4, 3, 0, 0]], "int32")
    run_contract(ReverseSequence, {"pad_id": 0}, ids, tmp_path, expected_output_shape=(2, 4))


def test_pad_id_none_reverses_whole_rows():
    ids = np.array([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]], "int32")
    out = np.asarray(ReverseSequence(pad_id=None)(ids))
    np.testing.assert_array_equal(out, [[0, 0, 7, 6, 5], [5, 4, 3, 2, 1]])
