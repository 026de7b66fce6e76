"""keras-s2s: sequence-to-sequence models for Keras 3 on TensorFlow."""

__version__ = "0.1.0"

from keras_s2s import data, decoding, evaluation, layers, models, tokenizers, training  # noqa: E402
from keras_s2s.errors import ConfigError, DataError, KerasS2SError  # noqa: E402
from keras_s2s.translator import Translator  # noqa: E402

__all__ = [
    "ConfigError",
    "DataError",
    "KerasS2SError",
    "Translator",
    "data",
    "decoding",
    "evaluation",
    "layers",
    "models",
    "tokenizers",
    "training",
]
