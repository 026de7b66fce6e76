"""Decoding strategies over one step function (a model's `decode_step`, after `encode` once)."""

from keras_s2s.decoding.beam import beam_search, length_penalty
from keras_s2s.decoding.greedy import greedy_search
from keras_s2s.decoding.protocol import StepFn

__all__ = ["StepFn", "beam_search", "greedy_search", "length_penalty"]
