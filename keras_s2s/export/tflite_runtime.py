"""Run an exported keras-s2s TFLite translator: strings in, strings out.

Shipped beside the `.tflite` files as `tflite_translator.py`; it needs only numpy,
ai-edge-litert and, for SentencePiece vocabularies, sentencepiece (not TensorFlow, not
keras-s2s). Tokenization matches the training tokenizers exactly: characters (one id per Unicode
codepoint, unknown -> the unk id) or the SentencePiece model; the model itself reverses the
source if it was trained so.

    from tflite_translator import TFLiteTranslator
    translator = TFLiteTranslator("saved_models/date_attention_tflite")
    translator.translate(["september 27, 1994"])   # ["1994-09-27"]
"""

from __future__ import annotations

import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

INFO_FILE = "keras_s2s_tflite.json"
_UNKNOWN_CHARACTER = "\ufffd"


class _CharVocabulary:
    """One token per line; the special ids (`special_ids` of the JSON file) are no characters."""

    def __init__(self, path, special_ids: dict):
        with open(path, encoding="utf-8", newline="") as f:
            tokens = f.read().split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        special = set(special_ids.values())
        self.characters = {i: token for i, token in enumerate(tokens) if i not in special}
        self.ids = {token: i for i, token in self.characters.items()}
        self.unk_id = special_ids["unk"]

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(c, self.unk_id) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.characters.get(i, _UNKNOWN_CHARACTER) for i in ids)


class _SentencePieceVocabulary:
    def __init__(self, path):
        import sentencepiece

        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(path))

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def decode(self, ids) -> str:
        return self.processor.decode([int(i) for i in ids])


def _vocabulary(directory, entry, special_ids):
    path = os.path.join(directory, entry["file"])
    if entry["vocabulary"] == "sentencepiece":
        return _SentencePieceVocabulary(path)
    if entry["vocabulary"] == "characters":
        return _CharVocabulary(path, special_ids)
    raise ValueError(f"Unknown vocabulary reader {entry['vocabulary']!r} in {INFO_FILE}")


class TFLiteTranslator:
    """Greedy translation with an exported `.tflite` model and its vocabularies.

    Args:
        directory: the export folder (holds `keras_s2s_tflite.json`).
        quantization: which model file: "float32", "float16" or "int8".
        num_threads: interpreter threads.
    """

    def __init__(self, directory, quantization: str = "float32", num_threads: int | None = None):
        self.directory = os.fspath(directory)
        with open(os.path.join(self.directory, INFO_FILE), encoding="utf-8") as f:
            self.info = json.load(f)
        if quantization not in self.info["models"]:
            raise ValueError(
                f"No {quantization} model in {self.directory}; "
                f"exported: {', '.join(self.info['models'])}"
            )
        self.interpreter = Interpreter(
            model_path=os.path.join(self.directory, self.info["models"][quantization]),
            num_threads=num_threads,
        )
        special = self.info["special_ids"]
        self.source_vocabulary = _vocabulary(self.directory, self.info["source"], special)
        self.target_vocabulary = _vocabulary(self.directory, self.info["target"], special)
        self.source_length = self.info["source_length"]
        self.pad_id, self.bos_id, self.eos_id = special["pad"], special["bos"], special["eos"]

    def signature(self, name: str):
        """A LiteRT signature runner: "translate", "encode" or "decode_step"."""
        return self.interpreter.get_signature_runner(name)

    def encode_sources(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """Strings -> (ids `[B, S]` int32, right-padded and truncated; truncated flags `[B]`)."""
        ids = np.full((len(texts), self.source_length), self.pad_id, np.int32)
        truncated = np.zeros(len(texts), bool)
        for row, text in enumerate(texts):
            if isinstance(text, bytes):  # as the SavedModel does: bad bytes become U+FFFD
                text = text.decode("utf-8", errors="replace")
            tokens = self.source_vocabulary.encode(text)
            truncated[row] = len(tokens) > self.source_length
            tokens = tokens[: self.source_length]
            ids[row, : len(tokens)] = tokens
        return ids, truncated

    def translate_ids(self, source_ids: np.ndarray) -> dict:
        """Source ids `[B, S]` -> `{"token_ids", "scores", "logits"}` (greedy; B = 0 gives
        empty arrays: LiteRT cannot run an unrolled RNN on an empty batch)."""
        source_ids = np.asarray(source_ids, np.int32)
        runner = self.signature("translate")
        if len(source_ids) == 0:
            details = runner.get_output_details()
            return {
                key: np.zeros([0, *details[key]["shape"][1:]], details[key]["dtype"])
                for key in ("token_ids", "scores", "logits")
            }
        return runner(encoder_token_ids=source_ids)

    def decode(self, token_ids) -> str:
        """Output ids -> text (stops at eos; drops padding and bos)."""
        kept = []
        for token in token_ids:
            if token == self.eos_id:
                break
            if token not in (self.pad_id, self.bos_id):
                kept.append(int(token))
        return self.target_vocabulary.decode(kept)

    def translate(self, texts) -> list[str]:
        """Greedy-translates a list of strings."""
        if not texts:
            return []
        source_ids, _ = self.encode_sources(list(texts))
        outputs = self.translate_ids(source_ids)
        return [self.decode(row) for row in outputs["token_ids"]]
