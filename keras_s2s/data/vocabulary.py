"""Builds (or loads) the source/target tokenizers a pipeline's `data` config asks for."""

from __future__ import annotations

from keras_s2s.errors import ConfigError
from keras_s2s.tokenizers import TOKENIZERS, Tokenizer, load_tokenizer


def _build(data: dict, texts: list[str], user_file: str) -> Tokenizer:
    if user_file:
        return load_tokenizer(user_file)
    return TOKENIZERS[data["tokenizer"]].from_texts(texts, data)


def build_tokenizers(
    data: dict, sources: list[str], targets: list[str]
) -> tuple[Tokenizer, Tokenizer]:
    """Returns `(source, target)` tokenizers; the same object twice when the vocabulary is shared.

    A vocabulary is built from the training split only, unless the config names the user's own
    file (`data.vocabulary`, and `data.target_vocabulary` for separate vocabularies).
    """
    if data["shared_vocabulary"]:
        if data["target_vocabulary"]:
            raise ConfigError(
                "data.target_vocabulary is set but data.shared_vocabulary is true: "
                "set shared_vocabulary = false to use separate vocabularies"
            )
        shared = _build(data, sources + targets, data["vocabulary"])
        return shared, shared
    return (
        _build(data, sources, data["vocabulary"]),
        _build(data, targets, data["target_vocabulary"]),
    )
