"""Decoding strategies behind one protocol (`encode` once, then `decode_step` per token)."""

from keras_s2s.decoding.beam import beam_search, length_penalty
from keras_s2s.decoding.greedy import greedy_search
from keras_s2s.decoding.protocol import DecodingModel, StepFn

__all__ = ["DecodingModel", "StepFn", "beam_search", "greedy_search", "length_penalty"]
