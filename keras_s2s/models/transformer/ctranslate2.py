"""The Transformer family's CTranslate2 converter (`keras_s2s.registry.CTRANSLATE2_CONVERTERS`):
`ctranslate2.specs.TransformerSpec`, filled from the Keras weights (CTranslate2's documented
API for custom converters). The export passes CTranslate2's `specs` module in: the models
import nothing but Keras.

CTranslate2 computes what `Transformer` computes: embeddings scaled by sqrt(D) plus position
encodings (this model's own sinusoids, given as a table, since CTranslate2's built-in ones
order sine and cosine differently), post-norm or pre-norm layers with a final normalization,
relu feed-forward layers, queries scaled by 1 / sqrt(Dh), and the output layer (the target
embedding when tied). Its linear weights are `[out, in]` (Keras kernels are `[in, out]`) and
its self-attention reads one fused query/key/value projection.
"""

from __future__ import annotations

from keras import ops

#: The layer normalization epsilon of every `Transformer` layer norm.
LAYER_NORM_EPSILON = 1e-5


def _array(tensor):
    return ops.convert_to_numpy(tensor)


def _linear(spec, dense) -> None:
    spec.weight = _array(ops.transpose(dense.kernel))
    if dense.use_bias:
        spec.bias = _array(dense.bias)


def _fused(spec, denses) -> None:
    """One linear layer computing `denses` side by side (their outputs concatenated)."""
    spec.weight = _array(ops.concatenate([ops.transpose(d.kernel) for d in denses], axis=0))
    if all(d.use_bias for d in denses):
        spec.bias = _array(ops.concatenate([d.bias for d in denses], axis=0))


def _norm(spec, norm) -> None:
    spec.gamma, spec.beta = _array(norm.gamma), _array(norm.beta)


def _attention(spec, attention, norm, self_attention: bool) -> None:
    q, k, v = attention.query_dense, attention.key_dense, attention.value_dense
    if self_attention:
        _fused(spec.linear[0], [q, k, v])
    else:
        _linear(spec.linear[0], q)
        _fused(spec.linear[1], [k, v])
    _linear(spec.linear[-1], attention.output_dense)
    _norm(spec.layer_norm, norm)


def _feedforward(spec, layer) -> None:
    _linear(spec.linear_0, layer.feedforward.intermediate_dense)
    _linear(spec.linear_1, layer.feedforward.output_dense)
    _norm(spec.layer_norm, layer.feedforward_layer_norm)


def transformer_spec(
    model, specs, source_tokens: list[str], target_tokens: list[str], positions: int
):
    """The `ctranslate2.specs.TransformerSpec` of the Keras `Transformer` `model` (float32
    weights), built with CTranslate2's `specs` module (`ctranslate2.specs`), with its
    vocabularies (token strings by id) and a position table of `positions` rows (the longest
    source or output CTranslate2 may be given)."""
    pre_norm = bool(model.normalize_first)
    spec = specs.TransformerSpec.from_config(
        (model.num_encoder_layers, model.num_decoder_layers), model.num_heads, pre_norm=pre_norm
    )
    spec.config.layer_norm_epsilon = LAYER_NORM_EPSILON
    encodings = _array(model.positional_encoding.encoding(positions, model.hidden_dim))
    encoder, decoder = spec.encoder, spec.decoder
    encoder.embeddings[0].weight = _array(model.source_embedding.embeddings)
    decoder.embeddings.weight = _array(model.target_embedding.embeddings)
    encoder.position_encodings.encodings = encodings
    decoder.position_encodings.encodings = encodings
    for layer_spec, layer in zip(encoder.layer, model.encoder_layers, strict=True):
        _attention(layer_spec.self_attention, layer.self_attention,
                   layer.self_attention_layer_norm, True)  # fmt: skip
        _feedforward(layer_spec.ffn, layer)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers, strict=True):
        _attention(layer_spec.self_attention, layer.self_attention,
                   layer.self_attention_layer_norm, True)  # fmt: skip
        _attention(layer_spec.attention, layer.cross_attention,
                   layer.cross_attention_layer_norm, False)  # fmt: skip
        _feedforward(layer_spec.ffn, layer)
    if pre_norm:
        _norm(encoder.layer_norm, model.encoder_norm)
        _norm(decoder.layer_norm, model.decoder_norm)
    if model.output_projection is None:  # tied: the target embedding, no bias
        decoder.projection.weight = _array(model.target_embedding.embeddings)
    else:
        _linear(decoder.projection, model.output_projection)
    spec.register_source_vocabulary(source_tokens)
    spec.register_target_vocabulary(target_tokens)
    return spec
