"""Built-in TFDS builders. Importing this package registers them with `tfds.load`."""

from keras_s2s.data.builders.addition import Addition
from keras_s2s.data.builders.date_normalization import DateNormalization
from keras_s2s.data.builders.generated import GeneratedTaskConfig

__all__ = ["Addition", "DateNormalization", "GeneratedTaskConfig"]
