"""The decoding protocol.

A model that can be decoded implements two methods:

    encode(encoder_token_ids [B, S]) -> state
    decode_step(token_ids [B], state, step) -> (logits [B, V], state)

`state` is any nest (dict/list) of tensors whose shapes never change from step to step: RNN
states, attention memories, or a Transformer's fixed-size key/value cache plus its index.
Decoding strategies (greedy, beam search) take a `step_fn` with the `decode_step` signature, so
they can be tested with fake step functions and reused unchanged by the exporters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

StepFn = Callable[[Any, Any, Any], tuple[Any, Any]]


@runtime_checkable
class DecodingModel(Protocol):
    def encode(self, encoder_token_ids): ...

    def decode_step(self, token_ids, state, step=None): ...
