"""Where exports go: versioned folders, written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from keras_s2s.run_directory import RunDirectory


def next_version_directory(root: str | os.PathLike, name: str) -> Path:
    """`root/name/<n+1>`, where n is the highest integer version already there (0 if none)."""
    base = Path(root) / name
    versions = [int(p.name) for p in base.glob("*") if p.is_dir() and p.name.isdigit()]
    return base / str(max(versions, default=0) + 1)


@contextlib.contextmanager
def staged_directory(target: Path):
    """Yields a temporary folder beside `target`, renamed to `target` if the block succeeds
    (so a server polling the parent never sees half an export) and removed if it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def copy_vocabularies(run: RunDirectory, destination: Path) -> None:
    """Copies the run's source and target tokenizer files into `destination`."""
    meta = run.metadata()
    for side in ("source", "target"):
        file = meta[side]["file"]
        shutil.copy(run.path / file, destination / file)
