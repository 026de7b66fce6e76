"""The recurrent family: encoder-decoder RNNs, plain, Peeky or with attention."""

from keras_s2s.models.seq2seq.bahdanau_attention_rnn import BahdanauAttentionRNN
from keras_s2s.models.seq2seq.bahdanau_decoder import BahdanauDecoder
from keras_s2s.models.seq2seq.decoders import DECODERS
from keras_s2s.models.seq2seq.luong_decoder import LuongDecoder
from keras_s2s.models.seq2seq.peeky_decoder import PeekyDecoder
from keras_s2s.models.seq2seq.rnn_decoder import RNNDecoder
from keras_s2s.models.seq2seq.rnn_encoder import RNNEncoder
from keras_s2s.models.seq2seq.seq2seq import Seq2Seq

__all__ = [
    "DECODERS",
    "BahdanauAttentionRNN",
    "BahdanauDecoder",
    "LuongDecoder",
    "PeekyDecoder",
    "RNNDecoder",
    "RNNEncoder",
    "Seq2Seq",
]
