"""Layers of keras-s2s (keras and keras.ops only)."""

from keras_s2s.layers.lstm_cell import LSTMCell
from keras_s2s.layers.luong_attention import LuongAttention
from keras_s2s.layers.multi_head_attention import MultiHeadAttention
from keras_s2s.layers.packing import Packing
from keras_s2s.layers.positional_encoding import PositionalEncoding
from keras_s2s.layers.reverse_sequence import ReverseSequence
from keras_s2s.layers.simple_rnn_cell import SimpleRNNCell

__all__ = [
    "LSTMCell",
    "LuongAttention",
    "MultiHeadAttention",
    "Packing",
    "PositionalEncoding",
    "ReverseSequence",
    "SimpleRNNCell",
]
