"""Sequence-to-sequence models (keras and keras.ops only)."""

from keras_s2s.models.base import DataNeeds, EncoderDecoder
from keras_s2s.models.seq2seq import Seq2Seq
from keras_s2s.models.transformer import Transformer

MODELS = {"seq2seq": Seq2Seq, "transformer": Transformer}

__all__ = ["MODELS", "DataNeeds", "EncoderDecoder", "Seq2Seq", "Transformer"]
