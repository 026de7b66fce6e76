"""Training: the masked loss and metric, strategy, compile settings and the pipeline trainer."""

from keras_s2s.training.exact_match import ExactMatch
from keras_s2s.training.losses import MaskedSparseCategoricalCrossentropy
from keras_s2s.training.metrics import MaskedAccuracy
from keras_s2s.training.trainer import build_model, compile_model, make_strategy, train

__all__ = [
    "ExactMatch",
    "MaskedAccuracy",
    "MaskedSparseCategoricalCrossentropy",
    "build_model",
    "compile_model",
    "make_strategy",
    "train",
]
