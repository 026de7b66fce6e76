"""What the decoding strategies share: the step function type and the constant-state split.

`StepFn` is the signature every strategy (`greedy_search`, `beam_search`) decodes with:

    step_fn(token_ids [B], state, step) -> (logits [B, V], state)

`step` is the int32 position of `token_ids` (0 for bos) and `state` a nest (dict/list) of
tensors whose shapes never change from step to step. A model's `decode_step` is one
(`keras_s2s.models.EncoderDecoder` defines the model side: `encode(encoder_token_ids,
max_length)` gives the initial state); so is a fake step function in the strategies' tests.

Constant state: when `state` is a dict, the entries that `step_fn` never changes (encoder
memory, attention keys, a Transformer's cross-attention keys/values; a model lists them in its
`constant_state_keys`) may be named with the strategies' `constant_state_keys` argument.
`split_state` then keeps them out of the loop state and `join_state` adds them back for each
call of `step_fn`: beam search tiles them to `[B*K, ...]` once instead of reordering them by
parent beam at every step. `step_fn` still receives the whole state dict and returns a whole
state; what it returns under a constant key is ignored (so it must not change them: a change
would be lost).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: `(token_ids [B], state, step) -> (logits [B, V], state)`.
StepFn = Callable[[Any, Any, Any], tuple[Any, Any]]


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
