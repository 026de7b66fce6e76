"""Layers of keras-s2s (keras and keras.ops only)."""

from keras_s2s.layers.reverse_sequence import ReverseSequence

__all__ = ["ReverseSequence"]
