"""One call for both formats, as `keras-s2s export` and the main command use it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from keras_s2s.errors import ExportError
from keras_s2s.export.layout import (
    EXPORT_DTYPE,
    check_name,
    check_output_root,
    next_version,
    staged_directories,
)
from keras_s2s.registry import EXPORTERS
from keras_s2s.run_directory import RunDirectory
from keras_s2s.translator import Translator

#: The default formats of `export` and `keras-s2s export --format all` (every family writes
#: them); `keras_s2s.registry.EXPORTERS` has every format (CTranslate2, plugins' own).
FORMATS = ("savedmodel", "tflite")


def check_formats(formats) -> tuple[str, ...]:
    """The formats asked, each known, without repeats (a single string is one)."""
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(dict.fromkeys(formats))
    if not formats:
        raise ExportError(f"No export format given; choose from {', '.join(EXPORTERS)}")
    for f in formats:
        if f not in EXPORTERS:
            raise ExportError(f"Unknown export format '{f}'; choose from {', '.join(EXPORTERS)}")
    return formats


def export(
    run_dir: str | os.PathLike,
    formats: tuple[str, ...] = FORMATS,
    output_root: str | os.PathLike = "saved_models",
    name: str | None = None,
    beam_size: int = 4,
    quantizations: tuple[str, ...] = ("float32",),
    allow_unfinished: bool = False,
    progress: bool = False,
    ensemble: tuple = (),
    **options,
) -> dict[str, Path]:
    """Exports a run directory; returns `{"savedmodel": path, "tflite": path}` (those asked;
    `"ctranslate2"` too, for the families that convert: see `keras_s2s.export.ctranslate2`).
    `formats` may name any registered format (`keras_s2s.export.register`); `options` are
    passed on to the formats (as `beam_size` and `quantizations` are).

    The SavedModel goes to `output_root/<name>/<version>/` (TF Serving's layout), the TFLite
    files to `output_root/<name>-tflite/<version>/`. One call uses one version for both: one
    more than the highest version under either folder, so the two artifacts of a call share
    their number (and their JSON files name the run directory and the version). Versions are
    never overwritten. `name` defaults to the run's pipeline name.

    The call is atomic: every option is checked (an `ExportError` names a bad one) before
    anything is written, each artifact is written to a temporary folder, and only when all
    of them are complete are they renamed into place; on any failure nothing new is left
    under `output_root`. A run that did not finish needs `allow_unfinished=True`.
    `progress=True` shows a progress bar of the steps on stderr. `ensemble` names more run
    directories (sharing the tokenizers of `run_dir`) to export with it as one model that
    averages their log-probabilities at each step (`Translator.ensemble`): SavedModel only.

    Example:
    ```python
    paths = keras_s2s.export.export("runs/date_attention", output_root="saved_models")
    paths["savedmodel"], paths["tflite"]  # saved_models/date_attention/1, ...-tflite/1
    ```
    """
    formats = check_formats(formats)
    options = {"beam_size": beam_size, "quantizations": quantizations, **options}
    exporters = {f: EXPORTERS[f]() for f in EXPORTERS}
    for f, exporter in exporters.items():  # Every option, before anything is written.
        options = exporter.check(options, selected=f in formats)
    if name is not None:
        check_name(name)
    output_root = check_output_root(output_root)

    ensemble = tuple(str(path) for path in ensemble)
    if ensemble and formats != ("savedmodel",):
        raise ExportError(
            "An ensemble exports as a SavedModel only; choose --format savedmodel "
            f"(asked: {', '.join(formats)})"
        )
    run = RunDirectory(run_dir)
    if ensemble:
        try:
            translator = Translator.ensemble(
                [run_dir, *ensemble], allow_unfinished=allow_unfinished, dtype=EXPORT_DTYPE
            )
        except ValueError as e:
            raise ExportError(str(e)) from None
    else:
        translator = Translator.from_run_directory(
            run_dir, allow_unfinished=allow_unfinished, dtype=EXPORT_DTYPE
        )
    name = check_name(name or run.metadata().get("pipeline") or run.path.name)
    folders = {f: name + exporters[f].folder_suffix for f in formats}
    version = next_version(output_root, *folders.values())
    targets = {f: output_root / folders[f] / str(version) for f in formats}
    info = {
        "run_dir": str(run.path.resolve()),
        "name": name,
        "version": version,
        "exported_together": {f: f"{folders[f]}/{version}" for f in formats},
        **({"ensemble": [str(Path(p).resolve()) for p in ensemble]} if ensemble else {}),
    }
    steps = sum(exporters[f].steps(options) for f in formats)
    with staged_directories(*targets.values()) as stagings, _Steps(steps, progress) as step:
        staging = dict(zip(targets, stagings, strict=True))
        for f in sorted(formats, key=lambda f: exporters[f].order):
            exporters[f].write(translator, run, staging[f], options, info, step)
    return {f: targets[f] for f in EXPORTERS if f in formats}


class _Steps:
    """A progress bar of `total` steps on stderr (nothing if not `enabled`); called with a
    step's name as it starts, the previous step counts as done."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.bar, self.started = total, enabled, None, False

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm  # Lazy: start-up time (only progress bars need it).

            self.bar = tqdm(total=self.total, desc="exporting", unit=" step", file=sys.stderr)
        return self

    def __call__(self, name: str) -> None:
        if self.bar is None:
            return
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description(f"exporting ({name})")

    def __exit__(self, kind, *_):
        if self.bar is not None:
            if kind is None and self.started:
                self.bar.update(1)
            self.bar.close()
