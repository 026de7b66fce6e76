import keras
from keras import ops

from keras_s2s.models.seq2seq._utils import along_time
from keras_s2s.models.seq2seq.rnn_decoder import RNNDecoder


@keras.saving.register_keras_serializable(package="keras_s2s")
class PeekyDecoder(RNNDecoder):
    """The Peeky decoder: the encoder's summary fed to every step and to the output layer.

    The summary is the top encoder layer's final hidden state `[B, H]`; it is concatenated to
    the decoder inputs at every position and to the features the output layer reads. Args and
    call as `RNNDecoder`; `memory` is `{"summary": [B, H]}`.

    References:
        Saitoh, 2018, "Deep Learning from Scratch 2", chapter 7 (Peeky).
    """

    def memory(self, encoder_outputs, encoder_mask, encoder_states):
        del encoder_outputs, encoder_mask
        return {"summary": encoder_states[-1][0]}

    def _input_width(self, inputs_shape, memory_shape):
        return inputs_shape[-1] + memory_shape["summary"][-1]

    def _decoder_inputs(self, inputs, memory):
        return ops.concatenate([inputs, along_time(memory["summary"], inputs)], axis=-1)

    def _features(self, outputs, context, weights, memory):
        del context
        return ops.concatenate([outputs, along_time(memory["summary"], outputs)], axis=-1), weights
