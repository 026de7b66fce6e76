"""Beam search with length normalization and n-best output (`BeamSearch` on the loop)."""

from __future__ import annotations

from keras_s2s.decoding.engine import decode
from keras_s2s.decoding.protocol import StepFn
from keras_s2s.decoding.strategies import BeamSearch
from keras_s2s.tokenizers import BOS_ID, EOS_ID, PAD_ID


def beam_search(
    step_fn: StepFn,
    state,
    batch_size,
    max_length: int,
    beam_size: int,
    length_penalty_alpha=0.0,
    num_results: int = 1,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    constant_state_keys: tuple[str, ...] = (),
    processors=(),
):
    """Decodes with a beam of `beam_size` hypotheses per example (`keras_s2s.decoding.decode`
    with `BeamSearch`).

    Args:
        step_fn: `(token_ids [B*K], state, step) -> (logits [B*K, V], state)`.
        state: the initial state from the model's `encode`, with a leading batch dim B (it is
            tiled to B*K here).
        batch_size: B.
        max_length: the most tokens per hypothesis, eos included.
        beam_size: K, fixed per compiled function.
        length_penalty_alpha: GNMT alpha >= 0 (a float or scalar tensor); 0 ranks by
            log-probability.
        num_results: N <= K best hypotheses returned per example.
        bos_id: the target tokenizer's bos id (the first input token).
        eos_id: its eos id (ends an output).
        pad_id: its pad id (fills an output after eos).
        constant_state_keys: keys of the dict `state` whose entries never change during
            decoding (encoder memory, attention keys, a Transformer's cross-attention keys and
            values; a model's `constant_state_keys`). They are tiled to `[B*K, ...]` once and
            never reordered by parent beam; `step_fn` still receives the whole state, and the
            entries it returns under these keys are ignored. Every other entry is reordered by
            parent beam at each step.
        processors: `keras_s2s.decoding.processors.LogitsProcessor`s applied at each step.

    Returns:
        `(token_ids [B, N, max_length], scores [B, N], log_probs [B, N])`: hypotheses best first
        (eos included, then padding), their length-normalized scores and their log-probabilities.
    """
    strategy = BeamSearch(beam_size, length_penalty_alpha, num_results)
    result = decode(
        step_fn, state, batch_size, max_length, strategy, processors,
        bos_id=bos_id, eos_id=eos_id, pad_id=pad_id, constant_state_keys=constant_state_keys,
    )  # fmt: skip
    return result.token_ids, result.scores, result.log_probs
