import inspect

import keras
from keras import ops

from keras_s2s.layers.luong_attention import SCORES
from keras_s2s.layers.reverse_sequence import ReverseSequence
from keras_s2s.models.base import DataNeeds, EncoderDecoder, register
from keras_s2s.models.seq2seq.decoders import DECODERS
from keras_s2s.models.seq2seq.rnn_encoder import MERGE_MODES, RNNEncoder
from keras_s2s.models.seq2seq.rnn_layers import RNN_LAYERS


@register("seq2seq")
@keras.saving.register_keras_serializable(package="keras_s2s")
class Seq2Seq(EncoderDecoder):
    """Encoder-decoder RNN, plain, Peeky or with attention over all encoder outputs.

    Shape letters: B batch, S source length, T target length, H `hidden_dim`, V target
    vocabulary.

    The model maps token ids to next-token logits (softmax is applied by the loss and by the
    decoders, in float32). It implements the decoding contract of `EncoderDecoder` (`encode`
    once, then `decode_step` per token) through the same layers as the training call: the
    decode step runs each decoder RNN's own cell.

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
            decode step's state carries the last attention weights (`state["attention"]`,
            float32).
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
            Needs `source_length`.
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
    def search_space(cls):
        """Width, cell, decoder (the attention ones included), bidirectional encoder, depth
        and dropout."""
        return {
            "embedding_dim": [32, 64, 128],
            "hidden_dim": [64, 128, 256],
            "cell": ["lstm", "gru"],
            "decoder": ["peeky", "bahdanau", "luong"],
            "bidirectional": [False, True],
            "num_layers": {"min": 1, "max": 2},
            "dropout": [0.0, 0.1, 0.2, 0.3],
        }

    @classmethod
    def validate_arguments(cls, **arguments):
        """Raises `ValueError` naming the first invalid constructor argument, without building
        anything (pipelines check their `[model]` section with it before reading data).
        Arguments left out take the constructor's defaults (vocabulary sizes: 1)."""
        values = cls.arguments_with_defaults(**arguments)
        cell, merge_mode, decoder = values["cell"], values["merge_mode"], values["decoder"]
        attention_score, dropout = values["attention_score"], values["dropout"]
        source_length, target_length = values["source_length"], values["target_length"]
        unroll, mask_source_padding = values["unroll"], values["mask_source_padding"]
        if cell not in RNN_LAYERS:
            raise ValueError(
                f"`cell` must be one of {', '.join(RNN_LAYERS)}. Received: cell={cell!r}"
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"`merge_mode` must be one of {', '.join(MERGE_MODES)}. "
                f"Received: merge_mode={merge_mode!r}"
            )
        if decoder not in DECODERS:
            raise ValueError(
                f"`decoder` must be one of {', '.join(DECODERS)}. Received: decoder={decoder!r}"
            )
        if attention_score not in SCORES:
            raise ValueError(
                f"`attention_score` must be one of {', '.join(SCORES)}. "
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
        self.encoder = RNNEncoder(
            hidden_dim,
            cell=cell,
            num_layers=num_layers,
            bidirectional=bidirectional,
            merge_mode=merge_mode,
            residual=residual,
            dropout=dropout,
            unroll=unroll,
            dtype=dtype,
            name="encoder",
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocabulary_size, embedding_dim, dtype=dtype, name="target_embedding"
        )
        # The decoder input is causal and right-padded, so padding never influences a real
        # position: it needs no mask (its labels are masked in the loss instead).
        decoder_class = DECODERS[decoder]
        options = {"attention_score": attention_score}
        accepted = inspect.signature(decoder_class.__init__).parameters
        self.rnn_decoder = decoder_class(
            hidden_dim,
            cell=cell,
            num_layers=num_layers,
            residual=residual,
            dropout=dropout,
            unroll=unroll,
            dtype=dtype,
            name="decoder",
            **{key: value for key, value in options.items() if key in accepted},
        )
        self.output_projection = keras.layers.Dense(
            target_vocabulary_size, dtype=dtype, name="output_projection"
        )

        # === Config ===
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.cell = cell
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.residual = residual
        self.decoder = decoder
        self.attention_score = attention_score
        self.reverse_source = reverse_source
        self.mask_source_padding = mask_source_padding
        self.dropout = dropout
        self.source_length = source_length
        self.target_length = target_length
        self.unroll = unroll
        self.pad_id = pad_id

        # === Functional model ===
        encoder_token_ids = keras.Input(
            shape=(source_length,), dtype="int32", name="encoder_token_ids"
        )
        decoder_token_ids = keras.Input(
            shape=(target_length,), dtype="int32", name="decoder_token_ids"
        )
        logits, _ = self._decode(decoder_token_ids, self._encode(encoder_token_ids))
        super().__init__(
            inputs={
                "encoder_token_ids": encoder_token_ids,
                "decoder_token_ids": decoder_token_ids,
            },
            outputs=logits,
            dtype=dtype,
            **kwargs,
        )

    def _encode(self, encoder_token_ids, training=None):
        if self.reverse is not None:
            encoder_token_ids = self.reverse(encoder_token_ids)
        # Padding is masked, or (fixed width) read like any token.
        mask = ops.not_equal(encoder_token_ids, self.pad_id) if self.mask_source_padding else None
        x = self.source_embedding(encoder_token_ids)
        outputs, states = self.encoder(x, mask=mask, training=training)
        if mask is None:  # Attention may attend to every position.
            mask = ops.ones_like(encoder_token_ids, dtype="bool")
        return {"rnn": states, "encoding": self.rnn_decoder.encoding(outputs, mask, states)}

    def _decode(self, decoder_token_ids, state, training=None):
        """The decoder on token ids `[B, T]` (the whole target, or one position) -> logits
        `[B, T, V]` and the state after the last position."""
        x = self.target_embedding(decoder_token_ids)
        outputs = self.rnn_decoder(x, state["rnn"], state["encoding"], training=training)
        new_state = {**state, "rnn": outputs["states"]}
        if "attention" in outputs:
            # float32 in every policy: the decode loops need one dtype from `encode` on.
            new_state["attention"] = ops.cast(outputs["attention"], "float32")
        # float32 logits under mixed precision: the softmax of the loss and the decoders.
        return ops.cast(self.output_projection(outputs["features"]), "float32"), new_state

    # === Data needs (see EncoderDecoder) ===

    @classmethod
    def adapt_to_data(cls, arguments, max_source_length, max_target_length):
        """An unrolled model, one reading fixed-width sources (`mask_source_padding=False`) or
        one given any static length gets `source_length = max_source_length` and
        `target_length = max_target_length + 1` (bos + target), and fixed-width batches; static
        lengths given that differ from those are a `ValueError`."""
        static = any(arguments.get(k) for k in ("unroll", "source_length", "target_length"))
        if not static and arguments.get("mask_source_padding", True):
            return DataNeeds(dict(arguments))
        expected = {"source_length": max_source_length, "target_length": max_target_length + 1}
        completed = {**expected, **arguments}
        for key, value in expected.items():
            if completed[key] != value:
                raise ValueError(
                    f"model.{key}={completed[key]} does not match the data (expected {value} "
                    "from data.max_source_length / data.max_target_length + 1); leave it out to "
                    "derive it"
                )
        return DataNeeds(completed, fixed_lengths=True)

    # === Decoding contract (see EncoderDecoder) ===

    @property
    def constant_state_keys(self):
        # A reversed source's attention is read back in source order through "source_order".
        if self.has_attention and self.reverse is not None:
            return ("encoding", "source_order")
        return ("encoding",)

    @property
    def has_attention(self):
        return self.rnn_decoder.has_attention

    def attention_weights(self, state):
        """The attention `[B, S]` of the last step over the source, in the source's order
        (a model that reverses its source attends to the reversed positions: they are put
        back)."""
        if not self.has_attention:
            return None
        if "source_order" in state:
            return ops.take_along_axis(state["attention"], state["source_order"], axis=1)
        return state["attention"]

    def static_arguments(self, source_length, target_length):
        return {"source_length": source_length, "target_length": target_length, "unroll": True}

    def encode(self, encoder_token_ids, max_length=None):
        """Encodes the source once. Returns the initial decoding state: `{"rnn": states per
        layer, "encoding": what the decoder reads at every step}` (+ `"attention"` `[B, S]`)."""
        del max_length  # An RNN's state does not grow.
        # At the static width, padding is masked, or read as in training (fixed width).
        encoder_token_ids = self.to_source_width(encoder_token_ids)
        state = self._encode(encoder_token_ids, training=False)
        # What the decode steps share, computed once per source, not once per step.
        state["encoding"] = self.rnn_decoder.precompute(state["encoding"])
        if self.has_attention:
            state["attention"] = ops.zeros_like(encoder_token_ids, dtype="float32")
            if self.reverse is not None:
                # Encoded position p holds source token order[p].
                state["source_order"] = self.reverse.indices(encoder_token_ids)
        return state

    def decode_step(self, token_ids, state, step=None):
        """One decoder step: previous tokens `[B]` + state -> logits `[B, V]` + new state (the
        training path on one position)."""
        del step  # An RNN's position lives in its state.
        token_ids = ops.convert_to_tensor(token_ids, "int32")
        logits, state = self._decode(token_ids[:, None], state, training=False)
        return logits[:, 0], state
