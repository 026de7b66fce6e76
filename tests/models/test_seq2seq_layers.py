"""The layer contract (tests/contract.py) for every layer of the recurrent family."""

import numpy as np
import pytest

from keras_s2s.layers import LuongAttention
from keras_s2s.models.seq2seq import (
    BahdanauAttentionRNN,
    BahdanauDecoder,
    LuongDecoder,
    PeekyDecoder,
    RNNDecoder,
    RNNEncoder,
)
from tests.contract import run_contract

RNG = np.random.default_rng(0)
B, T, S, E, H = 3, 4, 6, 8, 16
TARGET = RNG.normal(size=(B, T, E)).astype("float32")
SOURCE = RNG.normal(size=(B, S, E)).astype("float32")
MEMORY = RNG.normal(size=(B, S, H)).astype("float32")
MASK = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], bool)
STATE = RNG.normal(size=(B, H)).astype("float32")


def lstm_states(num_layers):
    return [[STATE, STATE * 0.5] for _ in range(num_layers)]


# LSTM layer: kernel, recurrent kernel, bias (3 weights); Dense: kernel, bias.
CASES = {
    "encoder-bidirectional-concat": (
        RNNEncoder,
        dict(units=H, num_layers=2, bidirectional=True, merge_mode="concat", residual=True),
        {"inputs": SOURCE, "mask": MASK},
        2 * 2 * 3 + 2 * 2 * 2,  # 2 layers x 2 directions x LSTM + 2 layers x 2 bridges
    ),
    "encoder-gru-sum": (
        RNNEncoder,
        dict(units=H, cell="gru", bidirectional=True, merge_mode="sum"),
        {"inputs": SOURCE, "mask": MASK},
        2 * 3,
    ),
    "decoder-plain-deep": (
        RNNDecoder,
        dict(units=H, num_layers=2, residual=True, dropout=0.1),
        {"inputs": TARGET, "initial_state": lstm_states(2)},
        2 * 3,
    ),
    "decoder-peeky": (
        PeekyDecoder,
        dict(units=H),
        {"inputs": TARGET, "initial_state": lstm_states(1), "encoding": {"summary": STATE}},
        3,
    ),
    "decoder-luong-general": (
        LuongDecoder,
        dict(units=H, attention_score="general"),
        {
            "inputs": TARGET,
            "initial_state": lstm_states(1),
            "encoding": {"outputs": MEMORY, "mask": MASK},
        },
        3 + 1,  # + the general score's kernel
    ),
    "decoder-bahdanau-deep": (
        BahdanauDecoder,
        dict(units=H, num_layers=2, cell="gru"),
        {
            "inputs": TARGET,
            "initial_state": [[STATE], [STATE]],
            "encoding": {"outputs": MEMORY, "mask": MASK},
        },
        # Attention RNN (GRU cell 3, memory Dense 2, query Dense 1, v 1) + a GRU layer
        7 + 3,
    ),
    "bahdanau-attention-rnn": (
        BahdanauAttentionRNN,
        dict(units=H, dropout=0.1),
        {
            "inputs": TARGET,
            "initial_state": [STATE, STATE],
            "memory": MEMORY,
            "memory_mask": MASK,
        },
        3 + 2 + 1 + 1,
    ),
    "luong-attention-concat": (
        LuongAttention,
        dict(score="concat"),
        {"query": TARGET, "memory": MEMORY, "memory_mask": MASK},
        1 + 2 + 1,  # query Dense (no bias), memory Dense, v
    ),
    "luong-attention-scaled": (
        LuongAttention,
        dict(score="scaled"),
        {"query": MEMORY[:, :T], "memory": MEMORY, "memory_mask": MASK},
        0,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_layer_contract(tmp_path, case):
    cls, init_kwargs, inputs, num_weights = CASES[case]
    run_contract(
        cls,
        init_kwargs,
        inputs,
        tmp_path,
        expected_num_trainable_weights=num_weights,
        expected_num_non_trainable_weights=0,
        mixed_precision=True,
    )
