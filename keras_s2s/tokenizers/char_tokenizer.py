"""Character-level tokenizer, run in the graph with tensorflow-text."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable

import tensorflow as tf
import tensorflow_text as tf_text

from keras_s2s.errors import DataError
from keras_s2s.tokenizers.tokenizer import SPECIAL_TOKENS, Tokenizer

_UNK_CODEPOINT = 0xFFFD  # unknown ids detokenize to U+FFFD


class CharTokenizer(Tokenizer):
    """Maps each Unicode character to an id from a fixed vocabulary.

    Args:
        vocabulary: list of tokens; the first four are `<pad> <unk> <s> </s>` (added if
            missing), every other token is one character.

    Example:
    ```python
    tokenizer = keras_s2s.tokenizers.CharTokenizer.build(["abc", "cab"])
    ids = tokenizer.tokenize(tf.constant(["cab"]))   # [[7, 4, 5]]
    tokenizer.detokenize(ids)                        # [b"cab"]
    ```
    """

    asset_suffix = ".chars.txt"
    file_suffixes = (".txt",)
    runtime_vocabulary = "characters"
    #: Short outputs, judged whole.
    search_objective = "validation_exact_match"

    def __init__(self, vocabulary: list[str], name: str | None = None):
        super().__init__(name=name)
        vocabulary = list(vocabulary)
        if vocabulary[: len(SPECIAL_TOKENS)] != list(SPECIAL_TOKENS):
            vocabulary = list(SPECIAL_TOKENS) + [t for t in vocabulary if t not in SPECIAL_TOKENS]
        characters = vocabulary[len(SPECIAL_TOKENS) :]
        for index, token in enumerate(characters, start=len(SPECIAL_TOKENS)):
            if len(token) != 1:
                raise DataError(
                    f"Character vocabulary entry {index} is not one character: {token!r}"
                )
        if len(set(characters)) != len(characters):
            raise DataError("Character vocabulary has duplicate entries")
        self.vocabulary = vocabulary
        codepoints = [ord(c) for c in characters]
        ids = list(range(len(SPECIAL_TOKENS), len(vocabulary)))
        self._char_tokenizer = tf_text.UnicodeCharTokenizer()
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(codepoints or [-1], tf.int32),
                tf.constant(ids or [self.unk_id], tf.int32),
            ),
            default_value=self.unk_id,
        )
        id_to_codepoint = [_UNK_CODEPOINT] * len(SPECIAL_TOKENS) + codepoints
        self._id_to_codepoint = tf.constant(id_to_codepoint, tf.int32)

    @classmethod
    def from_texts(cls, texts: list[str], data: dict) -> CharTokenizer:
        del data  # Nothing to set: every character of the texts.
        return cls.build(texts)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> CharTokenizer:
        """Builds the vocabulary from training texts (characters sorted by codepoint)."""
        counts = collections.Counter()
        for text in texts:
            counts.update(text)
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Loads a vocabulary file: UTF-8, one token per line (specials first, or added)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise DataError(f"Vocabulary file not found: {path}")
        try:
            with open(path, encoding="utf-8", newline="") as file:
                text = file.read()
        except UnicodeDecodeError as e:
            raise DataError(f"Invalid UTF-8 in vocabulary file {path}: {e}") from None
        tokens = text.split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        if not tokens:
            raise DataError(f"Vocabulary file is empty: {path}")
        for number, token in enumerate(tokens, start=1):
            if len(token) != 1 and token not in SPECIAL_TOKENS:
                raise DataError(
                    f"Line {number} of vocabulary file {path} is not one character: {token!r}"
                )
        return cls(tokens)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def tokenize(self, strings) -> tf.RaggedTensor:
        codepoints = self._char_tokenizer.tokenize(tf.convert_to_tensor(strings, tf.string))
        return tf.ragged.map_flat_values(self._table.lookup, codepoints)

    def _ids_to_strings(self, ids: tf.RaggedTensor) -> tf.Tensor:
        codepoints = tf.ragged.map_flat_values(
            lambda i: tf.gather(
                self._id_to_codepoint, tf.clip_by_value(i, 0, len(self.vocabulary) - 1)
            ),
            ids,
        )
        return tf.strings.unicode_encode(codepoints, "UTF-8", errors="replace")

    def id_to_token(self, token_id: int) -> str:
        return self.vocabulary[token_id]

    def asset_bytes(self) -> bytes:
        return ("\n".join(self.vocabulary) + "\n").encode("utf-8")
