"""Write a benchmark's results file whole, headed by what made it.

Every script in benchmarks/ that writes a results file goes through `Results`: it is created
when the script starts (so it records the command line, the commit, whether the measured code
had uncommitted changes, and the machine's load then)
and `write()` writes the whole file at the end, header first:

    Written by `python benchmarks/x.py --a 1` at commit <40 hex> on 2026-12-02 18:10 UTC.
    Machine: 2 CPUs; load average (1 min) 0.05 at the start, 3.90 at the end, 4.10 at most.

    # Title
    ...

A reader can then rerun the exact command at the exact commit, and can see whether the
machine was busy (a load average above the number of CPUs means other work shared them; "at
most" is the highest of samples taken every 15 s while the script ran). Files written before
the samples were taken have no "at most" part.
tests/test_benchmarks.py checks that every results file starts this way.
"""

from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def _code_changed(script: Path) -> bool:
    """Whether the code this run measures differs from the commit.

    That code is everything outside benchmarks/, plus the running script and this helper:
    another benchmark's script or results file being edited meanwhile changes nothing measured.
    """
    own = {script.as_posix(), "benchmarks/_results.py"}
    for line in _git("status", "--porcelain").splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if not path.startswith("benchmarks/") or path in own:
            return True
    return False


def _script(argv: list[str]) -> Path:
    script = Path(argv[0]).resolve()
    try:
        return script.relative_to(REPO)
    except ValueError:
        return script


class Results:
    """The provenance of one benchmark run, and the writer of its results file.

    Args:
        argv: the command line to name; `sys.argv` by default.
    """

    def __init__(self, argv: list[str] | None = None):
        argv = list(sys.argv if argv is None else argv)
        script = _script(argv)
        self.command = " ".join(
            ["python", shlex.quote(script.as_posix())] + [shlex.quote(a) for a in argv[1:]]
        )
        self.commit = _git("rev-parse", "HEAD").strip() or "unknown"
        self.dirty = _code_changed(script)
        self.started = datetime.datetime.now(datetime.UTC)
        self.load_start = self.load_max = os.getloadavg()[0]
        # The start and end alone can miss a busy middle: sample the load while the run lasts.
        threading.Thread(target=self._sample_load, daemon=True).start()

    def _sample_load(self, seconds: float = 15.0) -> None:
        while True:
            self.load_max = max(self.load_max, os.getloadavg()[0])
            threading.Event().wait(seconds)

    def header(self) -> list[str]:
        """The header lines; the load at the end is read now."""
        dirty = " (with uncommitted changes)" if self.dirty else ""
        end = os.getloadavg()[0]
        when = self.started.strftime("%Y-%m-%d %H:%M UTC")
        return [
            f"Written by `{self.command}` at commit {self.commit}{dirty} on {when}.",
            f"Machine: {os.cpu_count()} CPUs; load average (1 min) {self.load_start:.2f} at "
            f"the start, {end:.2f} at the end, {max(self.load_max, end):.2f} at most.",
            "",
        ]

    def write(self, path: str | Path, lines: list[str] | str) -> str:
        """Writes the header and `lines` (a list of lines or one text) as the whole file."""
        body = lines if isinstance(lines, str) else "\n".join(lines)
        text = "\n".join(self.header()) + "\n" + body.rstrip("\n") + "\n"
        Path(path).write_text(text)
        return text
