"""Decoding: one loop (`decode`) driven by a strategy, with logits processors, over one step
function (a model's `decode_step`, after `encode` once)."""

from keras_s2s.decoding.beam import beam_search
from keras_s2s.decoding.constraints import ConstrainedBeamSearch
from keras_s2s.decoding.engine import DecodingResult, DecodingStrategy, decode
from keras_s2s.decoding.ensemble import Ensemble
from keras_s2s.decoding.greedy import greedy_search
from keras_s2s.decoding.processors import (
    BanSequences,
    BanTokens,
    ForcePrefix,
    LengthRatio,
    LogitsProcessor,
    MinLength,
    NoRepeatNgram,
    StepContext,
)
from keras_s2s.decoding.protocol import StepFn
from keras_s2s.decoding.strategies import BeamSearch, GreedySearch, Sampling, length_penalty

__all__ = [
    "BanSequences",
    "BanTokens",
    "BeamSearch",
    "ConstrainedBeamSearch",
    "DecodingResult",
    "DecodingStrategy",
    "Ensemble",
    "ForcePrefix",
    "GreedySearch",
    "LengthRatio",
    "LogitsProcessor",
    "MinLength",
    "NoRepeatNgram",
    "Sampling",
    "StepContext",
    "StepFn",
    "beam_search",
    "decode",
    "greedy_search",
    "length_penalty",
]
