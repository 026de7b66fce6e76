"""Greedy decoding: at each step take the most likely token (`GreedySearch` on the loop)."""

from __future__ import annotations

from keras_s2s.decoding.engine import decode
from keras_s2s.decoding.protocol import StepFn
from keras_s2s.decoding.strategies import GreedySearch
from keras_s2s.tokenizers import BOS_ID, EOS_ID, PAD_ID


def greedy_search(
    step_fn: StepFn,
    state,
    batch_size,
    max_length: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    collect=None,
    constant_state_keys: tuple[str, ...] = (),
    processors=(),
):
    """Decodes `max_length` tokens at most, in one `tf.while_loop` with fixed shapes.

    Works eagerly, inside `tf.function` and with `jit_compile=True`. Stops early once every
    row has produced eos. `keras_s2s.decoding.decode` with `GreedySearch()`, its results
    without the N axis.

    Args:
        step_fn: `(token_ids [B], state, step) -> (logits [B, V], state)`.
        state: the initial state from the model's `encode`.
        batch_size: B (an int or a scalar tensor).
        max_length: the most tokens to generate, eos included.
        bos_id: the target tokenizer's bos id (the first input token).
        eos_id: its eos id (ends an output).
        pad_id: its pad id (fills an output after eos).
        collect: optional `state -> tensor [B, ...]` read after every step (e.g.
            `lambda s: s["attention"]`); its values are returned stacked `[B, max_length, ...]`.
        constant_state_keys: keys of the dict `state` whose entries never change during
            decoding (as for `beam_search`): they are closed over instead of carried through
            the loop. `step_fn` and `collect` still receive the whole state; the entries
            `step_fn` returns under these keys are ignored.
        processors: `keras_s2s.decoding.processors.LogitsProcessor`s applied at each step.

    Returns:
        `(token_ids, scores)`: int32 `[B, max_length]` (eos included, then `pad_id`) and float32
        `[B]` log-probabilities of each output sequence (eos included); with `collect`, a third
        item, the collected values.
    """
    result = decode(
        step_fn, state, batch_size, max_length, GreedySearch(), processors,
        bos_id=bos_id, eos_id=eos_id, pad_id=pad_id,
        constant_state_keys=constant_state_keys, collect=collect,
    )  # fmt: skip
    ids, scores = result.token_ids[:, 0], result.scores[:, 0]
    if collect is not None:
        return ids, scores, result.collected[:, 0]
    return ids, scores
