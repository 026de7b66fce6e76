"""SavedModel export: string in, string out, in TF Serving's `<name>/<version>/` layout.

Everything a request needs runs in the graph: UTF-8 repair, tokenization (tensorflow-text ops,
which stock TF Serving links), truncation to the model's source length, encoding (the model
reverses its source itself if it was trained so), the decode loop (`tf.while_loop` over the
model's fixed-size state) and detokenization. The artifact loads with `tf.saved_model.load` in
a process that imports only tensorflow and tensorflow_text, and with the session-based loader
TF Serving and `saved_model_cli` use (Keras variables are tracked by `keras.export`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import tensorflow as tf

import keras_s2s
from keras_s2s.errors import ExportError
from keras_s2s.export.layout import copy_vocabularies, next_version_directory, staged_directory
from keras_s2s.run_directory import RunDirectory
from keras_s2s.translator import Translator

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


def export_saved_model(
    run_dir: str | os.PathLike,
    output_root: str | os.PathLike = "saved_models",
    name: str | None = None,
    beam_size: int = 4,
    version: int | None = None,
) -> Path:
    """Exports a run directory as a servable SavedModel; returns `output_root/name/version`.

    Signatures (all take `text`, a `[B]` string batch of any size, and return `truncated` and
    `invalid_utf8` flags `[B]` beside the results):

    - `serving_default`: greedy; `translations` `[B]` strings, `scores` `[B]` log-probabilities.
    - `beam_search`: beam of `beam_size` (fixed here); inputs `length_penalty` (GNMT alpha,
      float) and `num_results` (N, clipped to 1..beam size); `translations` and `scores` `[B, N]`.
    - `attention` (attention models only): greedy, plus `attention_weights` `[B, T, S]` and the
      source/target token ids.

    The version is the next integer under `output_root/name` (TF Serving loads the highest),
    written to a temporary folder first and renamed into place, so a server polling the folder
    never sees a half-written version. The tokenizer files are copied into `assets/`.

    Example:
    ```python
    path = keras_s2s.export.export_saved_model("runs/date_attention", "saved_models")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    serve(text=tf.constant(["september 27, 1994"]))["translations"]
    ```
    """
    run = RunDirectory(run_dir)
    meta = run.metadata()
    translator = Translator.from_run_directory(run_dir)
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ExportError(f"beam_size must be a positive integer; got {beam_size!r}")
    name = name or meta.get("pipeline") or run.path.name
    if version is None:
        target = next_version_directory(output_root, name)
    else:
        target = Path(output_root) / name / str(version)
        if target.exists():
            raise ExportError(f"{target} already exists; versions are never overwritten")

    endpoints = _Endpoints(translator, beam_size)
    archive = keras.export.ExportArchive()
    archive.track(translator.model)
    archive.track(translator.source_tokenizer)
    archive.track(translator.target_tokenizer)
    text = tf.TensorSpec([None], tf.string, name="text")
    archive.add_endpoint("serving_default", endpoints.greedy, input_signature=[text])
    archive.add_endpoint(
        "beam_search",
        endpoints.beam_search,
        input_signature=[
            text,
            tf.TensorSpec([], tf.float32, name="length_penalty"),
            tf.TensorSpec([], tf.int32, name="num_results"),
        ],
    )
    signatures = ["serving_default", "beam_search"]
    if translator.has_attention:
        archive.add_endpoint("attention", endpoints.attention, input_signature=[text])
        signatures.append("attention")

    with staged_directory(target) as staging:
        archive.write_out(str(staging), verbose=False)
        (staging / "assets").mkdir(exist_ok=True)
        copy_vocabularies(run, staging / "assets")
        (staging / "assets.extra").mkdir(exist_ok=True)
        info = {
            "format": "saved_model",
            "keras_s2s_version": keras_s2s.__version__,
            "pipeline": meta.get("pipeline"),
            "signatures": signatures,
            "beam_size": beam_size,
            "max_source_length": meta["max_source_length"],
            "max_target_length": meta["max_target_length"],
            "source": meta["source"],
            "target": meta["target"],
        }
        (staging / "assets.extra" / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2))
    return target
