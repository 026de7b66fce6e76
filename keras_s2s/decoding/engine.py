"""The decoding loop: one `tf.while_loop` driven by a strategy, with logits processors.

After OpenNMT-tf's `dynamic_decode` (a `DecodingStrategy` with `initialize` / `step` /
`finalize`) and keras-hub's `Sampler.run_loop`. At each step the loop

1. calls the step function (a model's `decode_step`) on the last tokens and the state,
2. applies the logits processors in order (pad and bos are always banned first),
3. takes the log-softmax, and lets the strategy pick the next tokens (and, for beam search,
   the parent row of each new row, by which the loop reorders the state),

until the strategy is done or `max_length` tokens are out. Shapes never change from step to
step, so the loop runs eagerly, in `tf.function`, under XLA, in a SavedModel and in
builtin-only TFLite; the one exception is a model state dimension that is 0 in the initial
state (a cache that grows by a position per step, `Transformer.encode(max_length=None)`),
which the loop lets grow (eagerly, in `tf.function` and in a SavedModel, not under XLA).
R = B x `strategy.width` rows are decoded: a beam's hypotheses or a source's samples are rows
of their own, each with its own model state.

A strategy is a small class (`GreedySearch`, `BeamSearch`, `Sampling` in
`keras_s2s.decoding.strategies`); a processor too (`keras_s2s.decoding.processors`). Neither
knows the model, and the loop never imports `keras_s2s.models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from keras_s2s.decoding.processors import BanTokens, LogitsProcessor, StepContext
from keras_s2s.decoding.protocol import StepFn, join_state, split_state


class Setup(NamedTuple):
    """What a strategy is told of the loop it runs in."""

    batch_size: Any  # B: an int or a scalar int32 tensor.
    max_length: int  # L: the most tokens a row outputs, eos included.
    bos_id: int
    eos_id: int
    pad_id: int


class DecodingResult(NamedTuple):
    """What `decode` returns (N results per example, L = `max_length`)."""

    token_ids: tf.Tensor  # int32 [B, N, L]: eos included, then padding; best first if ranked.
    scores: tf.Tensor  # float32 [B, N]: what the strategy ranks by.
    log_probs: tf.Tensor  # float32 [B, N]: the log-probability of each output (eos included).
    collected: tf.Tensor | None  # [B, N, L, ...]: `collect`'s value after each step, or None.


class DecodingStrategy:
    """How the next tokens are chosen; the loop (`decode`) does the rest.

    A strategy keeps its own loop state (a nest of tensors whose shapes never change) and
    implements:

    - `initialize(setup)` -> its loop state;
    - `step(setup, step, log_probs [R, V], state)` -> `(tokens [R], parents, state)`:
      `parents` is None, or, for a strategy with `reorders = True`, the int32 `[B, width]`
      parent row (within its example) of each new row;
    - `done(setup, state)` -> a bool scalar: the loop stops early once it is True (by
      default, once every example's `examples_done` is);
    - `history(setup, state)` -> int32 `[R, L]`: each row's tokens so far (for processors);
    - `finalize(setup, state)` -> `(token_ids [B, N, L], scores [B, N], log_probs [B, N])`.
    """

    #: Rows decoded per example (beam size, samples per source).
    width = 1
    #: Whether `step` returns parent rows by which the model state is reordered.
    reorders = False
    #: Whether the loop may drop an example's rows once it is done (`decode(compact=True)`):
    #: a strategy that says so implements `examples_done` and `select`, and its results for an
    #: example do not depend on the other examples in the batch.
    compacts = False

    def initialize(self, setup: Setup):
        raise NotImplementedError

    def step(self, setup: Setup, step, log_probs, state):
        raise NotImplementedError

    def done(self, setup: Setup, state):
        return tf.reduce_all(self.examples_done(setup, state))

    def history(self, setup: Setup, state):
        raise NotImplementedError

    def finalize(self, setup: Setup, state):
        raise NotImplementedError

    def examples_done(self, setup: Setup, state):
        """bool `[B]`: the examples whose results can no longer change (for `compacts`, and
        the default `done`)."""
        raise NotImplementedError

    def select(self, setup: Setup, state, examples):
        """The loop state of the examples at int32 `examples [b]` only (for `compacts`)."""
        raise NotImplementedError


def example_rows(examples, width: int):
    """int32 `[b * width]`: the rows of the examples at int32 `examples [b]` (each example's
    `width` rows in a row)."""
    return tf.reshape(examples[:, None] * width + tf.range(width)[None, :], [-1])


def tile_rows(tensor, width: int):
    """`[B, ...]` -> `[B * width, ...]`, each example repeated `width` times in a row."""
    return tf.repeat(tensor, width, axis=0) if width > 1 else tensor


def gather_rows(nest, parents, batch_size, width: int):
    """Picks rows `parents [B, W]` (the parent row, within its example, of each new row) in
    each `[B * W, ...]` tensor of `nest`."""

    def gather(t):
        shaped = tf.reshape(t, tf.concat([[batch_size, width], tf.shape(t)[1:]], 0))
        picked = tf.gather(shaped, parents, batch_dims=1)
        return tf.reshape(picked, tf.shape(t))

    return tf.nest.map_structure(gather, nest)


def _loose_shape(t) -> tf.TensorShape:
    """A loop variable's shape invariant: the batch dim may change (known only at run time,
    or shrinking as examples leave) and a dim that starts at 0 may grow (a growing cache);
    every other dim is fixed."""
    if not t.shape.rank:
        return t.shape
    return tf.TensorShape([None] + [None if d == 0 else d for d in t.shape[1:]])


class _Loop(NamedTuple):
    """What one step of either loop of `decode` needs besides its loop state."""

    step_fn: StepFn
    strategy: DecodingStrategy
    processors: list
    needs_history: bool
    constant_state_keys: tuple[str, ...]

    def step(self, setup, step, tokens, strategy_state, state, constants, source_lengths):
        """One decoding step: the model's logits, the processors, the strategy's choice.
        Returns `(tokens, parents, strategy_state, state)`, `state` as the step function
        returned it (not yet reordered)."""
        logits, state = self.step_fn(tokens, join_state(state, constants), step)
        state, _ = split_state(state, self.constant_state_keys, missing_ok=True)
        logits = tf.cast(logits, tf.float32)
        strategy = self.strategy
        history = strategy.history(setup, strategy_state) if self.needs_history else None
        context = StepContext(step, history, source_lengths)
        for processor in self.processors:
            logits = processor(logits, context)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        tokens, parents, strategy_state = strategy.step(setup, step, log_probs, strategy_state)
        return tokens, parents, strategy_state, state


def decode(
    step_fn: StepFn,
    state,
    batch_size,
    max_length: int,
    strategy: DecodingStrategy,
    processors: Sequence[LogitsProcessor] = (),
    bos_id: int = 2,
    eos_id: int = 3,
    pad_id: int = 0,
    constant_state_keys: tuple[str, ...] = (),
    collect=None,
    source_lengths=None,
    compact: bool = False,
) -> DecodingResult:
    """Decodes at most `max_length` tokens per row with `strategy`, in one `tf.while_loop`.

    Args:
        step_fn: `(token_ids [R], state, step) -> (logits [R, V], state)` (see
            `keras_s2s.decoding.protocol`).
        state: the initial state from the model's `encode`, with a leading batch dim B (tiled
            here to the R = B x `strategy.width` rows).
        batch_size: B (an int or a scalar tensor).
        max_length: the most tokens per row, eos included.
        strategy: a `DecodingStrategy` (`GreedySearch()`, `BeamSearch(4)`, `Sampling(...)`).
        processors: `LogitsProcessor`s applied in order at each step, after the ban of pad and
            bos.
        bos_id: the target tokenizer's bos id (the first input token).
        eos_id: its eos id (ends an output).
        pad_id: its pad id (fills an output after eos).
        constant_state_keys: keys of the dict `state` whose entries never change during
            decoding (a model's `constant_state_keys`): tiled to the rows once, closed over
            instead of carried through the loop, never reordered.
        collect: optional `state -> tensor [R, ...]` read after every step (e.g. the
            attention weights); its values come back stacked in `DecodingResult.collected`.
            Only for strategies whose rows are their results (greedy search, sampling): a
            `ValueError` for one that reorders rows (beam search).
        source_lengths: int32 `[B]`, each source's length in tokens, for processors that
            read them (`LengthRatio`).
        compact: drop the rows of each example from the loop once the strategy says it is
            done (`DecodingStrategy.compacts`), so a batch's later steps compute only the
            examples still going; the results are the same. The batch then shrinks from step
            to step, which XLA and TFLite do not allow: only in eager mode, `tf.function` and
            SavedModels. Ignored (the batch stays whole) for a strategy that does not compact
            (sampling, constrained beam search), with `collect`, or with a processor that
            holds a tensor per example (one that overrides `for_rows`, e.g. `ForcePrefix`).

    Returns:
        A `DecodingResult`.
    """
    if collect is not None and strategy.reorders:
        raise ValueError(
            f"`collect` needs a strategy whose rows are its results (greedy search, sampling); "
            f"{type(strategy).__name__} reorders its rows"
        )
    setup = Setup(batch_size, max_length, bos_id, eos_id, pad_id)
    width = strategy.width
    processors = [p.for_rows(width) for p in (BanTokens((pad_id, bos_id)), *processors)]
    needs_history = any(p.needs_history for p in processors)
    if source_lengths is not None:
        source_lengths = tile_rows(tf.cast(source_lengths, tf.int32), width)
    elif any(p.needs_source_lengths for p in processors):
        names = [type(p).__name__ for p in processors if p.needs_source_lengths]
        raise ValueError(f"{', '.join(names)} read the source lengths: pass `source_lengths`")
    state, constants = split_state(state, constant_state_keys)
    state = tf.nest.map_structure(lambda t: tile_rows(t, width), state)
    # [R, ...] once, for every step: closed over by `body`, so never part of the loop state
    # (except in the compacting loop, where rows leave it).
    constants = tf.nest.map_structure(lambda t: tile_rows(t, width), constants)
    loop = _Loop(step_fn, strategy, processors, needs_history, constant_state_keys)
    if compact and _compactable(strategy, processors, collect):
        return _compacting_loop(loop, setup, state, constants, source_lengths)
    rows = batch_size * width
    columns = tf.range(max_length)
    if collect is not None:
        first = collect(join_state(state, constants))
        collected = tf.zeros(tf.concat([[rows, max_length], tf.shape(first)[1:]], 0), first.dtype)
    else:
        collected = tf.zeros([0])

    def cond(step, tokens, strategy_state, collected, state):
        del tokens, collected, state
        return (step < max_length) & ~strategy.done(setup, strategy_state)

    def body(step, tokens, strategy_state, collected, state):
        tokens, parents, strategy_state, state = loop.step(
            setup, step, tokens, strategy_state, state, constants, source_lengths
        )
        if collect is not None:
            value = tf.expand_dims(collect(join_state(state, constants)), 1)
            at_step = tf.reshape(columns == step, [1, max_length] + [1] * (value.shape.rank - 2))
            collected = tf.where(at_step, value, collected)
        if strategy.reorders:
            state = gather_rows(state, parents, batch_size, width)
        return step + 1, tokens, strategy_state, collected, state

    initial = (
        tf.constant(0),
        tf.fill([rows], tf.constant(bos_id, tf.int32)),
        strategy.initialize(setup),
        collected,
        state,
    )
    invariants = tf.nest.map_structure(_loose_shape, initial)
    _, _, strategy_state, collected, _ = tf.while_loop(
        cond, body, initial, shape_invariants=invariants, maximum_iterations=max_length
    )
    token_ids, scores, log_probs = strategy.finalize(setup, strategy_state)
    if collect is None:
        return DecodingResult(token_ids, scores, log_probs, None)
    collected = tf.reshape(collected, tf.concat([[batch_size, width], tf.shape(collected)[1:]], 0))
    return DecodingResult(token_ids, scores, log_probs, collected)


def _compactable(strategy: DecodingStrategy, processors, collect) -> bool:
    """Whether `decode(compact=True)` can drop finished examples (see `decode`)."""
    per_example = [p for p in processors if type(p).for_rows is not LogitsProcessor.for_rows]
    return strategy.compacts and collect is None and not per_example


def _compacting_loop(loop: _Loop, setup: Setup, state, constants, source_lengths):
    """`decode`'s loop with `compact=True`: the loop state holds only the examples still
    going (`example_ids`, their positions in the batch). After each step the examples the
    strategy calls done are finalized into `results` (`[B, ...]`, by position) and their rows
    leave every tensor of the loop: the model state (reordered by parent rows in the same
    gather), the constant state, the tokens, the strategy's state and the source lengths."""
    strategy = loop.strategy
    width, batch_size = strategy.width, setup.batch_size
    rows = batch_size * width
    if source_lengths is None:
        source_lengths = tf.zeros([rows], tf.int32)
        lengths_given = False
    else:
        lengths_given = True
    initial_strategy_state = strategy.initialize(setup)
    # Overwritten for every example (when it is done, or after the last step).
    results = strategy.finalize(setup, initial_strategy_state)

    def finalize_into(results, setup_now, strategy_state, example_ids, which):
        """`results` with the examples at positions `which [k]` (of the loop's) finalized."""
        chosen = strategy.select(setup_now, strategy_state, which)
        out = strategy.finalize(setup_now._replace(batch_size=tf.size(which)), chosen)
        at = tf.gather(example_ids, which)[:, None]
        return tuple(
            tf.tensor_scatter_nd_update(r, at, o) for r, o in zip(results, out, strict=True)
        )

    def cond(step, tokens, strategy_state, state, constants, lengths, example_ids, results):
        del tokens, strategy_state, state, constants, lengths, results
        return (step < setup.max_length) & (tf.size(example_ids) > 0)

    def body(step, tokens, strategy_state, state, constants, lengths, example_ids, results):
        setup_now = setup._replace(batch_size=tf.size(example_ids))
        tokens, parents, strategy_state, state = loop.step(
            setup_now, step, tokens, strategy_state, state, constants,
            lengths if lengths_given else None,
        )  # fmt: skip
        done = strategy.examples_done(setup_now, strategy_state)
        going = tf.cast(tf.where(~done)[:, 0], tf.int32)
        if strategy.reorders:  # each new row's parent row, in the same gather (every step)
            parent_rows = tf.reshape(going[:, None] * width + tf.gather(parents, going), [-1])
            state = tf.nest.map_structure(lambda t: tf.gather(t, parent_rows), state)
        # The rest changes only when an example is done: its results are written, and its rows
        # leave (the model state's too, for a strategy that does not reorder rows).
        moving = (results, tokens, strategy_state, constants, lengths, example_ids)
        moving += () if strategy.reorders else (state,)

        def leave():
            results, tokens, strategy_state, constants, lengths, example_ids, *model_state = moving
            finished = tf.cast(tf.where(done)[:, 0], tf.int32)
            rows = example_rows(going, width)  # the new rows of the examples still going
            return (
                finalize_into(results, setup_now, strategy_state, example_ids, finished),
                tf.gather(tokens, rows),
                strategy.select(setup_now, strategy_state, going),
                tf.nest.map_structure(lambda t: tf.gather(t, rows), constants),
                tf.gather(lengths, rows),
                tf.gather(example_ids, going),
                *(tf.nest.map_structure(lambda t: tf.gather(t, rows), s) for s in model_state),
            )

        moved = tf.cond(tf.reduce_any(done), leave, lambda: moving)
        results, tokens, strategy_state, constants, lengths, example_ids = moved[:6]
        if not strategy.reorders:
            state = moved[6]
        return (
            step + 1, tokens, strategy_state, state, constants, lengths, example_ids, results,
        )  # fmt: skip

    initial = (
        tf.constant(0),
        tf.fill([rows], tf.constant(setup.bos_id, tf.int32)),
        initial_strategy_state,
        state,
        constants,
        tf.cast(source_lengths, tf.int32),
        tf.range(batch_size),
        results,
    )
    # Every dim of the loop state but the results' may change (`_loose_shape`).
    invariants = (
        *tf.nest.map_structure(_loose_shape, initial[:-1]),
        tf.nest.map_structure(lambda t: t.shape, results),
    )
    # The loop starts from values whose static shapes are the invariants: graph optimization
    # (constant folding) otherwise took the first batch size for every step's.
    initial = tf.nest.map_structure(
        lambda t, shape: tf.raw_ops.PlaceholderWithDefault(input=t, shape=shape),
        initial,
        invariants,
    )
    step, _, strategy_state, _, _, _, example_ids, results = tf.while_loop(
        cond, body, initial, shape_invariants=invariants, maximum_iterations=setup.max_length
    )
    # The examples still going after the last step (none, if every one ended).
    going = tf.range(tf.size(example_ids))
    setup_now = setup._replace(batch_size=tf.size(example_ids))
    results = finalize_into(results, setup_now, strategy_state, example_ids, going)
    return DecodingResult(*results, None)
