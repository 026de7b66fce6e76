"""`Translator`: strings in, strings out, for a trained model."""

from __future__ import annotations

import os

import tensorflow as tf

from keras_s2s.decoding import greedy_search
from keras_s2s.run_directory import RunDirectory
from keras_s2s.tokenizers import Tokenizer


class Translator:
    """Translates batches of strings with a trained model and its tokenizers.

    Tokenization, encoding, the greedy decode loop and detokenization all run in one
    `tf.function`. Sources longer than `max_source_length` tokens are truncated.

    Args:
        model: a model implementing the decoding protocol (`encode`, `decode_step`).
        source_tokenizer, target_tokenizer: the tokenizers the model was trained with.
        max_source_length: source tokens kept.
        max_target_length: target tokens generated at most (eos excluded).
        jit_compile: compile the decode function with XLA.

    Example:
    ```python
    translator = keras_s2s.Translator.from_run_directory("runs/date_seq2seq")
    translator.translate(["september 27, 1994"])  # ["1994-09-27"]
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
        self._translate_fn = tf.function(
            self._translate_graph,
            input_signature=[tf.TensorSpec([None], tf.string)],
            jit_compile=False,
        )
        self._decode_fn = tf.function(self._decode_ids, jit_compile=jit_compile)

    @classmethod
    def from_run_directory(cls, path: str | os.PathLike, **kwargs) -> Translator:
        run = RunDirectory(path)
        meta = run.metadata()
        source_tokenizer, target_tokenizer = run.load_tokenizers()
        return cls(
            run.load_model(),
            source_tokenizer,
            target_tokenizer,
            max_source_length=meta["max_source_length"],
            max_target_length=meta["max_target_length"],
            **kwargs,
        )

    def encode_sources(self, strings) -> tf.Tensor:
        """Strings `[B]` -> source ids `[B, S]` (truncated, right-padded, S >= 1)."""
        ids = self.source_tokenizer.tokenize(strings)[:, : self.max_source_length]
        width = tf.maximum(tf.cast(ids.bounding_shape(axis=1), tf.int32), 1)
        shape = tf.stack([tf.shape(strings, out_type=tf.int32)[0], width])
        return ids.to_tensor(default_value=self.source_tokenizer.pad_id, shape=shape)

    def _decode_ids(self, source_ids):
        state = self.model.encode(source_ids)
        return greedy_search(
            self.model.decode_step,
            state,
            batch_size=tf.shape(source_ids)[0],
            max_length=self.max_target_length + 1,
            bos_id=self.target_tokenizer.bos_id,
            eos_id=self.target_tokenizer.eos_id,
            pad_id=self.target_tokenizer.pad_id,
        )

    def _translate_graph(self, strings):
        token_ids, scores = self._decode_ids(self.encode_sources(strings))
        return self.target_tokenizer.detokenize(token_ids), scores

    def translate_with_scores(self, texts: list[str], batch_size: int = 512):
        """Returns `(translations, log_probabilities)` for a list of strings."""
        translations, scores = [], []
        for start in range(0, len(texts), batch_size):
            chunk = tf.constant(list(texts[start : start + batch_size]), tf.string)
            strings, chunk_scores = self._translate_fn(chunk)
            translations.extend(s.decode("utf-8", errors="replace") for s in strings.numpy())
            scores.extend(float(s) for s in chunk_scores.numpy())
        return translations, scores

    def translate(self, texts: list[str], batch_size: int = 512) -> list[str]:
        """Translates a list of strings (greedy decoding)."""
        return self.translate_with_scores(texts, batch_size)[0]
