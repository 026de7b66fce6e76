"""One call for both formats, as `keras-s2s export` and the main command use it."""

from __future__ import annotations

import os
from pathlib import Path

from keras_s2s.errors import ExportError
from keras_s2s.export.layout import next_version_directory, staged_directory
from keras_s2s.export.savedmodel import export_saved_model
from keras_s2s.export.tflite import export_tflite
from keras_s2s.run_directory import RunDirectory

FORMATS = ("savedmodel", "tflite")


def export(
    run_dir: str | os.PathLike,
    formats: tuple[str, ...] = FORMATS,
    output_root: str | os.PathLike = "saved_models",
    name: str | None = None,
    beam_size: int = 4,
    quantizations: tuple[str, ...] = ("float32",),
) -> dict[str, Path]:
    """Exports a run directory; returns `{"savedmodel": path, "tflite": path}` (those asked).

    The SavedModel goes to `output_root/<name>/<version>/` (TF Serving's layout), the TFLite
    files to `output_root/<name>-tflite/<version>/`; versions count up from 1 and are never
    overwritten. `name` defaults to the run's pipeline name.

    Example:
    ```python
    paths = keras_s2s.export.export("runs/date_attention", output_root="saved_models")
    paths["savedmodel"], paths["tflite"]  # saved_models/date_attention/1, ...-tflite/1
    ```
    """
    for f in formats:
        if f not in FORMATS:
            raise ExportError(f"Unknown export format '{f}'; choose from {', '.join(FORMATS)}")
    run = RunDirectory(run_dir)
    name = name or run.metadata().get("pipeline") or run.path.name
    paths = {}
    if "savedmodel" in formats:
        paths["savedmodel"] = export_saved_model(run_dir, output_root, name, beam_size)
    if "tflite" in formats:
        directory = next_version_directory(output_root, f"{name}-tflite")
        with staged_directory(directory) as staging:
            export_tflite(run_dir, staging, quantizations)
        paths["tflite"] = directory
    return paths
