"""The `decoder` config string of `Seq2Seq` -> its decoder class."""

from keras_s2s.models.seq2seq.bahdanau_decoder import BahdanauDecoder
from keras_s2s.models.seq2seq.luong_decoder import LuongDecoder
from keras_s2s.models.seq2seq.peeky_decoder import PeekyDecoder
from keras_s2s.models.seq2seq.rnn_decoder import RNNDecoder

DECODERS = {
    "plain": RNNDecoder,
    "peeky": PeekyDecoder,
    "bahdanau": BahdanauDecoder,
    "luong": LuongDecoder,
}
