"""Tokenizers that run in the TensorFlow graph (tensorflow-text)."""

import os

from keras_s2s.errors import ConfigError
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

TOKENIZERS = {"char": CharTokenizer, "sentencepiece": SentencePieceTokenizer}


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Loads a tokenizer asset written by `Tokenizer.save`, choosing the class by suffix."""
    path = os.fspath(path)
    for cls in TOKENIZERS.values():
        if path.endswith(cls.asset_suffix):
            return cls.load(path)
    if path.endswith(".model"):
        return SentencePieceTokenizer.load(path)
    if path.endswith(".txt"):
        return CharTokenizer.load(path)
    raise ConfigError(f"Cannot tell the tokenizer type of {path} (expected .model or .txt)")


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
]
