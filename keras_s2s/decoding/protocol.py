"""The decoding protocol.

A model that can be decoded implements two methods:

    encode(encoder_token_ids [B, S]) -> state
    decode_step(token_ids [B], state, step) -> (logits [B, V], state)

`state` is any nest (dict/list) of tensors whose shapes never change from step to step: RNN
states, attention memories, or a Transformer's fixed-size key/value cache plus its index.
Decoding strategies (greedy, beam search) take a `step_fn` with the `decode_step` signature, so
they can be tested with fake step functions and reused unchanged by the exporters.

Constant state: when `state` is a dict, the entries that `decode_step` never changes (encoder
memory, attention keys, a Transformer's cross-attention keys/values; a model lists them in its
`constant_state_keys`) may be named with the strategies' `constant_state_keys` argument. They
are then kept out of the loop state: beam search tiles them to `[B*K, ...]` once instead of
reordering them by parent beam at every step. `step_fn` still receives the whole state dict and
returns a whole state; what it returns under a constant key is ignored (so it must not change
them: a change would be lost).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

StepFn = Callable[[Any, Any, Any], tuple[Any, Any]]


@runtime_checkable
class DecodingModel(Protocol):
    def encode(self, encoder_token_ids): ...

    def decode_step(self, token_ids, state, step=None): ...


def split_state(state, constant_state_keys: tuple[str, ...], missing_ok: bool = False):
    """`state` -> `(varying, constants)`: two dicts, the entries not under and under
    `constant_state_keys`. Without constant keys, `(state, {})` for any nest.

    Raises `ValueError` if `state` is not a dict, or (unless `missing_ok`, as for the states
    a step function returns) lacks one of the keys.
    """
    if isinstance(constant_state_keys, str):
        raise ValueError(
            "`constant_state_keys` must be a tuple of keys, not a string. "
            f"Received: constant_state_keys={constant_state_keys!r}"
        )
    if not constant_state_keys:
        return state, {}
    if not isinstance(state, Mapping):
        raise ValueError(
            "`constant_state_keys` needs a dict state. "
            f"Received: state of type {type(state).__name__}, "
            f"constant_state_keys={constant_state_keys!r}"
        )
    missing = [key for key in constant_state_keys if key not in state]
    if missing and not missing_ok:
        raise ValueError(
            f"`constant_state_keys` names keys the state does not have: {missing}; the state "
            f"has {sorted(state)}. Received: constant_state_keys={constant_state_keys!r}"
        )
    keys = set(constant_state_keys)
    varying = {key: value for key, value in state.items() if key not in keys}
    constants = {key: value for key, value in state.items() if key in keys}
    return varying, constants


def join_state(varying, constants: dict):
    """The whole state a step function receives: `varying` plus the `constants`."""
    return {**varying, **constants} if constants else varying
