import math

import keras
from keras import ops

from keras_s2s.layers.packing import Packing
from keras_s2s.layers.positional_encoding import PositionalEncoding
from keras_s2s.models.base import EncoderDecoder, register
from keras_s2s.models.transformer.transformer_decoder_layer import TransformerDecoderLayer
from keras_s2s.models.transformer.transformer_encoder_layer import TransformerEncoderLayer


class _OutputDense(keras.layers.Dense):
    """The output layer; in training (without XLA) it projects the real positions only."""

    def call(self, inputs, padding_mask=None, training=None):
        packing = Packing.for_mask(padding_mask, training)
        if packing is None:
            return super().call(inputs)
        return packing.apply(super().call, inputs)


class _TargetEmbedding(keras.layers.ReversibleEmbedding):
    """The target embedding; read in reverse in training (without XLA), it projects the real
    positions only."""

    def call(self, inputs, reverse=False, padding_mask=None, training=None):
        packing = Packing.for_mask(padding_mask, training) if reverse else None
        if packing is None:
            return super().call(inputs, reverse=reverse)
        return packing.apply(lambda x: super(_TargetEmbedding, self).call(x, reverse=True), inputs)

    def compute_output_spec(self, inputs, reverse=False, padding_mask=None, training=None):
        return super().compute_output_spec(inputs, reverse=reverse)


_POSITIVE = (
    "source_vocabulary_size",
    "target_vocabulary_size",
    "hidden_dim",
    "intermediate_dim",
    "num_heads",
    "num_encoder_layers",
    "num_decoder_layers",
)


@register("transformer")
@keras.saving.register_keras_serializable(package="keras_s2s")
class Transformer(EncoderDecoder):
    """The encoder-decoder Transformer: self-attention encoder, causal decoder with
    cross-attention, and a linear output layer.

    Shape letters: B batch, S source length, T target length, L decode steps, V target
    vocabulary, D `hidden_dim`, H `num_heads`, Dh = D / H.

    Tokens are embedded, scaled by sqrt(D), added to sinusoidal position encodings
    (`PositionalEncoding`) and dropped out; N encoder layers (`TransformerEncoderLayer`) read
    the source with its padding masked; N decoder layers (`TransformerDecoderLayer`) read the
    target causally and attend to the encoder outputs; with `normalize_first` (pre-norm) both
    stacks end with a layer normalization. A linear layer (or the transposed target embedding)
    gives the logits, cast to float32 under mixed precision (the loss and the decoders apply
    the softmax).

    Decoding (`keras_s2s.decoding`) runs the training path on one position: `encode` computes
    the encoder outputs' cross-attention keys/values once and allocates fixed-size
    self-attention caches of `max_length` positions; `decode_step` writes each layer's new
    keys/values at position `step` (`ops.slice_update`). The state is a flat dict with a leading
    batch dim, the same shapes at every step (XLA, SavedModel and builtin-only TFLite):
    `memory_mask` bool `[B, S]`, `cross_key_{i}`/`cross_value_{i}` `[B, H, S, Dh]` (constant),
    `self_key_{i}`/`self_value_{i}` `[B, H, L, Dh]`, `attention` float32 `[B, S]`. With
    `encode(..., max_length=None)` the caches grow instead (`past_key_{i}`/`past_value_{i}`
    `[B, H, step, Dh]`, a position appended per step): a step reads and copies the positions
    decoded so far rather than `max_length` of them, which is several times less memory
    traffic on real sentences; the decoding loop lets a state dimension that starts at 0 grow
    (not under XLA or in TFLite, which keep the fixed caches).

    Args:
        source_vocabulary_size: int, size of the source vocabulary.
        target_vocabulary_size: int, V.
        hidden_dim: int, D, the width of embeddings and layers.
        intermediate_dim: int, the width of the feed-forward hidden layers.
        num_heads: int, H; `hidden_dim` must be divisible by it.
        num_encoder_layers: int, encoder layers.
        num_decoder_layers: int, decoder layers.
        dropout: float, dropout on the embeddings (after adding the position encodings), on
            the attention weights and on each sublayer's output, in training only.
        normalize_first: bool, pre-norm layers (normalization before each sublayer, and a
            final one after each stack) instead of the paper's post-norm.
        share_embeddings: bool, one embedding for source and target (needs equal vocabulary
            sizes, e.g. a shared vocabulary).
        tie_output_embedding: bool, the output layer is the target embedding transposed
            (no bias) instead of its own dense layer.
        attention_layer: int, which decoder layer's cross-attention (averaged over heads)
            `attention_weights` reports; negative counts from the top.
        source_length: int or None, a static source width S: the model's source input has
            that width and `encode` pads shorter sources to it (see `static_copy`).
        pad_id: int, the padding id of both vocabularies.
        dtype: dtype policy, e.g. "mixed_float16".
        **kwargs: other `keras.Model` arguments (`name`, ...).

    Call arguments:
        inputs: dict with `encoder_token_ids` `[B, S]` and `decoder_token_ids` `[B, T]`
            (int32, right-padded with `pad_id`; the decoder input starts with bos).

    Returns:
        float32 logits `[B, T, V]`.

    Example:
    ```python
    model = keras_s2s.models.Transformer(
        source_vocabulary_size=60, target_vocabulary_size=20, hidden_dim=32,
        intermediate_dim=64, num_encoder_layers=2, num_decoder_layers=2)
    logits = model({"encoder_token_ids": np.ones((2, 7), "int32"),
                    "decoder_token_ids": np.ones((2, 5), "int32")})  # [2, 5, 20]
    tokens, scores = keras_s2s.decoding.greedy_search(
        model.decode_step, model.encode(np.ones((2, 7), "int32"), max_length=9), 2, 9)
    ```

    References:
        Vaswani et al., 2017, "Attention Is All You Need";
        Press and Wolf, 2017, "Using the Output Embedding to Improve Language Models" (tying);
        Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture" (pre-norm).
    """

    @classmethod
    def search_space(cls):
        """Width (every choice divisible by every head count), feed-forward width, heads,
        depth, dropout and the norm placement."""
        return {
            "hidden_dim": [64, 128, 256],
            "intermediate_dim": [256, 512, 1024],
            "num_heads": [2, 4],
            "num_encoder_layers": {"min": 1, "max": 4},
            "num_decoder_layers": {"min": 1, "max": 4},
            "dropout": [0.0, 0.1, 0.2, 0.3],
            "normalize_first": [False, True],
        }

    @classmethod
    def validate_arguments(cls, **arguments):
        """Raises `ValueError` naming the first invalid constructor argument, without building
        anything. Arguments left out take the constructor's defaults (vocabulary sizes: 1)."""
        values = cls.arguments_with_defaults(**arguments)
        for name in _POSITIVE:
            value = values[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        hidden_dim, num_heads = values["hidden_dim"], values["num_heads"]
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` must be divisible by `num_heads` ({num_heads}). "
                f"Received: hidden_dim={hidden_dim}"
            )
        dropout = values["dropout"]
        if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        if values["share_embeddings"] and (
            values["source_vocabulary_size"] != values["target_vocabulary_size"]
        ):
            raise ValueError(
                "`share_embeddings=True` needs equal vocabulary sizes. Received: "
                f"source_vocabulary_size={values['source_vocabulary_size']}, "
                f"target_vocabulary_size={values['target_vocabulary_size']}"
            )
        layers, attention_layer = values["num_decoder_layers"], values["attention_layer"]
        if not isinstance(attention_layer, int) or not -layers <= attention_layer < layers:
            raise ValueError(
                f"`attention_layer` must index one of the {layers} decoder layers. "
                f"Received: attention_layer={attention_layer!r}"
            )
        source_length = values["source_length"]
        if source_length is not None and (not isinstance(source_length, int) or source_length < 1):
            raise ValueError(
                "`source_length` must be a positive integer or None. "
                f"Received: source_length={source_length!r}"
            )

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        hidden_dim=256,
        intermediate_dim=1024,
        num_heads=4,
        num_encoder_layers=3,
        num_decoder_layers=3,
        dropout=0.1,
        normalize_first=False,
        share_embeddings=False,
        tie_output_embedding=False,
        attention_layer=-1,
        source_length=None,
        pad_id=0,
        dtype=None,
        **kwargs,
    ):
        self.validate_arguments(
            source_vocabulary_size=source_vocabulary_size,
            target_vocabulary_size=target_vocabulary_size,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            dropout=dropout,
            share_embeddings=share_embeddings,
            attention_layer=attention_layer,
            source_length=source_length,
        )

        # === Layers ===
        def embedding_initializer():
            # With the sqrt(D) scale, embeddings start with unit variance, like the encodings.
            return keras.initializers.RandomNormal(stddev=hidden_dim**-0.5)

        # Tied or not, the target embedding can be read in reverse (x E^T, no extra weight).
        self.target_embedding = _TargetEmbedding(
            target_vocabulary_size,
            hidden_dim,
            tie_weights=True,
            embeddings_initializer=embedding_initializer(),
            dtype=dtype,
            name="target_embedding",
        )
        self.source_embedding = (
            self.target_embedding
            if share_embeddings
            else keras.layers.Embedding(
                source_vocabulary_size,
                hidden_dim,
                embeddings_initializer=embedding_initializer(),
                dtype=dtype,
                name="source_embedding",
            )
        )
        self.positional_encoding = PositionalEncoding(dtype=dtype, name="positional_encoding")
        self.source_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="source_dropout")
        self.target_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="target_dropout")
        layer_arguments = dict(
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            dropout=dropout,
            normalize_first=normalize_first,
            dtype=dtype,
        )
        self.encoder_layers = [
            TransformerEncoderLayer(**layer_arguments, name=f"encoder_layer_{i}")
            for i in range(num_encoder_layers)
        ]
        self.decoder_layers = [
            TransformerDecoderLayer(**layer_arguments, name=f"decoder_layer_{i}")
            for i in range(num_decoder_layers)
        ]
        self.encoder_norm = self.decoder_norm = None
        if normalize_first:
            self.encoder_norm = keras.layers.LayerNormalization(
                epsilon=1e-5, dtype=dtype, name="encoder_norm"
            )
            self.decoder_norm = keras.layers.LayerNormalization(
                epsilon=1e-5, dtype=dtype, name="decoder_norm"
            )
        self.output_projection = (
            None
            if tie_output_embedding
            else _OutputDense(target_vocabulary_size, dtype=dtype, name="output_projection")
        )
        # Read while wiring the graph below.
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.pad_id = pad_id
        self.source_length = source_length
        self.attention_layer = attention_layer

        # === Functional model ===
        encoder_token_ids = keras.Input(
            shape=(source_length,), dtype="int32", name="encoder_token_ids"
        )
        decoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids")
        memory, memory_mask = self._encode(encoder_token_ids)
        logits, _, _ = self._decode(
            decoder_token_ids,
            memory_mask,
            memory=memory,
            decoder_padding_mask=ops.not_equal(decoder_token_ids, pad_id),
        )
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
        self.intermediate_dim = intermediate_dim
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.dropout = dropout
        self.normalize_first = normalize_first
        self.share_embeddings = share_embeddings
        self.tie_output_embedding = tie_output_embedding

    # === The one forward path (training call and decode step) ===

    def _embed(self, embedding, token_ids, dropout, start_index=0, training=None):
        x = embedding(token_ids)
        x = x * ops.cast(math.sqrt(self.hidden_dim), x.dtype)
        x = self.positional_encoding(x, start_index=start_index)
        return dropout(x, training=training)

    def _encode(self, encoder_token_ids, training=None):
        """Source ids `[B, S]` -> encoder outputs `[B, S, D]` and the padding mask `[B, S]`."""
        mask = ops.not_equal(encoder_token_ids, self.pad_id)
        x = self._embed(self.source_embedding, encoder_token_ids, self.source_dropout, 0, training)
        for layer in self.encoder_layers:
            x = layer(x, encoder_padding_mask=mask, training=training)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, mask

    def _decode(
        self,
        decoder_token_ids,
        memory_mask,
        memory=None,
        cross_key_values=None,
        caches=None,
        start_index=0,
        decoder_padding_mask=None,
        training=None,
        grow_cache=False,
    ):
        """Decoder ids `[B, T]` at positions `start_index..` -> `(logits [B, T, V], caches,
        cross-attention weights [B, H, T, S] of `attention_layer` or None)`.

        Training reads `memory` (encoder outputs); a decode step reads the precomputed
        `cross_key_values` and writes the self-attention `caches` at `start_index`."""
        x = self._embed(
            self.target_embedding, decoder_token_ids, self.target_dropout, start_index, training
        )
        reported = self.attention_layer % len(self.decoder_layers)
        new_caches, attention = [], None
        for i, layer in enumerate(self.decoder_layers):
            cached = caches is not None
            outputs = layer(
                x,
                encoder_sequence=memory,
                decoder_padding_mask=decoder_padding_mask,
                encoder_padding_mask=memory_mask,
                cross_key_value=None if cross_key_values is None else cross_key_values[i],
                self_attention_cache=caches[i] if cached else None,
                cache_update_index=start_index if cached else None,
                return_attention_scores=cached and i == reported,
                training=training,
                grow_cache=grow_cache,
            )
            if not isinstance(outputs, tuple):
                outputs = (outputs,)
            x = outputs[0]
            if cached:
                new_caches.append(outputs[1])
                if i == reported:
                    attention = outputs[2]
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        # Decode steps pass no padding mask: only the training call packs.
        if self.output_projection is None:
            logits = self.target_embedding(
                x, reverse=True, padding_mask=decoder_padding_mask, training=training
            )
        else:
            logits = self.output_projection(x, padding_mask=decoder_padding_mask, training=training)
        return ops.cast(logits, "float32"), new_caches, attention

    # === Decoding contract (see keras_s2s.models.base) ===

    @property
    def constant_state_keys(self):
        keys = ["memory_mask"]
        for i in range(len(self.decoder_layers)):
            keys += [f"cross_key_{i}", f"cross_value_{i}"]
        return tuple(keys)

    @property
    def has_attention(self):
        return True

    def encode(self, encoder_token_ids, max_length=None):
        """Encodes the source once. Returns the initial decoding state, with self-attention
        caches for `max_length` decode steps, or (None) caches that grow by a position per
        step."""
        # At the static width (padding is masked, so results do not change).
        encoder_token_ids = self.to_source_width(encoder_token_ids)
        memory, memory_mask = self._encode(encoder_token_ids, training=False)
        batch_size = ops.shape(encoder_token_ids)[0]
        head_dim = self.hidden_dim // self.num_heads
        cache_shape = (batch_size, self.num_heads, max_length or 0, head_dim)
        name = "self" if max_length else "past"
        state = {"memory_mask": memory_mask}
        for i, layer in enumerate(self.decoder_layers):
            key, value = layer.cross_attention.project_key_value(memory)
            state[f"cross_key_{i}"], state[f"cross_value_{i}"] = key, value
            # In the layers' compute dtype (float16 under mixed_float16).
            state[f"{name}_key_{i}"] = ops.zeros(cache_shape, key.dtype)
            state[f"{name}_value_{i}"] = ops.zeros(cache_shape, key.dtype)
        state["attention"] = ops.zeros_like(memory_mask, "float32")
        return state

    def decode_step(self, token_ids, state, step):
        """Previous tokens `[B]` at position `step` (int32 scalar, 0 for bos) + state ->
        next-token logits `[B, V]` (float32) + the new state."""
        count = len(self.decoder_layers)
        name = "past" if "past_key_0" in state else "self"  # Growing caches, or fixed ones.
        logits, caches, attention = self._decode(
            ops.expand_dims(ops.convert_to_tensor(token_ids, "int32"), 1),
            state["memory_mask"],
            cross_key_values=[
                (state[f"cross_key_{i}"], state[f"cross_value_{i}"]) for i in range(count)
            ],
            caches=[(state[f"{name}_key_{i}"], state[f"{name}_value_{i}"]) for i in range(count)],
            start_index=ops.cast(step, "int32"),
            training=False,
            grow_cache=name == "past",
        )
        new_state = dict(state)
        for i, (key, value) in enumerate(caches):
            new_state[f"{name}_key_{i}"], new_state[f"{name}_value_{i}"] = key, value
        new_state["attention"] = ops.cast(ops.mean(attention[:, :, 0, :], axis=1), "float32")
        return logits[:, 0], new_state

    def attention_weights(self, state):
        """The cross-attention weights `[B, S]` of the last decode step in decoder layer
        `attention_layer`, averaged over heads (zeros before the first step)."""
        return state["attention"]

    def static_arguments(self, source_length, target_length):
        del target_length  # The decoder reads one position per step.
        return {"source_length": source_length}
