"""`EncoderDecoder`: the contract every model family implements, and the family registry.

Everything outside `keras_s2s.models` (trainer, `Translator`, evaluation, exporters, CLI) asks a
model only what this class defines; none of it names a family's constructor arguments or
variants. A family (a folder under `keras_s2s/models/`, or a user's own module) subclasses it
and registers itself by its `model.type` name with `@register(name)`, which fills `MODELS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect

import keras
from keras import ops

from keras_s2s.registry import MODELS

#: Constructor arguments every family takes and that come from the data or the runtime, not
#: from a pipeline's `[model]` section.
DATA_ARGUMENTS = ("source_vocabulary_size", "target_vocabulary_size", "pad_id")
_NOT_CONFIG = {"self", "kwargs", "dtype", "name", *DATA_ARGUMENTS}
#: The `keras.Model` keyword arguments a family passes on to Keras (and `from_config` passes to
#: a family): its config holds them beside the constructor arguments.
KERAS_ARGUMENTS = ("name", "trainable", "dtype")


def register(name: str):
    """Class decorator: registers a model family under its `model.type` name in `MODELS`.

    Example:
    ```python
    @keras_s2s.models.register("my_family")
    @keras.saving.register_keras_serializable(package="my_package")
    class MyFamily(keras_s2s.models.EncoderDecoder):
        ...
    ```

    Raises `ValueError` if `name` is not a non-empty string or is taken, and `TypeError` if the
    class is not an `EncoderDecoder` that implements `encode` and `decode_step`.
    """
    return MODELS.register(name)


def check_family(cls, name: str) -> None:
    """`TypeError` unless `cls` implements `encode` and `decode_step` of the decoding contract
    (run by `MODELS` on every family, registered by `register` or by an entry point)."""
    missing = [m for m in ("encode", "decode_step") if not _overrides(cls, m)]
    if missing:
        raise TypeError(
            f"{cls.__name__} does not implement {', '.join(missing)} of the decoding "
            f"contract (keras_s2s.models.EncoderDecoder); it cannot be registered as {name!r}"
        )


def _overrides(cls, method: str) -> bool:
    return getattr(cls, method) is not getattr(EncoderDecoder, method)


def _constructor_parameters(cls) -> dict[str, inspect.Parameter]:
    """The named constructor parameters of a family (not `self`, `*args` or `**kwargs`), the
    subclass's first: a constructor that takes `**kwargs` passes them on to its parent's, so a
    variant of a family (a subclass with other defaults) accepts its parent's arguments too."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = {}
    for klass in cls.__mro__:
        if klass is EncoderDecoder or "__init__" not in vars(klass):
            if klass is EncoderDecoder:
                break
            continue
        signature = inspect.signature(klass.__init__).parameters
        for name, p in signature.items():
            if p.kind in kinds and name != "self":
                parameters.setdefault(name, p)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
            break
    return parameters


@dataclasses.dataclass(frozen=True)
class DataNeeds:
    """What a model config needs from the data (see `EncoderDecoder.adapt_to_data`).

    Attributes:
        arguments: the `[model]` arguments with anything derived from the data filled in.
        fixed_lengths: True if every batch must be padded to the data's max lengths
            (`data.max_source_length`, `data.max_target_length + 1`) instead of bucketed.
    """

    arguments: dict
    fixed_lengths: bool = False


@keras.saving.register_keras_serializable(package="keras_s2s")
class EncoderDecoder(keras.Model):
    """Base class of the model families: a functional model plus the decoding contract.

    Shape letters: B batch, S source length, T target length, V target vocabulary.

    A subclass builds a functional graph with the named inputs `encoder_token_ids` `[B, S]` and
    `decoder_token_ids` `[B, T]` (int32, right-padded with `pad_id`; the decoder input starts
    with bos) and the output logits `[B, T, V]`; its config is its constructor arguments. It
    implements:

    - `encode(encoder_token_ids, max_length=None) -> state`: the decoding state, a dict of
      tensors with a leading batch dim whose shapes never change during decoding when
      `max_length` is given (XLA, TFLite); without it (the `Translator` outside XLA) a state
      dimension that is 0 at first may grow by a position per step (a cache of the positions
      decoded so far);
    - `decode_step(token_ids [B], state, step) -> (logits [B, V], state)`: the training path on
      one position (`step`, an int32 scalar, is the position of `token_ids`: 0 for bos);
    - `constant_state_keys`: the keys of the state that `decode_step` passes through unchanged
      (encoder memory, cross-attention keys and values): beam search tiles them once and never
      reorders them;
    - `attention_weights(state) -> [B, S] | None`: the attention over the source of the last
      step, for plots and the SavedModel's `attention` signature (None: no attention);
    - `static_copy(source_length, target_length)`: a model with the same weights and static
      shapes (for unrolled training and TFLite export);
    - `adapt_to_data` and `validate_arguments`: what a pipeline's `[model]` section needs from
      the data, and its checks, without building anything;
    - `search_space`: the family's default keras-tuner search space over its arguments.

    A family registers itself with `@register(name)`; tests/models/test_conformance.py checks
    every registered family against this contract.

    Constructors are strict: a keyword argument that is neither one of the family's own named
    constructor arguments nor `name`, `trainable` or `dtype` raises `TypeError` naming it and
    the valid ones (a functional `keras.Model` would drop it without a word, so a typo such as
    `num_head=7` would build another model than the one asked for). The check runs in
    `__new__`, before anything is built, for every subclass. A family therefore names every
    argument it takes (its config is exactly those, see `get_config`) and passes `**kwargs` on
    to `keras.Model`.
    """

    def __new__(cls, *args, **kwargs):
        # Called without arguments too, when Keras injects `Functional` into the class bases.
        valid = [*_constructor_parameters(cls), *KERAS_ARGUMENTS]
        unknown = [key for key in kwargs if key not in valid]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, valid, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise TypeError(
                f"{cls.__name__} got unknown keyword argument{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(hints)}. Valid arguments: {', '.join(dict.fromkeys(valid))}"
            )
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, dtype=None, **kwargs):
        # A functional `keras.Model` drops `dtype`: the family's layers take it, and the model
        # records it too, so that `get_config` (and so a saved model) keeps the policy.
        super().__init__(*args, **kwargs)
        if dtype is not None:
            self.dtype_policy = dtype

    #: Keys of the decoding state that `decode_step` never changes.
    constant_state_keys: tuple[str, ...] = ()

    # === Config side (class methods: nothing is built) ===

    @classmethod
    def config_arguments(cls) -> dict:
        """`{name: default}` of the constructor arguments a pipeline's `[model]` section may set
        (no default: `inspect.Parameter.empty`)."""
        parameters = _constructor_parameters(cls)
        return {name: p.default for name, p in parameters.items() if name not in _NOT_CONFIG}

    @classmethod
    def arguments_with_defaults(cls, **arguments) -> dict:
        """`arguments` over the constructor's defaults (data arguments default to 1)."""
        values = {
            name: p.default if p.default is not inspect.Parameter.empty else 1
            for name, p in _constructor_parameters(cls).items()
        }
        values.update(arguments)
        return values

    @classmethod
    def validate_arguments(cls, **arguments) -> None:
        """Raises `ValueError` naming the first invalid constructor argument, without building
        anything. Arguments left out take the constructor's defaults."""

    @classmethod
    def adapt_to_data(
        cls, arguments: dict, max_source_length: int, max_target_length: int
    ) -> DataNeeds:
        """The `[model]` arguments completed from the data's max lengths (decoder inputs are
        `max_target_length + 1` long: bos + target). Raises `ValueError` if given arguments
        contradict the data. By default nothing is needed."""
        del max_source_length, max_target_length
        return DataNeeds(dict(arguments))

    @classmethod
    def search_space(cls) -> dict:
        """The family's default keras-tuner search space: `{constructor argument: [values]
        or {"min", "max", "step", "sampling"}}` (see `keras_s2s.tuning`), used when a
        pipeline's `[search]` section names none. By default nothing is searched."""
        return {}

    # === Decoding contract ===

    def encode(self, encoder_token_ids, max_length=None):
        """Encodes the source once; returns the initial decoding state. `max_length`: the most
        decode steps that will follow (a fixed-size cache is allocated for them); None: caches,
        if any, may instead grow by a position per step (starting at length 0)."""
        raise NotImplementedError

    def decode_step(self, token_ids, state, step):
        """Previous tokens `[B]` + state -> next-token logits `[B, V]` + the new state."""
        raise NotImplementedError

    @property
    def has_attention(self) -> bool:
        """True if `attention_weights` returns the attention over the source."""
        return False

    def attention_weights(self, state):
        """The attention weights `[B, S]` of the last decode step (None without attention)."""
        del state
        return None

    def static_arguments(self, source_length: int, target_length: int) -> dict:
        """Constructor arguments that give this model static shapes (see `static_copy`)."""
        del source_length, target_length
        return {}

    def to_source_width(self, encoder_token_ids):
        """`encoder_token_ids` as int32, padded with `pad_id` (or cut) to the model's static
        source width `source_length` when it has one; unchanged otherwise. What `encode`
        does before reading a source."""
        encoder_token_ids = ops.convert_to_tensor(encoder_token_ids, "int32")
        length = getattr(self, "source_length", None)
        if length is None:
            return encoder_token_ids
        missing = ops.maximum(length - ops.shape(encoder_token_ids)[1], 0)
        padded = ops.pad(encoder_token_ids, [[0, 0], [0, missing]], constant_values=self.pad_id)
        return ops.reshape(padded[:, :length], (-1, length))

    def static_copy(self, source_length: int, target_length: int):
        """A model with the same weights whose sources are `source_length` wide and whose
        decoder inputs are `target_length` long, with whatever that allows (unrolled loops):
        what TFLite export converts."""
        return self.copy(**self.static_arguments(source_length, target_length))

    def copy(self, **arguments):
        """A model of this family with the same weights and the given constructor arguments
        changed, e.g. `copy(dtype="float32")`: a model trained under a mixed policy, computing
        in float32 (its variables are float32 already; what export does)."""
        clone = type(self).from_config({**self.get_config(), **arguments})
        clone.set_weights(self.get_weights())
        return clone

    # === Serialization: config = constructor arguments ===

    def get_config(self):
        config = {
            name: getattr(self, name)
            for name in _constructor_parameters(type(self))
            if name not in ("dtype", "name", "trainable")
        }
        config.update(
            {
                "name": self.name,
                "trainable": self.trainable,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
