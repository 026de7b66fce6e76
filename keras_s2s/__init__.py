"""keras-s2s: sequence-to-sequence models for Keras 3 on TensorFlow."""

__version__ = "0.1.0"

from keras_s2s import (  # noqa: E402
    data,
    decoding,
    evaluation,
    export,
    layers,
    models,
    tokenizers,
    training,
)
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
    "export",
    "layers",
    "models",
    "tokenizers",
    "training",
]
