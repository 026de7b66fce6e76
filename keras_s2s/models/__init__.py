"""Sequence-to-sequence models (keras and keras.ops only)."""

from keras_s2s.models.seq2seq import Seq2Seq

MODELS = {"seq2seq": Seq2Seq}

__all__ = ["MODELS", "Seq2Seq"]
