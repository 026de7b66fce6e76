"""Sequence-to-sequence models (keras and keras.ops only).

`MODELS` maps each registered family's `model.type` name to its class; a family registers
itself with `@register(name)` (see `keras_s2s.models.base`), so importing this package
registers the built-in ones.
"""

from keras_s2s.models.base import MODELS, DataNeeds, EncoderDecoder, register
from keras_s2s.models.seq2seq import Seq2Seq
from keras_s2s.models.transformer import Transformer

__all__ = ["MODELS", "DataNeeds", "EncoderDecoder", "Seq2Seq", "Transformer", "register"]
