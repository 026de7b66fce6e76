"""Tokenizers that run in the TensorFlow graph (tensorflow-text)."""

import os

from keras_s2s.errors import ConfigError
from keras_s2s.registry import TOKENIZERS
from keras_s2s.tokenizers.char_tokenizer import CharTokenizer
from keras_s2s.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_s2s.tokenizers.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
)

#: Class decorator: registers a `Tokenizer` subclass under a `data.tokenizer` name.
register = TOKENIZERS.register


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Loads a tokenizer file, choosing the registered class by the file's suffix: an asset
    `Tokenizer.save` wrote (`asset_suffix`), else a user's own file (`file_suffixes`)."""
    path = os.fspath(path)
    classes = list(TOKENIZERS.values())
    for suffixes_of in (lambda cls: (cls.asset_suffix,), lambda cls: cls.file_suffixes):
        for cls in classes:
            if any(suffix and path.endswith(suffix) for suffix in suffixes_of(cls)):
                return cls.load(path)
    expected = sorted({s for cls in classes for s in cls.file_suffixes})
    raise ConfigError(
        f"Cannot tell the tokenizer type of {path} (expected {' or '.join(expected)})"
    )


__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "TOKENIZERS",
    "UNK_ID",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "register",
]
