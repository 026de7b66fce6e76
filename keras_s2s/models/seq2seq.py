import inspect

import keras
from keras import ops

from keras_s2s.layers.bahdanau_decoder import BahdanauDecoder
from keras_s2s.layers.luong_attention import LuongAttention
from keras_s2s.layers.reverse_sequence import ReverseSequence

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}
_MERGE_MODES = ("concat", "sum", "ave")
_DECODERS = ("plain", "peeky", "bahdanau", "luong")
_SCORES = ("dot", "general", "scaled", "concat")


def _as_list(states):
    return list(states) if isinstance(states, list | tuple) else [states]


def _along_time(vector, sequence):
    """Broadcasts `vector [B, H]` along the time axis of `sequence [B, T, D]` -> `[B, T, H]`."""
    return ops.expand_dims(vector, 1) + ops.zeros_like(sequence[..., :1])


@keras.saving.register_keras_serializable(package="keras_s2s")
class Seq2Seq(keras.Model):
    """Encoder-decoder RNN, plain, Peeky or with attention over all encoder outputs.

    Shape letters: B batch, S source length, T target length, H `hidden_dim`, V target
    vocabulary.

    The model maps token ids to next-token logits (softmax is applied by the loss and by the
    decoders, in float32). It implements the decoding protocol of `keras_s2s.decoding`
    (`encode` once, then `decode_step` per token) through the same layers as the training call:
    the decode step runs each decoder RNN's own cell.

    Args:
        source_vocabulary_size: int, size of the source vocabulary (id 0 is padding).
        target_vocabulary_size: int, size of the target vocabulary (id 0 is padding).
        embedding_dim: int, width of both embeddings.
        hidden_dim: int, H, width of the RNN states.
        cell: "lstm", "gru" or "rnn" (tanh).
        num_layers: int, stacked RNN layers in the encoder and in the decoder.
        bidirectional: bool, bidirectional encoder layers.
        merge_mode: how the two directions merge: "concat" (outputs 2H, final states bridged
            to H by a linear layer), "sum" or "ave".
        residual: bool, skip connections around every stacked layer from the second on.
        decoder: "plain"; "peeky" (the encoder's summary, its top final hidden state, is
            fed to every decoder step and to the output layer); "bahdanau" (additive attention
            from the previous decoder state, its context fed into the first decoder RNN at every
            step, see `BahdanauDecoder`); or "luong" (attention after the top decoder RNN with
            `attention_score`, see `LuongAttention`). With attention, the output layer sees
            the decoder output and the context; source padding gets weight exactly 0; the
            decode step's state carries the last attention weights (`state["attention"]`).
        attention_score: the Luong score: "dot", "general", "scaled" or "concat".
        reverse_source: bool, reverse the real source tokens before encoding (padding stays
            at the end; see `mask_source_padding` for the other way).
        mask_source_padding: bool. True (default): source padding is masked, so results do not
            depend on how much padding a batch has. False: the source is read at its fixed
            width `source_length`, padding included, as the DLFS2 book's models read their
            space-padded sources: padding gets a learned embedding, the encoder reads it (first,
            with `reverse_source`, which then reverses whole rows) and attention may attend to
            it (a "sink" for weight no real token needs). `encode` pads every source to
            `source_length`, so a sentence's translation does not depend on its batch either.
            On DLFS2 dates, Luong dot attention reaches higher exact match by epoch 3 this
            way (README, "Measured"). Needs `source_length`.
        dropout: float, dropout on the inputs of every encoder and decoder RNN cell during
            training (Keras `dropout=`, one mask per sequence; with Bahdanau the cell input is
            `[y_{t-1}; c]`). No recurrent dropout, none on the embeddings or the output layer.
        source_length: int or None, a static source length S. `encode` pads shorter sources
            to it.
        target_length: int or None, a static decoder input length T for the training call.
        unroll: bool, unroll the RNN loops over time (needs `source_length` and
            `target_length`). Faster on CPU for short sequences, and what TFLite needs to
            convert the encoder to builtin ops. The weights are the same as without it.
        pad_id: int, the padding id of both vocabularies.

    Call arguments:
        inputs: dict with `encoder_token_ids` `[B, S]` and `decoder_token_ids` `[B, T]`
            (int32, right-padded with `pad_id`; the decoder input starts with bos).

    Returns:
        logits `[B, T, V]`.

    Example:
    ```python
    model = keras_s2s.models.Seq2Seq(
        source_vocabulary_size=60, target_vocabulary_size=20, decoder="peeky")
    logits = model({"encoder_token_ids": np.ones((2, 7), "int32"),
                    "decoder_token_ids": np.ones((2, 5), "int32")})  # [2, 5, 20]
    ```

    References:
        Sutskever et al., 2014, "Sequence to Sequence Learning with Neural Networks";
        Cho et al., 2014, "Learning Phrase Representations using RNN Encoder-Decoder";
        Saitoh, 2018, "Deep Learning from Scratch 2", chapter 7 (Peeky).
    """

    @classmethod
    def validate_arguments(cls, **arguments):
        """Raises `ValueError` naming the first invalid constructor argument, without building
        anything (pipelines check their `[model]` section with it before reading data).
        Arguments left out take the constructor's defaults (vocabulary sizes: 1)."""
        parameters = inspect.signature(cls.__init__).parameters
        values = {
            name: p.default if p.default is not inspect.Parameter.empty else 1
            for name, p in parameters.items()
            if name not in ("self", "kwargs")
        }
        values.update(arguments)
        cell, merge_mode, decoder = values["cell"], values["merge_mode"], values["decoder"]
        attention_score, dropout = values["attention_score"], values["dropout"]
        source_length, target_length = values["source_length"], values["target_length"]
        unroll, mask_source_padding = values["unroll"], values["mask_source_padding"]
        if cell not in _CELLS:
            raise ValueError(f"`cell` must be one of {', '.join(_CELLS)}. Received: cell={cell!r}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"`merge_mode` must be one of {', '.join(_MERGE_MODES)}. "
                f"Received: merge_mode={merge_mode!r}"
            )
        if decoder not in _DECODERS:
            raise ValueError(
                f"`decoder` must be one of {', '.join(_DECODERS)}. Received: decoder={decoder!r}"
            )
        if attention_score not in _SCORES:
            raise ValueError(
                f"`attention_score` must be one of {', '.join(_SCORES)}. "
                f"Received: attention_score={attention_score!r}"
            )
        for arg in (
            "source_vocabulary_size",
            "target_vocabulary_size",
            "embedding_dim",
            "hidden_dim",
            "num_layers",
        ):
            value = values[arg]
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        for arg, value in (("source_length", source_length), ("target_length", target_length)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"`{arg}` must be a positive integer or None. Received: {arg}={value!r}"
                )
        if unroll and (source_length is None or target_length is None):
            raise ValueError(
                "`unroll=True` needs static lengths: pass `source_length` and `target_length`. "
                f"Received: source_length={source_length}, target_length={target_length}"
            )
        if not mask_source_padding and source_length is None:
            raise ValueError(
                "`mask_source_padding=False` reads sources at a fixed width: pass "
                "`source_length`. Received: source_length=None"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        embedding_dim=64,
        hidden_dim=256,
        cell="lstm",
        num_layers=1,
        bidirectional=False,
        merge_mode="concat",
        residual=False,
        decoder="plain",
        attention_score="general",
        reverse_source=False,
        mask_source_padding=True,
        dropout=0.0,
        source_length=None,
        target_length=None,
        unroll=False,
        pad_id=0,
        dtype=None,
        **kwargs,
    ):
        self.validate_arguments(
            source_vocabulary_size=source_vocabulary_size,
            target_vocabulary_size=target_vocabulary_size,
            embedding_dim=embedding_dim,
            hidden_dim=hidden_dim,
            cell=cell,
            num_layers=num_layers,
            merge_mode=merge_mode,
            decoder=decoder,
            attention_score=attention_score,
            mask_source_padding=mask_source_padding,
            dropout=dropout,
            source_length=source_length,
            target_length=target_length,
            unroll=unroll,
        )

        # === Layers ===
        # Read while wiring the graph below.
        self.pad_id = pad_id
        self.residual = residual
        self.decoder = decoder
        self.merge_mode = merge_mode
        self.bidirectional = bidirectional
        self.source_length = source_length
        self.target_length = target_length
        self.unroll = unroll
        rnn = _CELLS[cell]
        num_states = 2 if cell == "lstm" else 1
        self.mask_source_padding = mask_source_padding
        self.reverse = (
            ReverseSequence(pad_id=pad_id if mask_source_padding else None, name="reverse_source")
            if reverse_source
            else None
        )
        self.source_embedding = keras.layers.Embedding(
            source_vocabulary_size,
            embedding_dim,
            mask_zero=mask_source_padding and pad_id == 0,
            dtype=dtype,
            name="source_embedding",
        )
        self.encoder_layers = []
        self.bridges = []
        for i in range(num_layers):
            layer = rnn(
                hidden_dim,
                return_sequences=True,
                return_state=True,
                dropout=dropout,
                unroll=unroll,
                dtype=dtype,
                name=f"encoder_rnn_{i}",
            )
            if bidirectional:
                layer = keras.layers.Bidirectional(
                    layer, merge_mode=merge_mode, dtype=dtype, name=f"encoder_birnn_{i}"
                )
                if unroll:
                    # Keras 3.15's unrolled loop zeroes masked outputs with the mask in forward
                    # order while a backward layer's outputs are reversed, zeroing real steps
                    # instead. For right-padded sources, the backward layer's padded steps come
                    # first and already output zeros, so the zeroing is not needed.
                    layer.backward_layer.zero_output_for_mask = False
            self.encoder_layers.append(layer)
            if bidirectional and merge_mode == "concat":
                self.bridges.append(
                    [
                        keras.layers.Dense(hidden_dim, dtype=dtype, name=f"bridge_{i}_{k}")
                        for k in range(num_states)
                    ]
                )
        self.target_embedding = keras.layers.Embedding(
            target_vocabulary_size, embedding_dim, dtype=dtype, name="target_embedding"
        )
        # The decoder input is causal and right-padded, so padding never influences a real
        # position: it needs no mask (its labels are masked in the loss instead).
        self.decoder_layers = [
            BahdanauDecoder(
                hidden_dim,
                cell=cell,
                dropout=dropout,
                unroll=unroll,
                dtype=dtype,
                name="decoder_attention_rnn",
            )
            if decoder == "bahdanau" and i == 0
            else rnn(
                hidden_dim,
                return_sequences=True,
                return_state=True,
                dropout=dropout,
                unroll=unroll,
                dtype=dtype,
                name=f"decoder_rnn_{i}",
            )
            for i in range(num_layers)
        ]
        self.attention = (
            LuongAttention(attention_score, dtype=dtype, name="attention")
            if decoder == "luong"
            else None
        )
        self.output_projection = keras.layers.Dense(
            target_vocabulary_size, dtype=dtype, name="output_projection"
        )

        # === Functional model ===
        encoder_token_ids = keras.Input(
            shape=(source_length,), dtype="int32", name="encoder_token_ids"
        )
        decoder_token_ids = keras.Input(
            shape=(target_length,), dtype="int32", name="decoder_token_ids"
        )
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
        self.num_layers = num_layers
        self.attention_score = attention_score
        self.reverse_source = reverse_source
        self.dropout = dropout

    def _merge_directions(self, index, states):
        """Bidirectional final states `[fwd..., bwd...]` -> decoder-sized states `[B, H]`."""
        half = len(states) // 2
        forward, backward = states[:half], states[half:]
        if self.merge_mode == "concat":
            return [
                bridge(ops.concatenate([f, b], axis=-1))
                for bridge, f, b in zip(self.bridges[index], forward, backward, strict=True)
            ]
        if self.merge_mode == "sum":
            return [f + b for f, b in zip(forward, backward, strict=True)]
        return [(f + b) / 2.0 for f, b in zip(forward, backward, strict=True)]

    def _encode(self, encoder_token_ids, training=None):
        if self.reverse is not None:
            encoder_token_ids = self.reverse(encoder_token_ids)
        # Padding is masked, or (fixed width) read like any token.
        mask = ops.not_equal(encoder_token_ids, self.pad_id) if self.mask_source_padding else None
        x = self.source_embedding(encoder_token_ids)
        rnn_states = []
        for i, layer in enumerate(self.encoder_layers):
            outputs, *states = layer(x, mask=mask, training=training)
            x = outputs + x if self.residual and i > 0 else outputs
            rnn_states.append(self._merge_directions(i, states) if self.bidirectional else states)
        state = {"rnn": rnn_states}
        if self.decoder == "peeky":
            state["summary"] = rnn_states[-1][0]  # top layer's final hidden state [B, H]
        if self.decoder in ("bahdanau", "luong"):
            state["memory"] = x  # top encoder outputs [B, S, M]
            if mask is None:  # Attention may attend to every position.
                mask = ops.ones_like(encoder_token_ids, dtype="bool")
            state["memory_mask"] = mask
        return state

    def _decode_sequence(self, decoder_token_ids, state, training=None):
        x = self.target_embedding(decoder_token_ids)
        if self.decoder == "peeky":
            x = ops.concatenate([x, _along_time(state["summary"], x)], axis=-1)
        contexts = None
        for i, layer in enumerate(self.decoder_layers):
            if isinstance(layer, BahdanauDecoder):
                outputs, contexts, _ = layer(
                    x, state["rnn"][i], state["memory"], state["memory_mask"], training=training
                )
            else:
                outputs, *_ = layer(x, initial_state=state["rnn"][i], training=training)
            x = outputs + x if self.residual and i > 0 else outputs
        if self.attention is not None:
            contexts, _ = self.attention(x, state["memory"], state["memory_mask"])
        if contexts is not None:
            x = ops.concatenate([x, contexts], axis=-1)
        if self.decoder == "peeky":
            x = ops.concatenate([x, _along_time(state["summary"], x)], axis=-1)
        return self.output_projection(x)

    # === Decoding protocol (see keras_s2s.decoding) ===

    def encode(self, encoder_token_ids):
        """Encodes the source once. Returns the initial decoding state (a dict of tensors)."""
        encoder_token_ids = ops.convert_to_tensor(encoder_token_ids, "int32")
        if self.source_length is not None:
            # Pad to the static length (masked, or read as in training at the fixed width).
            length = self.source_length
            missing = ops.maximum(length - ops.shape(encoder_token_ids)[1], 0)
            encoder_token_ids = ops.pad(
                encoder_token_ids, [[0, 0], [0, missing]], constant_values=self.pad_id
            )
            encoder_token_ids = ops.reshape(encoder_token_ids[:, :length], (-1, length))
        state = self._encode(encoder_token_ids, training=False)
        if self.decoder in ("bahdanau", "luong"):
            memory = state["memory"]
            state["attention"] = ops.zeros_like(memory[..., 0])  # [B, S]
            # The memory side of the attention score, once per source, not once per step.
            attention = self.attention or self.decoder_layers[0]
            state["memory_keys"] = attention.memory_keys(memory)
        return state

    def decode_step(self, token_ids, state, step=None):
        """One decoder step: previous tokens `[B]` + state -> logits `[B, V]` + new state."""
        del step  # An RNN's position lives in its state.
        x = self.target_embedding(ops.convert_to_tensor(token_ids, "int32"))
        if self.decoder == "peeky":
            x = ops.concatenate([x, state["summary"]], axis=-1)
        new_states, context, new_state = [], None, dict(state)
        for i, layer in enumerate(self.decoder_layers):
            if isinstance(layer, BahdanauDecoder):
                outputs, context, new_state["attention"], states = layer.step(
                    x, state["rnn"][i], state["memory"], state["memory_keys"], state["memory_mask"]
                )
            else:
                outputs, states = layer.cell(x, list(state["rnn"][i]), training=False)
            x = outputs + x if self.residual and i > 0 else outputs
            new_states.append(_as_list(states))
        if self.attention is not None:
            context, new_state["attention"] = self.attention(
                x, state["memory"], state["memory_mask"], memory_keys=state["memory_keys"]
            )
        if context is not None:
            x = ops.concatenate([x, context], axis=-1)
        if self.decoder == "peeky":
            x = ops.concatenate([x, state["summary"]], axis=-1)
        new_state["rnn"] = new_states
        return self.output_projection(x), new_state

    def get_config(self):
        return {
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "cell": self.cell,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "merge_mode": self.merge_mode,
            "residual": self.residual,
            "decoder": self.decoder,
            "attention_score": self.attention_score,
            "reverse_source": self.reverse_source,
            "mask_source_padding": self.mask_source_padding,
            "dropout": self.dropout,
            "source_length": self.source_length,
            "target_length": self.target_length,
            "unroll": self.unroll,
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
