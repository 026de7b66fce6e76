"""The recurrent layers and cells the Seq2Seq family is built from, by config name."""

import keras

from keras_s2s.models.seq2seq import _utils

#: `cell` config name -> Keras RNN layer.
RNN_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}
#: `cell` config name -> Keras RNN cell.
RNN_CELLS = {
    "lstm": keras.layers.LSTMCell,
    "gru": keras.layers.GRUCell,
    "rnn": keras.layers.SimpleRNNCell,
}


def num_states(cell: str) -> int:
    """States per layer: `[h, c]` for an LSTM, `[h]` otherwise."""
    return 2 if cell == "lstm" else 1


def run_rnn(layer, inputs, initial_state, training=None):
    """Runs a Keras RNN layer (`return_sequences`, `return_state`) over `inputs [B, T, E]`.

    Returns `(outputs [B, T, H], states)`. A one-position input at inference (a decode step)
    goes straight through the layer's cell, which is what the layer's loop does for T = 1,
    without a loop around it.
    """
    if inputs.shape[1] == 1 and not training:
        output, states = layer.cell(inputs[:, 0], list(initial_state), training=False)
        return output[:, None], _utils.as_list(states)
    outputs, *states = layer(inputs, initial_state=list(initial_state), training=training)
    return outputs, states
