"""The export format contract: what `keras_s2s.export.export` needs from each format."""

from __future__ import annotations

from pathlib import Path


class Exporter:
    """An export format (`keras-s2s export --format`), registered under its name in
    `keras_s2s.registry.EXPORTERS` (`keras_s2s.export.register` for your own).

    `export` checks every format's options before anything is written, then calls `write` of
    each format asked, in `order`, into a temporary folder that becomes
    `<output_root>/<name><folder_suffix>/<version>/` once every format is written.
    """

    #: Appended to the model name for this format's versioned folder.
    folder_suffix = ""
    #: Formats are written in increasing order (the likeliest to fail first).
    order = 0

    def check(self, options: dict, selected: bool) -> dict:
        """Raises `ExportError` naming a bad option of this format in `options` (the keyword
        arguments of `export`); returns them normalized. `selected`: whether this format is
        written (an option it needs may be required only then)."""
        del selected
        return options

    def steps(self, options: dict) -> int:
        """How many progress steps `write` reports (calls of `step`)."""
        del options
        return 1

    def write(self, translator, run, directory: Path, options: dict, info: dict, step) -> None:
        """Writes the format into the existing, empty folder `directory` from `translator` (its
        model computes in float32) and `run` (a `RunDirectory`); `info` goes into its JSON
        file (run directory, name, version); `step(name)` marks each progress step."""
        raise NotImplementedError
