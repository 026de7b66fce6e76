"""Where exports go: versioned folders, written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from keras_s2s.errors import ExportError
from keras_s2s.interrupts import raise_if_interrupted
from keras_s2s.run_directory import RunDirectory

#: The TFLite files of model `name` go to `<root>/<name><TFLITE_SUFFIX>/<version>/`.
TFLITE_SUFFIX = "-tflite"
#: Exported models compute in float32, whatever `training.precision` was (the variables are
#: float32 under every policy; TFLite's `float16` variant stores 16-bit weights).
EXPORT_DTYPE = "float32"


def _versions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]


def next_version(root: str | os.PathLike, *names: str) -> int:
    """One more than the highest integer version under any of `root/<name>` (1 if none).

    One export call writes the same version under each name (`<name>` and `<name>-tflite`), so
    the two artifacts of a call are found by their number.
    """
    return max((v for name in names for v in _versions(Path(root) / name)), default=0) + 1


def check_name(name) -> str:
    """A model name must be one plain folder name (TF Serving's `<name>/<version>/` layout)."""
    if not isinstance(name, str) or not name.strip():
        raise ExportError(f"The model name must be a non-empty string; got {name!r}")
    bad = [c for c in ("/", "\\", os.sep, "\0") if c in name]
    if bad or name in (".", "..") or name.startswith(".") or name != name.strip():
        raise ExportError(
            f"The model name must be one folder name (no path separators, not starting with "
            f"'.', no surrounding spaces); got {name!r}"
        )
    return name


def check_output_root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ExportError(f"The output root {root} exists and is not a folder")
    return root


@contextlib.contextmanager
def staged_directories(*targets: Path):
    """Yields one temporary folder beside each target; if the block succeeds they are renamed
    to their targets (so a server polling a parent never sees half an export), and if it or
    a rename fails, nothing is left: the temporary folders, the targets already renamed in
    this call and the parent folders this call created are removed.
    """
    created_parents, stagings, renamed = [], [], []
    try:
        for target in targets:
            for parent in reversed(target.parents):
                if not parent.exists():
                    parent.mkdir()
                    created_parents.append(parent)
            stagings.append(Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent)))
        yield stagings
        raise_if_interrupted()  # A signal whose exception was lost: keep nothing.
        for staging, target in zip(stagings, targets, strict=True):
            if target.exists():
                raise ExportError(
                    f"{target} appeared during this export (another export at the same time?); "
                    "versions are never overwritten: export again"
                )
            staging.rename(target)
            renamed.append(target)
    except BaseException:
        for path in stagings + renamed:
            shutil.rmtree(path, ignore_errors=True)
        for parent in reversed(created_parents):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only if still empty
        raise


@contextlib.contextmanager
def staged_directory(target: Path):
    """`staged_directories` for one target: yields its temporary folder."""
    with staged_directories(target) as (staging,):
        yield staging


def copy_vocabularies(run: RunDirectory, destination: Path) -> None:
    """Copies the run's source and target tokenizer files into `destination`."""
    meta = run.metadata()
    for side in ("source", "target"):
        file = meta[side]["file"]
        shutil.copy(run.path / file, destination / file)
