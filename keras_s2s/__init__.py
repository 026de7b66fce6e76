"""keras-s2s: sequence-to-sequence models for Keras 3 on TensorFlow.

Subpackages are imported on first use (`keras_s2s.models`, `keras_s2s.Translator`, ...), so
`import keras_s2s.layers` in a training script, or the command line's `--help`, does not load
tensorflow-datasets, tensorflow-text, sentencepiece or sacrebleu.
"""

import importlib

__version__ = "0.3.0"

from keras_s2s.errors import ConfigError, DataError, KerasS2SError  # noqa: E402

_SUBPACKAGES = (
    "data",
    "decoding",
    "evaluation",
    "export",
    "layers",
    "models",
    "tokenizers",
    "tuning",
    "training",
)

__all__ = [
    "ConfigError",
    "DataError",
    "DecodingControls",
    "KerasS2SError",
    "Translator",
    *_SUBPACKAGES,
]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"keras_s2s.{name}")
    if name in ("Translator", "DecodingControls"):
        from keras_s2s import translator

        return getattr(translator, name)
    raise AttributeError(f"module 'keras_s2s' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
