"""SavedModel export: string in, string out, in TF Serving's `<name>/<version>/` layout.

Everything a request needs runs in the graph: UTF-8 repair, tokenization (tensorflow-text ops,
which stock TF Serving links), truncation to the model's source length, encoding (the model
reverses its source itself if it was trained so), the decode loop (`tf.while_loop` over the
model's fixed-size state) and detokenization. The artifact loads with `tf.saved_model.load` in
a process that imports only tensorflow and tensorflow_text, and with the session-based loader
TF Serving and `saved_model_cli` use (the variables the signatures read are tracked on the
saved object, as `keras.export.ExportArchive` tracks them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

import keras_s2s
from keras_s2s.decoding import ConstrainedBeamSearch, GreedySearch, Sampling
from keras_s2s.errors import ExportError
from keras_s2s.export.exporter import Exporter
from keras_s2s.export.layout import (
    EXPORT_DTYPE,
    check_name,
    check_output_root,
    copy_vocabularies,
    next_version,
    staged_directory,
)
from keras_s2s.run_directory import RunDirectory
from keras_s2s.translator import Translator, control_processors

#: Written into `assets.extra/` of every export: how it was made and what it expects.
EXPORT_INFO_FILE = "keras_s2s_export.json"


def _sanitize(text):
    """Strings `[B]` -> (valid UTF-8 strings, invalid_utf8 flags): bad bytes become U+FFFD."""
    fixed = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    return fixed, tf.not_equal(fixed, text)


class _Endpoints:
    """The serving functions, over a `Translator` (the same code `keras-s2s translate` runs)."""

    def __init__(self, translator: Translator, beam_size: int):
        self.translator = translator
        self.beam_size = beam_size

    def _prepare(self, text):
        text, invalid = _sanitize(text)
        source_ids, truncated = self.translator.encode_sources(text, return_truncated=True)
        return source_ids, truncated, invalid

    def greedy(self, text):
        source_ids, truncated, invalid = self._prepare(text)
        ids, scores = self.translator.decode_ids(source_ids)
        return {
            "translations": self.translator.detokenize_nbest(ids)[:, 0],
            "scores": scores[:, 0],
            "truncated": truncated,
            "invalid_utf8": invalid,
        }

    def beam_search(self, text, length_penalty, num_results):
        source_ids, truncated, invalid = self._prepare(text)
        ids, scores = self.translator.decode_ids(
            source_ids, self.beam_size, self.beam_size, length_penalty
        )
        # Hypotheses come best first: the n-best are the first N, 1 <= N <= beam size.
        n = tf.clip_by_value(num_results, 1, self.beam_size)
        return {
            "translations": self.translator.detokenize_nbest(ids[:, :n]),
            "scores": scores[:, :n],
            "truncated": truncated,
            "invalid_utf8": invalid,
        }

    def _controls(
        self, text, prefix, min_length_ratio, max_length_ratio, no_repeat_ngram_size, banned_words
    ):
        """The control inputs every controllable signature takes, checked in the graph (a bad
        one fails the request by name) -> (processors, prefix ids `[B, P]`, invalid_utf8 `[B]`
        of the prefixes and the banned words)."""
        checks = [
            tf.debugging.assert_equal(
                tf.shape(prefix)[0], tf.shape(text)[0], message="prefix needs one string per text"
            ),
            tf.debugging.assert_non_negative(
                min_length_ratio, message="min_length_ratio must be >= 0"
            ),
            tf.debugging.assert_non_negative(
                max_length_ratio, message="max_length_ratio must be >= 0"
            ),
            tf.debugging.Assert(
                (max_length_ratio == 0) | (min_length_ratio <= max_length_ratio),
                ["min_length_ratio must be <= max_length_ratio (0: no maximum)"],
            ),
            tf.debugging.assert_non_negative(
                no_repeat_ngram_size, message="no_repeat_ngram_size must be >= 0"
            ),
        ]
        with tf.control_dependencies(checks):
            prefix, prefix_invalid = _sanitize(prefix)
        words, words_invalid = _sanitize(banned_words)
        processors = control_processors(
            self.translator.target_tokenizer, min_length_ratio, max_length_ratio,
            no_repeat_ngram_size, words,
        )  # fmt: skip
        prefix_ids, _ = self.translator.encode_targets(prefix)
        return processors, prefix_ids, prefix_invalid | tf.reduce_any(words_invalid)

    def translate(self, text, *controls):
        source_ids, truncated, invalid = self._prepare(text)
        processors, prefix_ids, controls_invalid = self._controls(text, *controls)
        result = self.translator.decode(source_ids, GreedySearch(), processors, prefix_ids)
        return {
            "translations": self.translator.detokenize_nbest(result.token_ids)[:, 0],
            "scores": result.scores[:, 0],
            "truncated": truncated,
            "invalid_utf8": invalid | controls_invalid,
        }

    def sample(self, text, temperature, top_k, top_p, seed, *controls):
        source_ids, truncated, invalid = self._prepare(text)
        processors, prefix_ids, controls_invalid = self._controls(text, *controls)
        # Settings are checked here, in the graph: a bad one fails the request by name.
        checks = [
            tf.debugging.assert_greater(temperature, 0.0, message="temperature must be > 0"),
            tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0"),
            tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1]"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]"),
        ]
        with tf.control_dependencies(checks):
            strategy = Sampling(tf.identity(temperature), top_k, top_p, seed)
        result = self.translator.decode(source_ids, strategy, processors, prefix_ids)
        return {
            "translations": self.translator.detokenize_nbest(result.token_ids)[:, 0],
            "scores": result.log_probs[:, 0],
            "truncated": truncated,
            "invalid_utf8": invalid | controls_invalid,
        }

    def constrained_beam_search(self, text, constraints, length_penalty, num_results, *controls):
        source_ids, truncated, invalid = self._prepare(text)
        processors, prefix_ids, controls_invalid = self._controls(text, *controls)
        flat, constraints_invalid = _sanitize(tf.reshape(constraints, [-1]))
        phrase_ids = self.translator.encode_constraints(tf.reshape(flat, tf.shape(constraints)))
        strategy = ConstrainedBeamSearch(self.beam_size, phrase_ids, length_penalty, self.beam_size)
        result = self.translator.decode(source_ids, strategy, processors, prefix_ids)
        n = tf.clip_by_value(num_results, 1, self.beam_size)
        constraints_invalid = tf.reduce_any(
            tf.reshape(constraints_invalid, tf.shape(constraints)), 1
        )
        return {
            "translations": self.translator.detokenize_nbest(result.token_ids[:, :n]),
            "scores": result.scores[:, :n],
            "truncated": truncated,
            "invalid_utf8": invalid | controls_invalid | constraints_invalid,
        }

    def align(self, text, target):
        source_ids, truncated, invalid = self._prepare(text)
        target, target_invalid = _sanitize(target)
        target_ids, target_truncated = self.translator.encode_targets(target)
        weights = self.translator.align_ids(source_ids, target_ids)[:, :-1]  # eos's row out
        return {
            "alignments": self.translator.most_attended(weights, source_ids, target_ids),
            "attention_weights": weights,
            "source_token_ids": source_ids,
            "target_token_ids": target_ids,
            "truncated": truncated,
            "target_truncated": target_truncated,
            "invalid_utf8": invalid | target_invalid,
        }

    def score(self, text, target):
        source_ids, truncated, invalid = self._prepare(text)
        target, target_invalid = _sanitize(target)
        target_ids, target_truncated = self.translator.encode_targets(target)
        token_log_probs, tokens = self.translator.score_ids(source_ids, target_ids)
        scores = tf.reduce_sum(token_log_probs, axis=1)
        return {
            "scores": scores,
            "normalized_scores": scores / tf.cast(tokens, tf.float32),
            "truncated": truncated,
            "target_truncated": target_truncated,
            "invalid_utf8": invalid | target_invalid,
        }

    def attention(self, text):
        source_ids, truncated, invalid = self._prepare(text)
        ids, scores, weights = self.translator.decode_with_attention(source_ids)
        return {
            "translations": self.translator.detokenize_nbest(ids[:, None])[:, 0],
            "scores": scores,
            "attention_weights": weights,  # [B, T, S]: row t while emitting token t
            "target_token_ids": ids,
            "source_token_ids": source_ids,
            "truncated": truncated,
            "invalid_utf8": invalid,
        }


#: Every signature a SavedModel can have (`attention` and `align`: attention models only).
SIGNATURES = (
    "serving_default", "beam_search", "score", "translate", "sample", "constrained_beam_search",
    "attention", "align",
)  # fmt: skip


def check_signatures(signatures) -> tuple[str, ...] | None:
    """The signatures asked (None: all the model has), each known, `serving_default` among
    them (what TF Serving answers by default)."""
    if signatures is None:
        return None
    signatures = tuple(dict.fromkeys((signatures,) if isinstance(signatures, str) else signatures))
    unknown = [s for s in signatures if s not in SIGNATURES]
    if unknown:
        raise ExportError(
            f"Unknown SavedModel signature(s) {', '.join(unknown)}; choose from "
            f"{', '.join(SIGNATURES)}"
        )
    if "serving_default" not in signatures:
        raise ExportError("The SavedModel signatures must include serving_default")
    return signatures


def check_beam_size(beam_size) -> int:
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ExportError(f"beam_size must be a positive integer; got {beam_size!r}")
    return beam_size


def _saved_object(translator: Translator, functions: dict) -> tuple[tf.Module, dict]:
    """The object to save and its signatures: the functions traced once each, the variables
    they read and the tokenizers (their lookup tables and SentencePiece models are resources).

    The variables are tracked on the object itself, as `keras.export.ExportArchive` tracks
    them, so the session-based loader (TF Serving, `saved_model_cli run`) finds them. Unlike
    `ExportArchive`, nothing is traced twice: `tf.saved_model.save` retraces every
    `tf.function` it finds on the object (its cache key differs while saving), and the
    decode loops make each trace slow, so the object holds concrete functions only.
    """
    concrete = {
        name: tf.function(fn, input_signature=signature, autograph=False).get_concrete_function()
        for name, (fn, signature) in functions.items()
    }
    saved = tf.Module()
    variables, seen = [], set()
    for function in concrete.values():
        for variable in function.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    saved.variables_used = variables
    saved.tokenizers = [translator.source_tokenizer, translator.target_tokenizer]
    for name, function in concrete.items():
        setattr(saved, name, function)  # `loaded.beam_search(...)` works as with Keras' export
    return saved, concrete


def write_saved_model(
    translator: Translator,
    run: RunDirectory,
    directory: Path,
    beam_size: int,
    info: dict | None = None,
    signatures: tuple[str, ...] | None = None,
) -> None:
    """Writes the SavedModel of `translator` into the existing (empty) folder `directory`;
    `info` is added to `assets.extra/keras_s2s_export.json`. `signatures` (None: every one the
    model has) names those to write (`SIGNATURES`)."""
    meta = run.metadata()
    endpoints = _Endpoints(translator, beam_size)
    text = tf.TensorSpec([None], tf.string, name="text")
    target = tf.TensorSpec([None], tf.string, name="target")
    # The decoding controls every controllable signature takes (0 / "" / no words: off).
    controls = [
        tf.TensorSpec([None], tf.string, name="prefix"),
        tf.TensorSpec([], tf.float32, name="min_length_ratio"),
        tf.TensorSpec([], tf.float32, name="max_length_ratio"),
        tf.TensorSpec([], tf.int32, name="no_repeat_ngram_size"),
        tf.TensorSpec([None], tf.string, name="banned_words"),
    ]
    length_penalty = tf.TensorSpec([], tf.float32, name="length_penalty")
    num_results = tf.TensorSpec([], tf.int32, name="num_results")
    functions = {
        "serving_default": (endpoints.greedy, [text]),
        "beam_search": (endpoints.beam_search, [text, length_penalty, num_results]),
        "score": (endpoints.score, [text, target]),
        "translate": (endpoints.translate, [text, *controls]),
        "sample": (
            endpoints.sample,
            [
                text,
                tf.TensorSpec([], tf.float32, name="temperature"),
                tf.TensorSpec([], tf.int32, name="top_k"),
                tf.TensorSpec([], tf.float32, name="top_p"),
                tf.TensorSpec([], tf.int32, name="seed"),
                *controls,
            ],
        ),
        "constrained_beam_search": (
            endpoints.constrained_beam_search,
            [
                text,
                tf.TensorSpec([None, None], tf.string, name="constraints"),
                length_penalty,
                num_results,
                *controls,
            ],
        ),
    }
    if translator.has_attention:
        functions["attention"] = (endpoints.attention, [text])
        functions["align"] = (endpoints.align, [text, target])
    if signatures is not None:
        missing = [s for s in signatures if s not in functions]
        if missing:
            raise ExportError(
                f"This model has no {', '.join(missing)} signature (attention models only)"
            )
        functions = {name: functions[name] for name in signatures}
    signatures = list(functions)
    saved, concrete = _saved_object(translator, functions)
    tf.saved_model.save(saved, str(directory), signatures=concrete)
    (directory / "assets").mkdir(exist_ok=True)
    copy_vocabularies(run, directory / "assets")
    (directory / "assets.extra").mkdir(exist_ok=True)
    export_info = {
        "format": "saved_model",
        "keras_s2s_version": keras_s2s.__version__,
        "pipeline": meta.get("pipeline"),
        **(info or {}),
        "signatures": signatures,
        "beam_size": beam_size,
        "max_source_length": meta["max_source_length"],
        "max_target_length": meta["max_target_length"],
        "source": meta["source"],
        "target": meta["target"],
    }
    (directory / "assets.extra" / EXPORT_INFO_FILE).write_text(json.dumps(export_info, indent=2))


def export_saved_model(
    run_dir: str | os.PathLike,
    output_root: str | os.PathLike = "saved_models",
    name: str | None = None,
    beam_size: int = 4,
    version: int | None = None,
    allow_unfinished: bool = False,
) -> Path:
    """Exports a run directory as a servable SavedModel; returns `output_root/name/version`.

    Signatures (all take `text`, a `[B]` string batch of any size, B = 0 included, and return
    `truncated` and `invalid_utf8` flags `[B]` beside the results):

    - `serving_default`: greedy; `translations` `[B]` strings, `scores` `[B]` log-probabilities.
    - `beam_search`: beam of `beam_size` (fixed here); inputs `length_penalty` (GNMT alpha,
      float) and `num_results` (N, clipped to 1..beam size); `translations` and `scores` `[B, N]`.
    - `score`: inputs `text` and `target` (`[B]` strings: given translations); `scores` `[B]`
      (each target's log-probability, eos included, as `Translator.score`),
      `normalized_scores` (per token), `target_truncated` (targets longer than the max target
      length are scored on their first tokens); `invalid_utf8` covers both inputs.
    - `translate`: greedy with the decoding controls, inputs `prefix` (`[B]` strings each
      output begins with, "" for none), `min_length_ratio` and `max_length_ratio` (output
      tokens before eos as ratios of the source's, 0: off), `no_repeat_ngram_size` (0: off) and
      `banned_words` (`[K]` strings, K >= 0), all checked in the graph; outputs as
      `serving_default`. `invalid_utf8` covers the prefixes and the banned words too.
    - `sample`: inputs `temperature`, `top_k`, `top_p`, `seed` (scalars, checked in the
      graph) and the controls; one sample per row (repeat a text for several); `translations`
      and `scores` (log-probabilities) `[B]`.
    - `constrained_beam_search`: beam search of `beam_size` with inputs `constraints`
      (`[B, C]` phrases each output contains, "" for none), `length_penalty`, `num_results`
      and the controls; outputs as `beam_search`.
    - `attention` (attention models only): greedy, plus `attention_weights` `[B, T, S]` and the
      source/target token ids.
    - `align` (attention models only): input `target`; `alignments` `[B, T]` (each target
      token's most-attended source token, -1 after the target), the weights and the ids.

    An ensemble (`keras_s2s.export.export(..., ensemble=[...])`) exports through the same
    writer with `Translator.ensemble`.

    The version is the next integer under `output_root/name` (TF Serving loads the highest),
    written to a temporary folder first and renamed into place, so a server polling the folder
    never sees a half-written version. The tokenizer files are copied into `assets/`; the
    run directory, name and version are in `assets.extra/keras_s2s_export.json`. Options are
    checked before anything is written. `keras_s2s.export.export` makes both formats with one
    version number.

    Example:
    ```python
    path = keras_s2s.export.export_saved_model("runs/date_attention", "saved_models")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    serve(text=tf.constant(["september 27, 1994"]))["translations"]
    ```
    """
    check_beam_size(beam_size)
    if name is not None:
        check_name(name)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ExportError(f"version must be a positive integer; got {version!r}")
    output_root = check_output_root(output_root)
    run = RunDirectory(run_dir)
    translator = Translator.from_run_directory(
        run_dir, allow_unfinished=allow_unfinished, dtype=EXPORT_DTYPE
    )
    name = check_name(name or run.metadata().get("pipeline") or run.path.name)
    version = version or next_version(output_root, name)
    target = output_root / name / str(version)
    if target.exists():
        raise ExportError(f"{target} already exists; versions are never overwritten")
    info = {"run_dir": str(run.path.resolve()), "name": name, "version": version}
    with staged_directory(target) as staging:
        write_saved_model(translator, run, staging, beam_size, info)
    return target


class SavedModelExporter(Exporter):
    """The servable SavedModel (`write_saved_model`), in TF Serving's `<name>/<version>/`.
    Options: `beam_size` (of the `beam_search` signature), `signatures` (names to write; None:
    all)."""

    order = 1  # After TFLite: its tracing is the slower and the less likely to fail.

    def check(self, options: dict, selected: bool) -> dict:
        del selected
        return {
            **options,
            "beam_size": check_beam_size(options.get("beam_size", 4)),
            "signatures": check_signatures(options.get("signatures")),
        }

    def write(self, translator, run, directory, options, info, step) -> None:
        step("savedmodel: tracing and saving")
        write_saved_model(
            translator, run, directory, options["beam_size"], info, options["signatures"]
        )
