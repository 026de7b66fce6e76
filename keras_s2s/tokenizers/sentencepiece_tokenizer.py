"""Subword tokenizer: a SentencePiece model run with `tensorflow_text.SentencepieceTokenizer`."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text

from keras_s2s.errors import DataError
from keras_s2s.tokenizers.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer


class SentencePieceTokenizer(Tokenizer):
    """Tokenizes with a SentencePiece model in the TensorFlow graph.

    The model must use the keras-s2s special ids (pad 0, unk 1, bos 2, eos 3); `train` makes
    such a model. Tokenization uses tensorflow-text ops, which stock TF Serving links.

    Args:
        model: the serialized SentencePiece model (the bytes of a `.model` file).

    Example:
    ```python
    tokenizer = keras_s2s.tokenizers.SentencePieceTokenizer.train(texts, vocabulary_size=500)
    tokenizer.detokenize(tokenizer.tokenize(tf.constant(["a cat"])))  # [b"a cat"]
    ```
    """

    asset_suffix = ".spm.model"
    file_suffixes = (".model",)
    runtime_vocabulary = "sentencepiece"

    def __init__(self, model: bytes, name: str | None = None):
        super().__init__(name=name)
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError variants
            raise DataError(f"Not a valid SentencePiece model: {e}") from None
        ids = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise DataError(
                "SentencePiece model must use pad_id=0, unk_id=1, bos_id=2, eos_id=3; this one "
                f"uses pad={ids[0]}, unk={ids[1]}, bos={ids[2]}, eos={ids[3]}. Retrain it with "
                "those flags (SentencePieceTokenizer.train does)."
            )
        self._model = model
        self._size = processor.vocab_size()
        self._pieces = [processor.IdToPiece(i) for i in range(self._size)]
        self._sp = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)

    @classmethod
    def from_texts(cls, texts: list[str], data: dict) -> SentencePieceTokenizer:
        return cls.train(texts, vocabulary_size=data["vocabulary_size"])

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocabulary_size: int = 8000,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
    ) -> SentencePieceTokenizer:
        """Trains a SentencePiece model on `texts` (the vocabulary may come out smaller)."""
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=writer,
            vocab_size=vocabulary_size,
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
        )
        return cls(writer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SentencePieceTokenizer:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise DataError(f"SentencePiece model not found: {path}")
        with open(path, "rb") as f:
            return cls(f.read())

    @property
    def vocabulary_size(self) -> int:
        return self._size

    def tokenize(self, strings) -> tf.RaggedTensor:
        return self._sp.tokenize(tf.convert_to_tensor(strings, tf.string))

    def _ids_to_strings(self, ids: tf.RaggedTensor) -> tf.Tensor:
        return self._sp.detokenize(ids)

    def id_to_token(self, token_id: int) -> str:
        return self._pieces[token_id]

    def asset_bytes(self) -> bytes:
        return self._model

    def renewed(self) -> SentencePieceTokenizer:
        return SentencePieceTokenizer(self._model)
