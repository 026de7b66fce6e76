"""The tokenizer interface every keras-s2s tokenizer implements.

Tokenizers are `tf.Module`s whose `tokenize`/`detokenize` run in the TensorFlow graph
(tensorflow-text ops), so the same object serves the tf.data pipeline, the `Translator` and
the exported SavedModel. Ids 0-3 are reserved: pad, unk, bos (start), eos (end).
"""

from __future__ import annotations

import hashlib
import os

import tensorflow as tf

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")


class Tokenizer(tf.Module):
    """Base class: strings `[B]` <-> ragged token ids `[B, None]` (int32).

    A tokenizer a pipeline names (`data.tokenizer`) is registered under that name
    (`keras_s2s.tokenizers.register`) and implements, besides the methods below, `from_texts`
    (build it from the training texts and the `[data]` section) and `load` (a file `save`
    wrote, or a user's own file ending in one of `file_suffixes`).
    """

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID
    #: Suffix of the vocabulary asset `save` writes (e.g. ".model").
    asset_suffix = ""
    #: Suffixes of a user's own vocabulary files this class loads (`data.vocabulary`).
    file_suffixes: tuple[str, ...] = ()
    #: How the TFLite wrapper (`tflite_translator.py`, no TensorFlow) reads the vocabulary
    #: file: "characters" (one token per line) or "sentencepiece"; None: no TFLite export.
    runtime_vocabulary: str | None = None
    #: The default objective of a search over a pipeline with this tokenizer.
    search_objective = "validation_bleu"

    @classmethod
    def from_texts(cls, texts: list[str], data: dict) -> Tokenizer:
        """Builds the tokenizer from training `texts` with a pipeline's `[data]` settings."""
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Loads a file `save` wrote (or a user's file ending in one of `file_suffixes`)."""
        raise NotImplementedError

    @property
    def special_ids(self) -> dict[str, int]:
        """`{"pad", "unk", "bos", "eos"}` ids of this tokenizer."""
        return {"pad": self.pad_id, "unk": self.unk_id, "bos": self.bos_id, "eos": self.eos_id}

    @property
    def vocabulary_size(self) -> int:
        raise NotImplementedError

    def tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
        raise NotImplementedError

    def _ids_to_strings(self, ids: tf.RaggedTensor) -> tf.Tensor:
        raise NotImplementedError

    def detokenize(self, ids) -> tf.Tensor:
        """Token ids `[B, T]` (dense or ragged) to strings `[B]`.

        Stops at the first eos and drops pad/bos, so the output of a decoder (eos, then
        padding) detokenizes directly.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.cast(ids, tf.int32)
        before_eos = tf.math.cumsum(tf.cast(ids == self.eos_id, tf.int32), axis=1) == 0
        keep = before_eos & (ids != self.pad_id) & (ids != self.bos_id)
        return self._ids_to_strings(tf.ragged.boolean_mask(ids, keep))

    def id_to_token(self, token_id: int) -> str:
        """The token (a character or subword piece) an id stands for, for display."""
        raise NotImplementedError

    def asset_bytes(self) -> bytes:
        """The serialized vocabulary/model, as `save` writes it."""
        raise NotImplementedError

    def renewed(self) -> Tokenizer:
        """This tokenizer with its TensorFlow resources made again, or itself if it holds none
        that `keras.backend.clear_session()` destroys (keras-tuner calls it before each trial:
        it clears TensorFlow's kernel caches, which own tensorflow-text's SentencePiece op)."""
        return self

    def save(self, path: str | os.PathLike) -> str:
        with open(path, "wb") as f:
            f.write(self.asset_bytes())
        return os.fspath(path)

    def fingerprint(self) -> str:
        """sha256 of the vocabulary asset: a run directory records it to detect mismatches."""
        return hashlib.sha256(self.asset_bytes()).hexdigest()
