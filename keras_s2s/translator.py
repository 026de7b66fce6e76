"""`Translator`: strings in, strings out, for a trained model."""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_s2s.decoding import (
    BanSequences,
    BanTokens,
    BeamSearch,
    ConstrainedBeamSearch,
    ForcePrefix,
    GreedySearch,
    LengthRatio,
    NoRepeatNgram,
    Sampling,
    decode,
)
from keras_s2s.decoding.ensemble import Ensemble
from keras_s2s.decoding.strategies import check_num_results
from keras_s2s.run_directory import RunDirectory
from keras_s2s.tokenizers import Tokenizer

#: Sentences `translate`, `translate_nbest` and `sample` decode at once by default (of similar
#: lengths). Each example leaves the decoding loop once it is done, so a long output holds up
#: only its own rows, and larger batches share each op's overhead: on Multi30k's validation
#: sources 512 was the fastest of 64-512, greedy and beam 4
#: (`benchmarks/translation_batch_size.md`).
DECODING_BATCH_SIZE = 512

_NO_ATTENTION = "This model reports no attention weights over the source"


@dataclasses.dataclass(frozen=True)
class DecodingControls:
    """Length and repetition controls of `Translator`'s decoding (each off by default).

    Args:
        min_length_ratio: at least `ceil(ratio x source tokens)` target tokens before eos.
        max_length_ratio: at most `ceil(ratio x source tokens)` target tokens before eos (the
            translator's `max_target_length` caps them too).
        no_repeat_ngram_size: no n-gram of this many tokens twice in an output (0: off).
        banned_words: strings never output: each is tokenized with the target tokenizer (as
            a word of its own: with SentencePiece, the word-initial pieces) and that token
            sequence is banned.
    """

    min_length_ratio: float = 0.0
    max_length_ratio: float = 0.0
    no_repeat_ngram_size: int = 0
    banned_words: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "banned_words", tuple(self.banned_words))
        if self.no_repeat_ngram_size < 0:
            raise ValueError(
                "`no_repeat_ngram_size` must be >= 0. "
                f"Received: no_repeat_ngram_size={self.no_repeat_ngram_size}"
            )
        LengthRatio(0, self.min_length_ratio, self.max_length_ratio)  # Checks the ratios.

    def processors(self, target_tokenizer: Tokenizer) -> list:
        """The `keras_s2s.decoding` logits processors that apply these controls."""
        return control_processors(
            target_tokenizer, self.min_length_ratio, self.max_length_ratio,
            self.no_repeat_ngram_size, self.banned_words,
        )  # fmt: skip


def control_processors(
    target_tokenizer: Tokenizer,
    min_length_ratio=0.0,
    max_length_ratio=0.0,
    no_repeat_ngram_size=0,
    banned_words=(),
) -> list:
    """The logits processors of the length and repetition controls (see `DecodingControls`).
    A setting given as a number is left out when it is off (0, no words); one given as a
    tensor (a SavedModel's inputs: scalars, and banned words as strings `[K]`) is always in
    the loop, its 0 or K = 0 turning it off there. Settings are not checked here."""
    processors = []
    eos, pad = target_tokenizer.eos_id, target_tokenizer.pad_id
    if any(tf.is_tensor(r) or r for r in (min_length_ratio, max_length_ratio)):
        processors.append(LengthRatio(eos, min_length_ratio, max_length_ratio))
    if tf.is_tensor(no_repeat_ngram_size) or no_repeat_ngram_size:
        processors.append(NoRepeatNgram(no_repeat_ngram_size))
    if tf.is_tensor(banned_words) or banned_words:
        words = banned_words if tf.is_tensor(banned_words) else tf.constant(list(banned_words))
        words = tf.reshape(words, [-1])
        ids = target_tokenizer.tokenize(words).to_tensor(default_value=pad)
        processors.append(BanSequences(ids, pad_id=pad))
    return processors


def _encode(tokenizer: Tokenizer, strings, max_length: int):
    """Strings `[B]` -> `(ids [B, W], truncated [B])`: tokenized, cut to `max_length`,
    right-padded with the tokenizer's pad id (W >= 1)."""
    tokens = tokenizer.tokenize(strings)
    ids = tokens[:, :max_length]
    width = tf.maximum(tf.cast(ids.bounding_shape(axis=1), tf.int32), 1)
    shape = tf.stack([tf.shape(strings, out_type=tf.int32)[0], width])
    return ids.to_tensor(
        default_value=tokenizer.pad_id, shape=shape
    ), tokens.row_lengths() > max_length


def _optional_ids(ids):
    return None if ids is None else tf.convert_to_tensor(ids, tf.int32)


class _AnySizes:
    """A `tf.function` (of tensors and Nones) whose first call traces it for tensors of any
    sizes (every dimension unknown): later calls, whatever their batch size and widths, reuse
    that trace. Left to `reduce_retracing`, it was traced three times (the first call's shapes,
    then one dimension relaxed, then the other). A function that needs a static dimension (a
    model that reads sources of one fixed width) cannot be traced that way: it is then traced
    as the calls come, as before. Called inside another trace (a SavedModel's signature), it
    is a plain `tf.function` call."""

    def __init__(self, function):
        self.function, self._tried = function, False

    def __call__(self, *args):
        if not self._tried and tf.executing_eagerly():
            self._tried = True
            specs = [tf.TensorSpec([None] * a.shape.rank, a.dtype) if tf.is_tensor(a) else a
                     for a in args]  # fmt: skip
            try:
                self.function.get_concrete_function(*specs)
            except ValueError:  # A static dimension is needed (see above).
                pass
        return self.function(*args)


class Score(NamedTuple):
    """The score of one (source, target) pair under a model (`Translator.score`)."""

    log_prob: float  # log-probability of the target's tokens and eos
    tokens: list[str]  # the target's tokens, then eos
    token_log_probs: list[float]  # one per token
    truncated: bool  # the target had more than `max_target_length` tokens (scored cut)

    def normalized(self) -> float:
        """The log-probability per token (eos counted)."""
        return self.log_prob / len(self.tokens)


class Alignment(NamedTuple):
    """Which source token each target token attends to most (`Translator.align`)."""

    source_tokens: list[str]  # the source's tokens (as the model reads them, no padding)
    target_tokens: list[str]  # the target's tokens (eos not included)
    pairs: list[tuple[int, int]]  # (source index, target index), one per target token

    def pharaoh(self) -> str:
        """The pairs as `i-j` (source i, target j; 0-based), space-separated."""
        return " ".join(f"{i}-{j}" for i, j in self.pairs)


class Translator:
    """Translates batches of strings with a trained model and its tokenizers.

    Tokenization and detokenization run tensorflow-text ops; encoding and the decode loop (greedy
    or beam search) run in one `tf.function` per beam size and number of results. Sources
    longer than `max_source_length` tokens are truncated.

    Args:
        model: a model of any family (`keras_s2s.models.EncoderDecoder`: `encode`,
            `decode_step`, `constant_state_keys`, `attention_weights`).
        source_tokenizer: the source tokenizer the model was trained with.
        target_tokenizer: the target tokenizer the model was trained with.
        max_source_length: source tokens kept.
        max_target_length: target tokens generated at most (eos excluded).
        jit_compile: compile the decode functions with XLA.

    Example:
    ```python
    translator = keras_s2s.Translator.from_run_directory("runs/date_seq2seq")
    translator.translate(["september 27, 1994"])  # ["1994-09-27"]
    translator.translate_nbest(["27/09/94"], beam_size=4, num_results=2)
    # [[("1994-09-27", -0.0001), ("1994-09-21", -9.3)]]
    translator.sample(["27/09/94"], num_samples=3, temperature=1.5, seed=1)
    # [[("1994-09-27", -0.002), ("1994-09-27", -0.002), ("1994-09-29", -7.1)]]
    ```
    """

    def __init__(
        self,
        model,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        max_source_length: int,
        max_target_length: int,
        jit_compile: bool = False,
    ):
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.jit_compile = jit_compile
        self._functions = {}
        self._processors = {}

    @classmethod
    def from_run_directory(
        cls,
        path: str | os.PathLike,
        allow_unfinished: bool = False,
        dtype: str | None = None,
        **kwargs,
    ) -> Translator:
        """The translator of a run directory (a run that did not finish needs
        `allow_unfinished=True`: its last checkpoint is used). The model computes under the
        dtype policy it was trained with unless `dtype` (e.g. "float32") says otherwise."""
        run = RunDirectory(path)
        model = run.load_model(allow_unfinished=allow_unfinished, dtype=dtype)
        source_tokenizer, target_tokenizer = run.load_tokenizers()
        return cls(
            model,
            source_tokenizer,
            target_tokenizer,
            max_source_length=run.entry("max_source_length"),
            max_target_length=run.entry("max_target_length"),
            **kwargs,
        )

    @classmethod
    def ensemble(
        cls, runs, allow_unfinished: bool = False, dtype: str | None = None, **kwargs
    ) -> Translator:
        """One translator over several runs that share their tokenizers (e.g. one recipe
        trained with different seeds): every decoding averages the models' log-probabilities
        at each step (`keras_s2s.decoding.Ensemble`). `runs` are run directories (loaded
        under `dtype`, as `from_run_directory`) or `Translator`s; the shortest max lengths
        apply."""
        translators = [
            run if isinstance(run, Translator)
            else cls.from_run_directory(run, allow_unfinished=allow_unfinished, dtype=dtype)
            for run in runs
        ]  # fmt: skip
        first = translators[0]
        for other in translators[1:]:
            for side in ("source_tokenizer", "target_tokenizer"):
                mine, theirs = getattr(first, side), getattr(other, side)
                if type(mine) is not type(theirs) or mine.asset_bytes() != theirs.asset_bytes():
                    raise ValueError(
                        f"The runs of an ensemble must share their tokenizers; the "
                        f"{side.replace('_', ' ')}s differ"
                    )
        return cls(
            Ensemble([t.model for t in translators]),
            first.source_tokenizer,
            first.target_tokenizer,
            max_source_length=min(t.max_source_length for t in translators),
            max_target_length=min(t.max_target_length for t in translators),
            **kwargs,
        )

    @property
    def has_attention(self) -> bool:
        """Whether the model reports attention weights over the source (`attention`)."""
        return self.model.has_attention

    def encode_sources(self, strings, return_truncated: bool = False):
        """Strings `[B]` -> source ids `[B, S]` (truncated, right-padded, S >= 1).

        With `return_truncated`, also returns which rows were longer than `max_source_length`.
        """
        dense, truncated = self._traced_if_eager(
            "encode", self._encode_sources, tf.TensorSpec([None], tf.string), strings
        )
        return (dense, truncated) if return_truncated else dense

    def _encode_sources(self, strings):
        return _encode(self.source_tokenizer, strings, self.max_source_length)

    def _traced_if_eager(self, key: str, fn, spec: tf.TensorSpec, value):
        """`fn(value)`; called eagerly, through `fn` traced once for `spec` (tokenizing and
        detokenizing op by op cost about 20 ms a call each: most of a short sentence's
        translation time); inside a trace (a SavedModel signature), `fn` itself."""
        if not tf.executing_eagerly():
            return fn(value)
        if key not in self._functions:
            self._functions[key] = tf.function(fn, input_signature=[spec], autograph=False)
        return self._functions[key](tf.convert_to_tensor(value, spec.dtype))

    def _special_ids(self):
        t = self.target_tokenizer
        return {"bos_id": t.bos_id, "eos_id": t.eos_id, "pad_id": t.pad_id}

    def _decoding_options(self):
        return {**self._special_ids(), "constant_state_keys": self.model.constant_state_keys}

    def _processors_of(self, controls: DecodingControls) -> list:
        """The processors of `controls`, made once (eagerly: banned words are tokenized then,
        outside any trace)."""
        if controls not in self._processors:
            self._processors[controls] = controls.processors(self.target_tokenizer)
        return self._processors[controls]

    def _function(self, key, fn):
        if key not in self._functions:
            # Batches differ in size and source width: traced for any sizes (`_AnySizes`).
            # No autograph: the decoding loop is an explicit `tf.while_loop` and the models'
            # calls use no Python control flow on tensors; converting them was two thirds of
            # the time to trace (export, the first translation, each run's validation decoding).
            self._functions[key] = _AnySizes(
                tf.function(
                    fn, jit_compile=self.jit_compile, reduce_retracing=True, autograph=False
                )
            )
        return self._functions[key]

    def decode_ids(
        self,
        source_ids,
        beam_size: int = 1,
        num_results: int = 1,
        length_penalty=0.0,
        controls: DecodingControls | None = None,
        prefix_ids=None,
        constraint_ids=None,
    ):
        """Source ids `[B, S]` -> `(token_ids [B, N, T], scores [B, N])` (greedy when K = 1),
        under `controls`; with `prefix_ids` `[B, P]` (right-padded), each output begins with
        its prefix (`keras_s2s.decoding.ForcePrefix`); with `constraint_ids` `[B, C, P]` (see
        `encode_constraints`), each output contains its phrases
        (`keras_s2s.decoding.ConstrainedBeamSearch`, with K = `beam_size`)."""
        return self._search(
            tf.convert_to_tensor(source_ids, tf.int32), beam_size, num_results, length_penalty,
            controls, prefix_ids, constraint_ids,
        )  # fmt: skip

    def _search(
        self, sources, beam_size, num_results, length_penalty, controls, prefix_ids,
        constraint_ids,
    ):  # fmt: skip
        """`decode_ids` on source ids `[B, S]`, or, on strings `[B]`, one traced call from the
        strings to `(strings [B, N], scores [B, N])`: tokenizing, decoding and detokenizing
        traced together, so a short sentence pays for one call from Python, not three (not
        under XLA, which compiles no string ops: `translate_nbest` then makes the three)."""
        controls = controls or DecodingControls()
        processors = self._processors_of(controls)
        texts = sources.dtype == tf.string

        def run(sources, alpha, prefix_ids, constraint_ids):
            source_ids = self._encode_sources(sources)[0] if texts else sources
            if constraint_ids is not None:
                strategy = ConstrainedBeamSearch(beam_size, constraint_ids, alpha, num_results)
            elif beam_size == 1:
                strategy = GreedySearch()
            else:
                strategy = BeamSearch(beam_size, alpha, num_results)
            result = self.decode(source_ids, strategy, processors, prefix_ids)
            ids = result.token_ids
            return (self._detokenize_nbest(ids) if texts else ids), result.scores

        key = (
            "texts" if texts else "ids", beam_size, num_results, controls,
            prefix_ids is not None, constraint_ids is not None,
        )  # fmt: skip
        fn = self._function(key, run)
        return fn(
            sources,
            tf.convert_to_tensor(length_penalty, tf.float32),
            _optional_ids(prefix_ids),
            _optional_ids(constraint_ids),
        )

    def decode(self, source_ids, strategy, processors=(), prefix_ids=None, collect=None):
        """The decoding loop (`keras_s2s.decoding.decode`) of the model on source ids
        `[B, S]` with any `strategy` (a `keras_s2s.decoding.DecodingStrategy`), the logits
        `processors`, each output starting with its `prefix_ids` `[B, P]` if given, and
        `collect` (see `decode`): a `DecodingResult`. Not traced here (the other methods
        trace it); call it inside your own `tf.function` for speed."""
        if prefix_ids is not None:
            processors = [*processors, ForcePrefix(prefix_ids, self.target_tokenizer.pad_id)]
        max_length = self.max_target_length + 1
        # Caches that grow with the output (a model that has them: the Transformer), except
        # under XLA, which needs the fixed shapes of `max_length` positions.
        state = self.model.encode(source_ids, max_length=max_length if self.jit_compile else None)
        lengths = tf.reduce_sum(
            tf.cast(source_ids != self.source_tokenizer.pad_id, tf.int32), axis=1
        )
        # Each example leaves the loop once it is done (not under XLA, whose shapes are fixed).
        return decode(
            self.model.decode_step, state, tf.shape(source_ids)[0], max_length, strategy,
            processors, source_lengths=lengths, collect=collect, compact=not self.jit_compile,
            **self._decoding_options(),
        )  # fmt: skip

    def decode_with_attention(self, source_ids):
        """Greedy decoding of an attention model, keeping the attention weights of each step.

        Returns `(token_ids [B, T], scores [B], weights [B, T, S])`.
        """
        if not self.has_attention:
            raise ValueError(_NO_ATTENTION)

        def run(source_ids):
            result = self.decode(source_ids, GreedySearch(), collect=self.model.attention_weights)
            return result.token_ids[:, 0], result.scores[:, 0], result.collected[:, 0]

        return self._function(("attention",), run)(tf.convert_to_tensor(source_ids, tf.int32))

    def _eos_terminated(self, target_ids):
        """Target ids `[B, T]` (right-padded) -> `([B, T + 1]` with eos after each target,
        the lengths `[B]` before eos)."""
        pad, eos = self.target_tokenizer.pad_id, self.target_tokenizer.eos_id
        lengths = tf.reduce_sum(tf.cast(target_ids != pad, tf.int32), axis=1)
        padded = tf.pad(target_ids, [[0, 0], [0, 1]], constant_values=pad)
        positions = tf.range(tf.shape(padded)[1])[None, :]
        return tf.where(positions == lengths[:, None], eos, padded), lengths

    def align_ids(self, source_ids, target_ids):
        """The attention of an attention model over `source_ids` `[B, S]` while it outputs
        `target_ids` `[B, T]` (right-padded, no bos or eos; T <= `max_target_length`), read
        by decoding with the target forced (`ForcePrefix`): weights `[B, T + 1, S]`, row t
        while it outputs target token t (row T: eos)."""
        if not self.has_attention:
            raise ValueError(_NO_ATTENTION)

        def run(source_ids, target_ids):
            forced, _ = self._eos_terminated(target_ids)
            result = self.decode(
                source_ids, GreedySearch(), prefix_ids=forced, collect=self.model.attention_weights
            )
            return result.collected[:, 0, : tf.shape(forced)[1]]

        fn = self._function(("align",), run)
        return fn(
            tf.convert_to_tensor(source_ids, tf.int32), tf.convert_to_tensor(target_ids, tf.int32)
        )

    def most_attended(self, weights, source_ids, target_ids):
        """Each target token's most-attended source token: int32 `[B, T]` source positions
        (-1 after the target, and for an empty source) from `align_ids`' `weights`, padding
        never chosen (a fixed-width model attends to it)."""
        source_pad, target_pad = self.source_tokenizer.pad_id, self.target_tokenizer.pad_id
        lengths = tf.reduce_sum(tf.cast(source_ids != source_pad, tf.int32), 1)
        weights = weights[:, : tf.shape(target_ids)[1]]
        in_source = tf.range(tf.shape(weights)[2])[None, None, :] < lengths[:, None, None]
        best = tf.argmax(tf.where(in_source, weights, -1.0), axis=-1, output_type=tf.int32)
        return tf.where((target_ids != target_pad) & (lengths[:, None] > 0), best, -1)

    def align(
        self, sources: list[str], targets: list[str], batch_size: int = 256
    ) -> list[Alignment]:
        """Word alignments of (source, translation) pairs from the attention of an attention
        model (RNN with attention, Transformer: its `attention_layer`'s cross-attention
        averaged over heads): each target token's most-attended source token, with the
        translation forced (any translation: the model's own, another system's, a
        reference). Tokens are the tokenizers' pieces; targets longer than
        `max_target_length` tokens are aligned on their first tokens. Raises `ValueError`
        for a model without attention."""
        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise ValueError(
                f"`sources` and `targets` must have the same length. Received: "
                f"{len(sources)} sources and {len(targets)} targets"
            )
        if not self.has_attention:
            raise ValueError(_NO_ATTENTION)
        source_pad, target_pad = self.source_tokenizer.pad_id, self.target_tokenizer.pad_id

        def run_batch(indices, number):
            del number
            source_ids = self.encode_sources(tf.constant([sources[i] for i in indices]))
            target_ids, _ = self.encode_targets(tf.constant([targets[i] for i in indices]))
            weights = self.align_ids(source_ids, target_ids)
            best = self.most_attended(weights, source_ids, target_ids).numpy()
            alignments = []
            for row, (source, target) in enumerate(
                zip(source_ids.numpy(), target_ids.numpy(), strict=True)
            ):
                source = [t for t in source.tolist() if t != source_pad]
                target = [t for t in target.tolist() if t != target_pad]
                alignments.append(
                    Alignment(
                        [self.source_tokenizer.id_to_token(t) for t in source],
                        [self.target_tokenizer.id_to_token(t) for t in target],
                        [(int(i), j) for j, i in enumerate(best[row]) if i >= 0],
                    )
                )
            return alignments

        return self._in_batches(sources, run_batch, batch_size, None)

    def replace_unknown(self, sources: list[str], translations: list[str]) -> list[str]:
        """Each translation with its unknown tokens (the target tokenizer's unk, which
        detokenizes to a placeholder such as SentencePiece's "⁇") replaced by the source
        token the model attended to most while outputting them (`align`), as that token
        detokenizes on its own: names and numbers the target vocabulary lacks are copied.
        Needs an attention model."""
        unk = self.target_tokenizer.unk_id
        placeholder = self.target_tokenizer.detokenize(tf.constant([[unk]]))[0]
        placeholder = placeholder.numpy().decode("utf-8").strip()
        unk_token = self.target_tokenizer.id_to_token(unk)
        alignments = self.align(sources, translations)
        needs = [k for k, a in enumerate(alignments) if unk_token in a.target_tokens]
        if not placeholder or not needs:
            return list(translations)
        # The sources with an unk, encoded once (as `align` read them).
        source_ids = dict(
            zip(
                needs,
                self.encode_sources(tf.constant([sources[k] for k in needs])).numpy(),
                strict=True,
            )
        )
        replaced = list(translations)
        for k in needs:
            alignment = alignments[k]
            pieces = []
            for i, j in alignment.pairs:
                if alignment.target_tokens[j] == unk_token:
                    text = self.source_tokenizer.detokenize(tf.constant([[source_ids[k][i]]]))[0]
                    pieces.append(text.numpy().decode("utf-8", errors="replace").strip())
            parts = replaced[k].split(placeholder)
            out = parts[0]
            for n, part in enumerate(parts[1:]):
                out += (pieces[n] if n < len(pieces) else placeholder) + part
            replaced[k] = out
        return replaced

    def detokenize_nbest(self, ids) -> tf.Tensor:
        """Token ids `[B, N, T]` -> strings `[B, N]`."""
        spec = tf.TensorSpec([None, None, None], tf.int32)
        return self._traced_if_eager("detokenize", self._detokenize_nbest, spec, ids)

    def _detokenize_nbest(self, ids):
        batch, n = tf.shape(ids)[0], tf.shape(ids)[1]
        texts = self.target_tokenizer.detokenize(tf.reshape(ids, [batch * n, -1]))
        return tf.reshape(texts, [batch, n])

    def translate_nbest(
        self,
        texts: list[str],
        beam_size: int = 4,
        num_results: int = 1,
        length_penalty: float = 0.0,
        batch_size: int = DECODING_BATCH_SIZE,
        progress=None,
        controls: DecodingControls | None = None,
        prefixes: list[str] | None = None,
        constraints: list[list[str]] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Beam search: the `num_results` best `(translation, score)` pairs of each text, in
        the order of `texts` (translated in batches of similar lengths). `progress`, if given,
        is called with the number of texts of each batch done (e.g. a `tqdm` bar's `update`).
        `controls` (a `DecodingControls`) bounds lengths and bans repeats and words.
        `prefixes` (one string per text, "" for none) start the translations: decoding
        continues from each (the prefix's tokens add nothing to the score). `constraints`
        (one list of phrases per text, [] for none) are terminology: each translation
        contains its text's phrases, tokenized as targets (lexically constrained beam search
        with dynamic beam allocation, `keras_s2s.decoding.ConstrainedBeamSearch`; give it a
        beam of 4 or more, and more for several phrases).

        Scores are log-probabilities divided by the GNMT length penalty with alpha =
        `length_penalty` (plain log-probabilities at 0). A beam of 1 is greedy search.
        """
        check_num_results(num_results, beam_size)

        def decode_batch(strings, number, prefix_ids, constraint_ids=None):
            del number
            if not self.jit_compile:  # one traced call from strings to strings
                return self._search(
                    strings, beam_size, num_results, length_penalty, controls, prefix_ids,
                    constraint_ids,
                )  # fmt: skip
            ids, scores = self.decode_ids(
                self.encode_sources(strings), beam_size, num_results, length_penalty, controls,
                prefix_ids, constraint_ids,
            )  # fmt: skip
            return self.detokenize_nbest(ids), scores

        return self._hypotheses(texts, decode_batch, batch_size, progress, prefixes, constraints)

    def sample_ids(
        self,
        source_ids,
        num_samples=1,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        controls: DecodingControls | None = None,
        prefix_ids=None,
    ):
        """Source ids `[B, S]` -> `(token_ids [B, N, T], log_probs [B, N])`: `num_samples`
        samples per source (`keras_s2s.decoding.Sampling`; one trace per setting, the seed
        is an input), under `controls`, continuing `prefix_ids` as `decode_ids` does."""
        controls = controls or DecodingControls()
        processors = self._processors_of(controls)
        checked = Sampling(temperature, top_k, top_p, num_samples=num_samples)

        def run(source_ids, seed, prefix_ids):
            strategy = Sampling(temperature, top_k, top_p, seed, num_samples)
            result = self.decode(source_ids, strategy, processors, prefix_ids)
            return result.token_ids, result.log_probs

        settings = (checked.temperature, checked.top_k, checked.top_p)
        key = ("sample", num_samples, *settings, controls, prefix_ids is not None)
        fn = self._function(key, run)
        return fn(
            tf.convert_to_tensor(source_ids, tf.int32),
            tf.constant(seed, tf.int32),
            None if prefix_ids is None else tf.convert_to_tensor(prefix_ids, tf.int32),
        )

    def encode_constraints(self, constraints) -> tf.Tensor:
        """Phrases per source -> int32 ids `[B, C, P]`: a list of string lists ([] for none),
        or strings `[B, C]` ("" for none); each phrase tokenized as targets (cut to
        `max_target_length`) and right-padded with the pad id (C, P >= 1); an all-padding
        phrase is none."""
        if not tf.is_tensor(constraints):
            most = max([1, *(len(phrases) for phrases in constraints)])
            dense = [list(phrases) + [""] * (most - len(phrases)) for phrases in constraints]
            constraints = tf.constant(dense, tf.string, shape=[len(dense), most])
        ids, _ = self.encode_targets(tf.reshape(constraints, [-1]))
        return tf.reshape(ids, tf.concat([tf.shape(constraints), tf.shape(ids)[1:]], 0))

    def encode_prefixes(self, prefixes) -> tf.Tensor:
        """Target prefixes (strings `[B]`, "" for none) -> ids `[B, P]` (tokenized as
        targets, cut to `max_target_length`, right-padded, P >= 1)."""
        return self.encode_targets(tf.constant(list(prefixes), tf.string))[0]

    def sample(
        self,
        texts: list[str],
        num_samples: int = 1,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int = DECODING_BATCH_SIZE,
        progress=None,
        controls: DecodingControls | None = None,
        prefixes: list[str] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Random sampling (e.g. for back-translation): `num_samples` `(translation,
        log-probability)` pairs per text, in the order of `texts`, each token drawn from the
        model's distribution scaled by `temperature` and cut to the `top_k` most likely tokens
        (0: all) and to the smallest set whose probability reaches `top_p` (1.0: all).

        The same `seed`, texts and `batch_size` give the same samples; other seeds give
        others. Log-probabilities are the model's (before the temperature and the cuts).
        `controls` and `prefixes` as for `translate_nbest`.
        """
        Sampling(temperature, top_k, top_p, seed, num_samples)  # Checks the settings.

        def decode_batch(strings, number, prefix_ids):
            # Each batch its own seed: batches drawing the same numbers would be correlated.
            batch_seed = (int(seed) * 1_000_003 + number) % (2**31 - 1)
            ids, scores = self.sample_ids(
                self.encode_sources(strings), num_samples, temperature, top_k, top_p,
                batch_seed, controls, prefix_ids,
            )  # fmt: skip
            return self.detokenize_nbest(ids), scores

        return self._hypotheses(texts, decode_batch, batch_size, progress, prefixes)

    @staticmethod
    def _in_batches(texts, run_batch, batch_size, progress) -> list:
        """`run_batch(indices, batch number) -> one result per index` over batches of indices
        into `texts` of similar lengths (less padding, and a batch's decoding ends sooner);
        the results in the order of `texts`. `progress(n)` after each batch, if given."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results = [None] * len(texts)
        for number, start in enumerate(range(0, len(texts), batch_size)):
            indices = order[start : start + batch_size]
            for index, result in zip(indices, run_batch(indices, number), strict=True):
                results[index] = result
            if progress is not None:
                progress(len(indices))
        return results

    def _hypotheses(self, texts, decode_batch, batch_size, progress, prefixes, constraints=None):
        """`decode_batch(strings [b], batch number, prefix ids [b, P] or None[, constraint ids
        [b, C, P]]) -> (strings [b, N], scores [b, N])` in batches: each text's
        `(string, score)` list."""
        texts = list(texts)
        for name, values in (("prefixes", prefixes), ("constraints", constraints)):
            if values is not None and len(values) != len(texts):
                raise ValueError(
                    f"`{name}` must have one entry per text. Received: {len(values)} {name} "
                    f"for {len(texts)} texts"
                )

        def run_batch(indices, number):
            chunk = tf.constant([texts[i] for i in indices], tf.string)
            prefix_ids = None
            if prefixes is not None:
                prefix_ids = self.encode_prefixes([prefixes[i] for i in indices])
            if constraints is None:
                strings, scores = decode_batch(chunk, number, prefix_ids)
            else:
                constraint_ids = self.encode_constraints([constraints[i] for i in indices])
                strings, scores = decode_batch(chunk, number, prefix_ids, constraint_ids)
            return [
                [(s.decode("utf-8", errors="replace"), float(v)) for s, v in zip(*row, strict=True)]
                for row in zip(strings.numpy(), scores.numpy(), strict=True)
            ]

        return self._in_batches(texts, run_batch, batch_size, progress)

    def score_ids(self, source_ids, target_ids):
        """Teacher-forced log-probabilities: source ids `[B, S]` and target ids `[B, T]`
        (right-padded, without bos and eos; S <= `max_source_length`, T <=
        `max_target_length`) -> `(token_log_probs [B, T + 1], lengths [B])`: each target
        token's log-probability, then eos's, 0 after; and the tokens scored, eos counted. Under
        the distributions the decoders see (pad and bos ruled out): the model's
        training call, the targets padded to `max_target_length` (one trace for any batch;
        the static length of an unrolled decoder) and the sources as `encode` reads them."""

        def run(source_ids, target_ids):
            pad, bos = self.target_tokenizer.pad_id, self.target_tokenizer.bos_id
            source_ids = self.model.to_source_width(source_ids)
            width = self.max_target_length
            missing = width - tf.shape(target_ids)[1]
            target_ids = tf.pad(target_ids, [[0, 0], [0, missing]], constant_values=pad)
            target_ids = tf.reshape(target_ids, [-1, width])  # static: an unrolled decoder
            batch = tf.shape(target_ids)[0]
            labels, lengths = self._eos_terminated(target_ids)
            positions = tf.range(width + 1)[None, :]
            decoder_ids = tf.concat([tf.fill([batch, 1], bos), target_ids], axis=1)
            logits = self.model(
                {"encoder_token_ids": source_ids, "decoder_token_ids": decoder_ids},
                training=False,
            )
            logits = BanTokens((pad, bos))(tf.cast(logits, tf.float32), None)
            log_probs = tf.gather(tf.nn.log_softmax(logits), labels, batch_dims=2)
            return tf.where(positions <= lengths[:, None], log_probs, 0.0), lengths + 1

        fn = self._function(("score",), run)
        return fn(
            tf.convert_to_tensor(source_ids, tf.int32), tf.convert_to_tensor(target_ids, tf.int32)
        )

    def encode_targets(self, strings):
        """Target strings `[B]` -> `(ids [B, T], truncated [B])`: tokenized, cut to
        `max_target_length`, right-padded (T >= 1), without bos and eos (for `score_ids`)."""
        return _encode(self.target_tokenizer, strings, self.max_target_length)

    def score(
        self, sources: list[str], targets: list[str], batch_size: int = 256, progress=None
    ) -> list[Score]:
        """Scores given translations (n-best rescoring, corpus filtering): the model's
        log-probability of each target given its source, token by token (eos included), in
        the order of the pairs. Targets longer than `max_target_length` tokens are scored on
        their first `max_target_length` tokens (`Score.truncated`); sources are truncated as
        for translation."""
        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise ValueError(
                f"`sources` and `targets` must have the same length. Received: "
                f"{len(sources)} sources and {len(targets)} targets"
            )
        eos = self.target_tokenizer.eos_id

        def run_batch(indices, number):
            del number
            source_ids = self.encode_sources(tf.constant([sources[i] for i in indices]))
            target_ids, truncated = self.encode_targets(tf.constant([targets[i] for i in indices]))
            log_probs, lengths = (t.numpy() for t in self.score_ids(source_ids, target_ids))
            target_ids, truncated = target_ids.numpy(), truncated.numpy()
            scores = []
            for row, length in enumerate(lengths):
                ids = [*target_ids[row, : length - 1].tolist(), eos]
                values = [float(v) for v in log_probs[row, :length]]
                names = [self.target_tokenizer.id_to_token(i) for i in ids]
                scores.append(Score(sum(values), names, values, bool(truncated[row])))
            return scores

        return self._in_batches(sources, run_batch, batch_size, progress)

    def translate(
        self,
        texts: list[str],
        beam_size: int = 1,
        batch_size: int = DECODING_BATCH_SIZE,
        controls: DecodingControls | None = None,
        prefixes: list[str] | None = None,
        constraints: list[list[str]] | None = None,
    ) -> list[str]:
        """Translates a list of strings (greedy, or beam search with `beam_size` > 1), under
        `controls` (a `DecodingControls`), each beginning with its prefix of `prefixes` and
        containing its phrases of `constraints` (see `translate_nbest`)."""
        best = self.translate_nbest(
            texts, beam_size, 1, batch_size=batch_size, controls=controls, prefixes=prefixes,
            constraints=constraints,
        )  # fmt: skip
        return [hypotheses[0][0] for hypotheses in best]

    def attention(self, text: str) -> tuple[list[str], list[str], np.ndarray]:
        """Greedy-translates one text of an attention model and returns its attention weights.

        Returns `(source_tokens, target_tokens, weights [len(target_tokens), len(source_tokens)])`
        where the target tokens include the final eos; row t is the attention while emitting
        target token t.
        """
        if not self.has_attention:
            raise ValueError(_NO_ATTENTION)

        source_ids = self.encode_sources(tf.constant([text]))
        ids, _, weights = self.decode_with_attention(source_ids)
        target = ids.numpy()[0].tolist()
        eos = self.target_tokenizer.eos_id
        length = target.index(eos) + 1 if eos in target else len(target)
        source = [t for t in source_ids.numpy()[0].tolist() if t != self.source_tokenizer.pad_id]
        return (
            [self.source_tokenizer.id_to_token(t) for t in source],
            [self.target_tokenizer.id_to_token(t) for t in target[:length]],
            weights.numpy()[0, :length, : len(source)],
        )
