"""Readers for users' own parallel data. Each returns a `(source, target)` string dataset.

The files are checked in Python first, so a problem is reported with its file and line
(a missing file, an empty file, files of different line counts, a line without its separator,
a TSV line without exactly two columns, invalid UTF-8) instead of surfacing later from inside
TensorFlow. A UTF-8 byte-order mark at the start of a file is dropped. Pairs whose source or
target is empty (or only whitespace) are skipped, and counted by `read_pairs`.
"""

from __future__ import annotations

import codecs
import gzip
import os
import random

import tensorflow as tf

from keras_s2s.errors import DataError


def read_lines(path: str | os.PathLike) -> list[str]:
    """Reads a UTF-8 (optionally gzip) text file into lines, without line endings."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"File not found: {path}")
    if os.path.isdir(path):
        raise DataError(f"Expected a file but got a directory: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"Cannot read {path}: {e}") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]  # Else it would become a token of the first example.
    if not raw.strip():
        raise DataError(f"File is empty: {path}")
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"Invalid UTF-8 in {path}, line {number} (byte {e.start}): {line[:60]!r}"
            ) from None
        out.append(text[:-1] if text.endswith("\r") else text)
    return out


def _pairs_to_dataset(sources: list[str], targets: list[str]) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(sources, tf.string), tf.constant(targets, tf.string))
    )


def read_parallel_text_pairs(source_path, target_path) -> tuple[list[str], list[str]]:
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise DataError(
            f"Source and target files have different line counts: {source_path} has "
            f"{len(sources)} lines, {target_path} has {len(targets)} lines"
        )
    return sources, targets


def read_separated_pairs(
    path, separator: str, strip: bool = False, columns: int = 0
) -> tuple[list, list]:
    """Reads `source<separator>target` lines, split at the first separator.

    With `columns=2`, a line must hold exactly one separator. A blank line reads as an empty
    pair (skipped later by `drop_empty_pairs`).
    """
    sources, targets = [], []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            sources.append("")
            targets.append("")
            continue
        if separator not in line:
            raise DataError(
                f"Line {number} of {path} has no separator {separator!r}: {line[:60]!r}"
            )
        if columns and line.count(separator) + 1 != columns:
            raise DataError(
                f"Line {number} of {path} has {line.count(separator) + 1} columns separated "
                f"by {separator!r}, expected {columns}: {line[:60]!r}"
            )
        source, target = line.split(separator, 1)
        if strip:
            source, target = source.strip(), target.strip()
        sources.append(source)
        targets.append(target)
    return sources, targets


def drop_empty_pairs(
    sources: list[str], targets: list[str], where: str
) -> tuple[list[str], list[str], int]:
    """Drops the pairs whose source or target is empty or only whitespace.

    Returns the kept sources and targets and how many pairs were dropped; raises a `DataError`
    naming `where` (the file or files) if no pair is left.
    """
    keep = [
        i for i, (s, t) in enumerate(zip(sources, targets, strict=True)) if s.strip() and t.strip()
    ]
    if not keep:
        raise DataError(f"Every pair in {where} has an empty source or target")
    if len(keep) == len(sources):
        return sources, targets, 0
    return [sources[i] for i in keep], [targets[i] for i in keep], len(sources) - len(keep)


def holdout(
    sources: list[str], targets: list[str], sizes: dict[str, int], seed: int
) -> dict[str, tuple[list[str], list[str]]]:
    """Shuffles with `seed` and cuts off the held-out splits named in `sizes` (the rest trains)."""
    order = list(range(len(sources)))
    random.Random(seed).shuffle(order)
    needed = sum(sizes.values())
    if needed >= len(order):
        raise DataError(
            f"Cannot hold out {needed} examples ({sizes}) from {len(order)}: too few examples"
        )
    out, start = {}, 0
    for name, size in sizes.items():
        picked = order[start : start + size]
        out[name] = ([sources[i] for i in picked], [targets[i] for i in picked])
        start += size
    rest = order[start:]
    out["train"] = ([sources[i] for i in rest], [targets[i] for i in rest])
    return out
