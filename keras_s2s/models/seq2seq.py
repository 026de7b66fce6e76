import keras
from keras import ops

from keras_s2s.layers.reverse_sequence import ReverseSequence

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}


@keras.saving.register_keras_serializable(package="keras_s2s")
class Seq2Seq(keras.Model):
    """Encoder-decoder RNN: the encoder's final state starts the decoder.

    Shape letters: B batch, S source length, T target length, V target vocabulary.

    The model maps token ids to next-token logits (softmax is applied by the loss and by
    the decoders, in float32). It also implements the decoding protocol of
    `keras_s2s.decoding` (`encode` once, then `decode_step` per token), through the same
    layers as the training call: the decode step runs the decoder RNN's own cell.

    Args:
        source_vocabulary_size: int, size of the source vocabulary (id 0 is padding).
        target_vocabulary_size: int, size of the target vocabulary (id 0 is padding).
        embedding_dim: int, width of both embeddings.
        hidden_dim: int, width of the RNN states.
        cell: "lstm", "gru" or "rnn" (tanh).
        reverse_source: bool, reverse the real source tokens before encoding (padding
            stays at the end).
        dropout: float, dropout on the RNN inputs during training.
        pad_id: int, the padding id of both vocabularies.

    Call arguments:
        inputs: dict with `encoder_token_ids` `[B, S]` and `decoder_token_ids` `[B, T]`
            (int32, right-padded with `pad_id`; the decoder input starts with bos).

    Returns:
        logits `[B, T, V]`.

    Example:
    ```python
    model = keras_s2s.models.Seq2Seq(source_vocabulary_size=60, target_vocabulary_size=20)
    logits = model({"encoder_token_ids": np.ones((2, 7), "int32"),
                    "decoder_token_ids": np.ones((2, 5), "int32")})  # [2, 5, 20]
    ```

    References:
        Sutskever et al., 2014, "Sequence to Sequence Learning with Neural Networks";
        Cho et al., 2014, "Learning Phrase Representations using RNN Encoder-Decoder".
    """

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        embedding_dim=64,
        hidden_dim=256,
        cell="lstm",
        reverse_source=False,
        dropout=0.0,
        pad_id=0,
        dtype=None,
        **kwargs,
    ):
        if cell not in _CELLS:
            raise ValueError(f"`cell` must be one of {', '.join(_CELLS)}. Received: cell={cell!r}")
        for arg, value in (
            ("source_vocabulary_size", source_vocabulary_size),
            ("target_vocabulary_size", target_vocabulary_size),
            ("embedding_dim", embedding_dim),
            ("hidden_dim", hidden_dim),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")

        # === Layers ===
        self.pad_id = pad_id  # Read while wiring the graph below.
        rnn = _CELLS[cell]
        self.reverse = (
            ReverseSequence(pad_id=pad_id, name="reverse_source") if reverse_source else None
        )
        self.source_embedding = keras.layers.Embedding(
            source_vocabulary_size,
            embedding_dim,
            mask_zero=pad_id == 0,
            dtype=dtype,
            name="source_embedding",
        )
        self.encoder_rnn = rnn(
            hidden_dim, return_state=True, dropout=dropout, dtype=dtype, name="encoder_rnn"
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocabulary_size, embedding_dim, dtype=dtype, name="target_embedding"
        )
        # The decoder input is causal and right-padded, so padding never influences a real
        # position: it needs no mask (its labels are masked in the loss instead).
        self.decoder_rnn = rnn(
            hidden_dim,
            return_sequences=True,
            return_state=True,
            dropout=dropout,
            dtype=dtype,
            name="decoder_rnn",
        )
        self.output_projection = keras.layers.Dense(
            target_vocabulary_size, dtype=dtype, name="output_projection"
        )

        # === Functional model ===
        encoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_token_ids")
        decoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids")
        state = self._encode(encoder_token_ids)
        logits = self._decode_sequence(decoder_token_ids, state)
        super().__init__(
            inputs={
                "encoder_token_ids": encoder_token_ids,
                "decoder_token_ids": decoder_token_ids,
            },
            outputs=logits,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.cell = cell
        self.reverse_source = reverse_source
        self.dropout = dropout

    def _encode(self, encoder_token_ids, training=None):
        if self.reverse is not None:
            encoder_token_ids = self.reverse(encoder_token_ids)
        mask = ops.not_equal(encoder_token_ids, self.pad_id)
        x = self.source_embedding(encoder_token_ids)
        _, *states = self.encoder_rnn(x, mask=mask, training=training)
        return {"rnn": list(states)}

    def _decode_sequence(self, decoder_token_ids, state, training=None):
        x = self.target_embedding(decoder_token_ids)
        outputs, *_ = self.decoder_rnn(x, initial_state=state["rnn"], training=training)
        return self.output_projection(outputs)

    # === Decoding protocol (see keras_s2s.decoding) ===

    def encode(self, encoder_token_ids):
        """Encodes the source once. Returns the initial decoding state (a dict of tensors)."""
        return self._encode(ops.convert_to_tensor(encoder_token_ids, "int32"), training=False)

    def decode_step(self, token_ids, state, step=None):
        """One decoder step: previous tokens `[B]` + state -> logits `[B, V]` + new state."""
        del step  # An RNN's position lives in its state.
        x = self.target_embedding(ops.convert_to_tensor(token_ids, "int32"))
        output, new_states = self.decoder_rnn.cell(x, list(state["rnn"]), training=False)
        if not isinstance(new_states, list | tuple):
            new_states = [new_states]
        return self.output_projection(output), {**state, "rnn": list(new_states)}

    def get_config(self):
        return {
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "cell": self.cell,
            "reverse_source": self.reverse_source,
            "dropout": self.dropout,
            "pad_id": self.pad_id,
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
