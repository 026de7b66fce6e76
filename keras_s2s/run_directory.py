"""A run directory holds everything needed to use a trained model.

    config.json          the merged pipeline config the run was trained with
    model.keras          the best model (by the monitored validation metric)
    source<suffix>       source tokenizer asset (char vocabulary or SentencePiece model)
    target<suffix>       target tokenizer asset (the same file as the source when shared)
    run.json             max lengths, vocabulary hashes and sizes, data and training figures
    logs/                TensorBoard logs

`Translator.from_run_directory`, `evaluate` and `export` all read it through this module, so
nothing is re-derived differently in two places.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from keras_s2s.errors import RunDirectoryError
from keras_s2s.tokenizers import Tokenizer, load_tokenizer

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METADATA_FILE = "run.json"


class RunDirectory:
    """Reads and writes one run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def _require(self, name: str) -> Path:
        file = self.path / name
        if not file.is_file():
            if not self.path.is_dir():
                raise RunDirectoryError(f"Run directory not found: {self.path}")
            raise RunDirectoryError(
                f"Run directory {self.path} has no {name}: is it a finished keras-s2s run?"
            )
        return file

    # === Writing ===

    def create(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    def save_tokenizers(self, source: Tokenizer, target: Tokenizer) -> dict:
        shared = source is target
        entries = {}
        for side, tokenizer in (("source", source), ("target", target)):
            stem = "vocabulary" if shared else side
            file = stem + tokenizer.asset_suffix
            if not (shared and side == "target"):
                tokenizer.save(self.path / file)
            entries[side] = {
                "file": file,
                "sha256": tokenizer.fingerprint(),
                "size": tokenizer.vocabulary_size,
                "type": type(tokenizer).__name__,
            }
        return {"shared_vocabulary": shared, **entries}

    def write_metadata(self, metadata: dict) -> None:
        merged = {**self.metadata(missing_ok=True), **metadata}
        (self.path / METADATA_FILE).write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")

    # === Reading ===

    def config(self) -> dict:
        return json.loads(self._require(CONFIG_FILE).read_text())

    def metadata(self, missing_ok: bool = False) -> dict:
        file = self.path / METADATA_FILE
        if missing_ok and not file.is_file():
            return {}
        return json.loads(self._require(METADATA_FILE).read_text())

    def load_tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        """Loads both tokenizers and checks them against the hashes recorded at training."""
        meta = self.metadata()
        loaded = {}
        for side in ("source", "target"):
            entry = meta[side]
            file = entry["file"]
            if file not in loaded:
                tokenizer = load_tokenizer(self._require(file))
                if tokenizer.fingerprint() != entry["sha256"]:
                    raise RunDirectoryError(
                        f"{self.path / file} changed since training (sha256 mismatch): the "
                        "model's ids would not match its vocabulary"
                    )
                loaded[file] = tokenizer
        return loaded[meta["source"]["file"]], loaded[meta["target"]["file"]]

    def load_model(self) -> keras.Model:
        import keras_s2s.models  # noqa: F401  (registers the model classes)

        return keras.saving.load_model(self._require(MODEL_FILE))
