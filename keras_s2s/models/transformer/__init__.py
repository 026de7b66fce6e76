"""The Transformer family (Vaswani et al., 2017): the model and its layers."""

from keras_s2s.models.transformer.positionwise_feed_forward import PositionwiseFeedForward
from keras_s2s.models.transformer.transformer import Transformer
from keras_s2s.models.transformer.transformer_decoder_layer import TransformerDecoderLayer
from keras_s2s.models.transformer.transformer_encoder_layer import TransformerEncoderLayer

__all__ = [
    "PositionwiseFeedForward",
    "Transformer",
    "TransformerDecoderLayer",
    "TransformerEncoderLayer",
]
