"""Decoding: one loop (`decode`) driven by a strategy, with logits processors, over one step
function (a model's `decode_step`, after `encode` once)."""

from keras_s2s.decoding.beam import beam_search
from keras_s2s.decoding.engine import DecodingResult, DecodingStrategy, decode
from keras_s2s.decoding.greedy import greedy_search
from keras_s2s.decoding.processors import BanTokens, LogitsProcessor, MinLength, NoRepeatNgram
from keras_s2s.decoding.protocol import StepFn
from keras_s2s.decoding.strategies import BeamSearch, GreedySearch, Sampling, length_penalty

__all__ = [
    "BanTokens",
    "BeamSearch",
    "DecodingResult",
    "DecodingStrategy",
    "GreedySearch",
    "LogitsProcessor",
    "MinLength",
    "NoRepeatNgram",
    "Sampling",
    "StepFn",
    "beam_search",
    "decode",
    "greedy_search",
    "length_penalty",
]
