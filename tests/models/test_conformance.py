"""The model-family conformance suite (after keras-hub's `run_backbone_test`).

Every family registered in `keras_s2s.models.MODELS` passes the whole `EncoderDecoder`
contract, in a few tiny variants each (`TINY_CONFIGS`): the decode steps equal the training
call, the `constant_state_keys` entries stay unchanged, `static_copy` and a `.keras` round
trip give the same outputs, a training step runs under `mixed_bfloat16`, unknown constructor
arguments are rejected, and greedy and beam search through `keras_s2s.Translator` are
consistent with the model's own distribution. A family registered without a tiny config here
fails (`test_every_registered_family_has_a_tiny_config`), so a new family cannot skip a check.

Every check holds by construction, for any weights: equalities up to float rounding, and
search results compared with the teacher-forced scores of what the search returned.
"""

import functools
import inspect
import random

import keras
import numpy as np
import pytest
from keras import ops

import keras_s2s
from keras_s2s.decoding import greedy_search
from keras_s2s.models import MODELS, EncoderDecoder, Seq2Seq, register
from keras_s2s.tokenizers import CharTokenizer
from keras_s2s.training import MaskedSparseCategoricalCrossentropy
from tests.test_translator import teacher_forced

V = 12  # the vocabulary of `tokenizer()`: 4 special ids (pad 0, unk 1, bos 2, eos 3) + 8 letters
PAD, BOS, EOS = 0, 2, 3
SOURCE = np.array([[4, 5, 6, 7, 0, 0], [11, 10, 0, 0, 0, 0], [8, 9, 8, 9, 8, 9]], "int32")
DECODER_IN = np.array([[2, 4, 5, 6, 7], [2, 11, 0, 0, 0], [2, 8, 9, 8, 9]], "int32")
LABELS = np.array([[4, 5, 6, 7, 3], [11, 3, 0, 0, 0], [8, 9, 8, 9, 3]], "int32")
INPUTS = {"encoder_token_ids": SOURCE, "decoder_token_ids": DECODER_IN}
# Right padding and a causal decoder: a real position reads real positions only, so the decode
# steps (which read no padding mask) must equal the training call there.
REAL = DECODER_IN != PAD
TEXTS = ["abcd", "hg", "efefef"]
MAX_TARGET = 4  # Translator: target tokens at most (+ eos: 5 decode steps)

_SEQ2SEQ = dict(embedding_dim=8, hidden_dim=8)
_TRANSFORMER = dict(
    hidden_dim=8, intermediate_dim=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1
)
# family -> variant -> constructor arguments (besides the two vocabulary sizes, V each). The
# variants are some of those test_seq2seq.py's MATRIX and test_transformer.py's VARIANTS run,
# at smaller sizes; those files leave the checks made here to this suite for them.
TINY_CONFIGS = {
    "seq2seq": {
        "plain_gru_reverse": dict(_SEQ2SEQ, cell="gru", reverse_source=True),
        "peeky_rnn": dict(_SEQ2SEQ, cell="rnn", decoder="peeky"),
        "bahdanau_reverse_dropout": dict(
            _SEQ2SEQ, cell="lstm", decoder="bahdanau", reverse_source=True, dropout=0.2
        ),
        "luong_general_bidirectional": dict(
            _SEQ2SEQ, cell="lstm", decoder="luong", attention_score="general", bidirectional=True
        ),
        "bidirectional_deep_residual": dict(
            _SEQ2SEQ,
            cell="gru",
            num_layers=2,
            residual=True,
            bidirectional=True,
            merge_mode="concat",
        ),
    },
    "transformer": {
        "post_norm": dict(_TRANSFORMER, dropout=0.1),
        "pre_norm_shared_tied_static": dict(
            _TRANSFORMER,
            num_decoder_layers=2,
            normalize_first=True,
            share_embeddings=True,
            tie_output_embedding=True,
            attention_layer=0,
            source_length=SOURCE.shape[1],
        ),
    },
}
#: The constructor arguments that only size a model (the rest choose its variant).
SIZE_ARGUMENTS = {
    "embedding_dim", "hidden_dim", "intermediate_dim", "num_heads", "num_encoder_layers",
    "num_decoder_layers", "source_vocabulary_size", "target_vocabulary_size",
}  # fmt: skip


def variants_of(family) -> list[dict]:
    """The variants the suite runs for a family: its tiny configs without the sizes."""
    return [
        {k: v for k, v in config.items() if k not in SIZE_ARGUMENTS}
        for config in TINY_CONFIGS[family].values()
    ]


_MISSING = "<no tiny config>"
CASES = [
    pytest.param(family, variant, id=f"{family}-{variant}")
    for family in MODELS
    for variant in TINY_CONFIGS.get(family, [_MISSING])
]


def test_every_registered_family_has_a_tiny_config():
    missing = sorted(set(MODELS) - set(TINY_CONFIGS))
    assert not missing, (
        f"model families {missing} are registered but have no tiny config in "
        "tests/models/test_conformance.py TINY_CONFIGS: add one, so the conformance suite runs "
        "on them"
    )


def config_of(family, variant) -> dict:
    if variant == _MISSING:
        pytest.fail(f"model family {family!r} has no tiny config in TINY_CONFIGS")
    return TINY_CONFIGS[family][variant]


@functools.cache
def tokenizer():
    return CharTokenizer.build(["abcdefgh"])


@functools.cache
def built(family, variant):
    """The model of a case (shared by the checks, which do not change it)."""
    # Keras draws its default seeds from Python's generator: the same weights in every run.
    random.seed(0)
    return MODELS[family](V, V, **config_of(family, variant))


def teacher_forced_steps(model, source=SOURCE, decoder_in=DECODER_IN):
    """`encode` + `decode_step` fed `decoder_in` one position at a time. Returns the logits
    `[B, T, V]` and the states before and after each step (T + 1 of them)."""
    state = model.encode(source, max_length=decoder_in.shape[1])
    states, steps = [state], []
    for t in range(decoder_in.shape[1]):
        logits, state = model.decode_step(decoder_in[:, t], state, t)
        steps.append(ops.convert_to_numpy(logits))
        states.append(state)
    return np.stack(steps, axis=1), states


def _numpy(nest) -> list:
    return [ops.convert_to_numpy(t) for t in keras.tree.flatten(nest)]


def state_spec(state):
    """The structure, shapes and dtypes of a decoding state."""
    return keras.tree.map_structure(
        lambda t: (tuple(t.shape), keras.backend.standardize_dtype(t.dtype)), state
    )


def check_decode_steps(model):
    """The decode steps equal the training call; the state keeps its structure, shapes and
    dtypes; its constant entries do not change at all; attention weights are distributions."""
    logits, states = teacher_forced_steps(model)
    want = ops.convert_to_numpy(model(INPUTS))
    assert logits.dtype == want.dtype == np.float32
    np.testing.assert_allclose(logits[REAL], want[REAL], rtol=1e-5, atol=1e-4)

    first = states[0]
    assert isinstance(first, dict), type(first)
    keys = tuple(model.constant_state_keys)
    assert set(keys) <= set(first), (keys, sorted(first))
    constants = {key: _numpy(first[key]) for key in keys}
    for state in states[1:]:
        assert state_spec(state) == state_spec(first)
        for key in keys:
            for got, initial in zip(_numpy(state[key]), constants[key], strict=True):
                np.testing.assert_array_equal(got, initial, err_msg=key)

    weights = model.attention_weights(states[-1])
    if not model.has_attention:
        assert weights is None
    else:
        weights = ops.convert_to_numpy(weights)
        assert weights.shape == SOURCE.shape
        assert np.all(weights >= 0)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("family, variant", CASES)
def test_decode_steps_equal_the_training_call(family, variant):
    check_decode_steps(built(family, variant))


@pytest.mark.parametrize("family, variant", CASES)
def test_static_copy_gives_the_same_logits(family, variant):
    model = built(family, variant)
    static = model.static_copy(SOURCE.shape[1], DECODER_IN.shape[1])
    assert type(static) is type(model)
    want = ops.convert_to_numpy(model(INPUTS))
    got = ops.convert_to_numpy(static(INPUTS))
    np.testing.assert_allclose(got[REAL], want[REAL], rtol=1e-5, atol=1e-5)
    # The static model decodes as the model does.
    got_steps, _ = teacher_forced_steps(static)
    np.testing.assert_allclose(got_steps[REAL], want[REAL], rtol=1e-5, atol=1e-4)


def greedy(model, source=SOURCE, max_length=6, fixed=True):
    """Greedy decoding; `fixed=False` encodes without `max_length` (growing caches)."""
    state = model.encode(source, max_length=max_length if fixed else None)
    return [
        ops.convert_to_numpy(t)
        for t in greedy_search(
            model.decode_step,
            state,
            len(source),
            max_length,
            constant_state_keys=model.constant_state_keys,
        )
    ]


def check_save_and_load(model, path):
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(INPUTS)), ops.convert_to_numpy(model(INPUTS)), atol=1e-6
    )
    (want_tokens, want_scores), (tokens, scores) = greedy(model), greedy(restored)
    np.testing.assert_array_equal(tokens, want_tokens)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize("family, variant", CASES)
def test_saved_and_loaded_model_decodes_the_same_tokens(family, variant, tmp_path):
    check_save_and_load(built(family, variant), str(tmp_path / "model.keras"))


@pytest.mark.parametrize("family, variant", CASES)
def test_encoding_without_max_length_decodes_the_same(family, variant):
    """`encode(source)` without `max_length` (what the `Translator` asks outside XLA: a model
    may then keep caches that grow by a position per step) decodes what the fixed-size
    state of `encode(source, max_length)` decodes."""
    model = built(family, variant)
    (want_tokens, want_scores), (tokens, scores) = greedy(model), greedy(model, fixed=False)
    np.testing.assert_array_equal(tokens, want_tokens)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize("family, variant", CASES)
def test_one_mixed_bfloat16_training_step(family, variant):
    model = MODELS[family](V, V, **config_of(family, variant), dtype="mixed_bfloat16")
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in model.layers)
    assert all(weight.dtype == "float32" for weight in model.weights)
    # Eagerly: what is checked is the dtypes, not tracing (test_seq2seq.py and
    # test_transformer.py compile training steps).
    model.compile(optimizer="sgd", loss=MaskedSparseCategoricalCrossentropy(), run_eagerly=True)
    before = _numpy(model.trainable_weights)
    loss = model.train_on_batch(INPUTS, LABELS)
    assert np.isfinite(loss)
    assert any(np.any(a != b) for a, b in zip(before, _numpy(model.trainable_weights), strict=True))
    # Logits stay float32 (the loss's and the decoders' softmax), decode steps too.
    assert keras.backend.standardize_dtype(model(INPUTS).dtype) == "float32"
    # A decode step keeps the state's shapes and dtypes (the decode loops need them). Two
    # cache positions: over one, Keras warns of a softmax over a size-1 axis.
    state = model.encode(SOURCE, max_length=2)
    logits, new_state = model.decode_step(DECODER_IN[:, 0], state, 0)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(ops.convert_to_numpy(logits)))
    assert state_spec(new_state) == state_spec(state)


def policies(model) -> set[str]:
    return {layer.dtype_policy.name for layer in model._flatten_layers(include_self=False)}


@pytest.mark.parametrize("family, variant", CASES)
def test_a_mixed_policy_survives_saving_and_copy_changes_it(family, variant, tmp_path):
    """The model records the policy its layers were built with (a functional Model drops
    `dtype`), so a saved mixed-precision model loads in it; `copy(dtype="float32")` rebuilds
    the same weights computing in float32 (what export does)."""
    model = MODELS[family](V, V, **config_of(family, variant), dtype="mixed_bfloat16")
    assert model.dtype_policy.name == "mixed_bfloat16"
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert restored.dtype_policy.name == "mixed_bfloat16"
    assert policies(restored) == policies(model) and "mixed_bfloat16" in policies(model)
    copy = restored.copy(dtype="float32")
    assert copy.dtype_policy.name == "float32" and "mixed_bfloat16" not in policies(copy)
    for a, b in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    float32 = MODELS[family](V, V, **config_of(family, variant))
    float32.set_weights(model.get_weights())
    np.testing.assert_allclose(
        ops.convert_to_numpy(copy(INPUTS)), ops.convert_to_numpy(float32(INPUTS)), atol=1e-6
    )


def check_unknown_arguments_rejected(cls, config):
    """Every constructor argument misspelt (its last letter dropped) is a `TypeError` that
    names the typo and lists the valid arguments; nothing is built."""
    valid = set(inspect.signature(cls.__init__).parameters)
    for name in cls.config_arguments():
        typo = name[:-1]
        if not typo or typo in valid:
            continue
        with pytest.raises(TypeError) as raised:
            cls(V, V, **config, **{typo: 1})
        message = str(raised.value)
        assert f"'{typo}'" in message and name in message.split("Valid arguments:")[1], message
    with pytest.raises(TypeError, match="'droput'.*'num_head'"):
        cls(V, V, **config, droput=0.5, num_head=7)
    # Positional misuse fails as Python makes it fail.
    with pytest.raises(TypeError, match="multiple values"):
        cls(V, V, source_vocabulary_size=V, **config)
    with pytest.raises(TypeError, match="positional"):
        cls(*[V] * 64)


@pytest.mark.parametrize("family", list(MODELS))
def test_unknown_constructor_arguments_are_a_type_error(family):
    variants = TINY_CONFIGS.get(family, {_MISSING: None})
    check_unknown_arguments_rejected(MODELS[family], config_of(family, next(iter(variants))))


@pytest.mark.parametrize("family, variant", CASES)
def test_greedy_and_beam_search_through_the_translator(family, variant):
    model = built(family, variant)
    t = tokenizer()
    translator = keras_s2s.Translator(model, t, t, SOURCE.shape[1], MAX_TARGET)
    sources = ops.convert_to_numpy(translator.encode_sources(TEXTS))
    usable = [i for i in range(V) if i not in (PAD, BOS)]

    # Greedy: each token is an argmax of the model's distribution, pad after eos; the score is
    # the path's log-probability.
    ids, scores = (ops.convert_to_numpy(x) for x in translator.decode_ids(sources))
    assert ids.shape == (len(TEXTS), 1, MAX_TARGET + 1)
    log_probs, lengths, steps = teacher_forced(model, t, sources, ids)
    np.testing.assert_allclose(scores, log_probs, atol=1e-4)
    for row in range(len(TEXTS)):
        hypothesis, length = ids[row, 0], lengths[row, 0]
        for step in range(length):
            assert hypothesis[step] in usable
            assert steps[row, 0, step, hypothesis[step]] >= steps[row, 0, step].max() - 1e-5
        assert np.all(hypothesis[length:] == PAD)

    # Beam: distinct hypotheses, best first, each scored by its log-probability.
    beam, beam_scores = (ops.convert_to_numpy(x) for x in translator.decode_ids(sources, 3, 3, 0.0))
    assert beam.shape == (len(TEXTS), 3, MAX_TARGET + 1)
    for row in range(len(TEXTS)):
        assert len({tuple(h) for h in beam[row]}) == 3
    assert np.all(np.diff(beam_scores, axis=1) <= 1e-6)
    beam_log_probs, _, _ = teacher_forced(model, t, sources, beam)
    np.testing.assert_allclose(beam_scores, beam_log_probs, atol=1e-4)


# === The registry ===


def test_the_built_in_families_are_registered():
    assert MODELS["seq2seq"] is Seq2Seq
    assert MODELS["transformer"] is keras_s2s.models.Transformer
    assert keras_s2s.models.register is register


def test_registering_a_taken_name_or_a_non_family_is_an_error():
    with pytest.raises(ValueError, match="already registered as 'seq2seq'.*Seq2Seq"):
        register("seq2seq")(type("Other", (Seq2Seq,), {}))
    with pytest.raises(
        TypeError,
        match="Only `keras_s2s.models.base.EncoderDecoder` subclasses can be registered as a model",
    ):
        register("dense")(keras.layers.Dense)
    with pytest.raises(TypeError, match="does not implement encode, decode_step"):
        register("empty")(type("Empty", (EncoderDecoder,), {}))
    with pytest.raises(ValueError, match="non-empty string"):
        register("")
    assert "dense" not in MODELS and "empty" not in MODELS


@keras.saving.register_keras_serializable(package="tests")
class MeanGRU(EncoderDecoder):
    """A user's own family, defined outside the package: the mean of the source embeddings is
    the initial state of a GRU decoder."""

    def __init__(
        self, source_vocabulary_size, target_vocabulary_size, width=8, pad_id=0, dtype=None,
        **kwargs,
    ):  # fmt: skip
        self.source_embedding = keras.layers.Embedding(source_vocabulary_size, width, dtype=dtype)
        self.target_embedding = keras.layers.Embedding(target_vocabulary_size, width, dtype=dtype)
        self.gru = keras.layers.GRU(width, return_sequences=True, return_state=True, dtype=dtype)
        self.output_projection = keras.layers.Dense(target_vocabulary_size, dtype=dtype)
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.width = width
        self.pad_id = pad_id
        encoder_token_ids = keras.Input((None,), dtype="int32", name="encoder_token_ids")
        decoder_token_ids = keras.Input((None,), dtype="int32", name="decoder_token_ids")
        logits, _ = self._decode(decoder_token_ids, self._encode(encoder_token_ids))
        super().__init__(
            inputs={"encoder_token_ids": encoder_token_ids, "decoder_token_ids": decoder_token_ids},
            outputs=logits,
            dtype=dtype,
            **kwargs,
        )

    def _encode(self, encoder_token_ids):
        real = ops.expand_dims(ops.not_equal(encoder_token_ids, self.pad_id), -1)
        real = ops.cast(real, self.source_embedding.compute_dtype)
        total = ops.sum(self.source_embedding(encoder_token_ids) * real, axis=1)
        return total / ops.maximum(ops.sum(real, axis=1), 1)

    def _decode(self, decoder_token_ids, state):
        outputs, state = self.gru(self.target_embedding(decoder_token_ids), initial_state=state)
        return ops.cast(self.output_projection(outputs), "float32"), state

    def encode(self, encoder_token_ids, max_length=None):
        return {"h": self._encode(ops.convert_to_tensor(encoder_token_ids, "int32"))}

    def decode_step(self, token_ids, state, step):
        token_ids = ops.convert_to_tensor(token_ids, "int32")
        logits, h = self._decode(token_ids[:, None], state["h"])
        return logits[:, 0], {"h": h}


def test_a_family_registered_from_outside_the_package(tmp_path):
    from keras_s2s.training.building import build_model

    register("mean_gru")(MeanGRU)
    try:
        assert MODELS["mean_gru"] is MeanGRU
        # Registered without a tiny config here, it fails the suite.
        with pytest.raises(AssertionError, match=r"\['mean_gru'\] are registered but"):
            test_every_registered_family_has_a_tiny_config()
        assert set(MeanGRU.config_arguments()) == {"width"}
        model = build_model({"type": "mean_gru", "width": 6}, V, V)
        assert type(model) is MeanGRU and model.get_config()["width"] == 6
        # The base class's strict constructor covers it.
        with pytest.raises(TypeError, match=r"'hidden_dim'.*Valid arguments: .*width"):
            MeanGRU(V, V, hidden_dim=4)
        check_unknown_arguments_rejected(MeanGRU, {})
        check_decode_steps(model)
        check_save_and_load(model, str(tmp_path / "mean_gru.keras"))
    finally:
        MODELS.unregister("mean_gru")
    assert "mean_gru" not in MODELS
