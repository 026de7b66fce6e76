"""Every results file in benchmarks/ says which committed script wrote it, and at which commit.

Nothing here runs a benchmark: the checks read the files.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HEADER = re.compile(
    r"^Written by `python (?P<script>benchmarks/[\w.]+\.py)(?: [^`]*)?` at commit "
    r"(?P<commit>[0-9a-f]{40})(?: \(with uncommitted changes\))? on "
    r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\.\n"
    r"Machine: \d+ CPUs; load average \(1 min\) \d+\.\d\d at the start, \d+\.\d\d at the end"
    r"(?:, \d+\.\d\d at most)?\.\n"
)
RESULTS_FILES = sorted(BENCHMARKS.glob("*.md"))
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


def _writes_files(tree: ast.Module) -> bool:
    """Whether the script writes a file (`write_text`, `write_bytes`, `open(..., "w")`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("write_text", "write_bytes"):
            return True
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
            modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            if any("w" in str(m) or "a" in str(m) for m in modes):
                return True
    return False


def _uses_results(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom) and node.module == "_results" for node in ast.walk(tree)
    )


def test_there_are_results_files_and_scripts():
    assert RESULTS_FILES and SCRIPTS


@pytest.mark.parametrize("path", RESULTS_FILES, ids=lambda p: p.name)
def test_results_file_names_its_script_and_commit(path):
    text = path.read_text(encoding="utf-8")
    match = HEADER.match(text)
    assert match, f"{path.name} does not start with the header benchmarks/_results.py writes"
    assert (BENCHMARKS.parent / match["script"]).is_file(), f"{match['script']} is not committed"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_results_writing_script_uses_the_helper(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if _writes_files(tree) or "--out" in path.read_text(encoding="utf-8"):
        assert _uses_results(tree), f"{path.name} writes results without benchmarks/_results.py"


def test_header_pattern_rejects_a_hand_written_heading():
    assert not HEADER.match("# date_attention over seeds\n\n| seed |\n")
    assert not HEADER.match(
        "Written by `python benchmarks/x.py` at commit 0a2ab65 on 2026-12-02 18:10 UTC.\n"
        "Machine: 2 CPUs; load average (1 min) 0.05 at the start, 3.90 at the end.\n"
    )  # a short hash


def test_helper_writes_the_header_the_tests_expect(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from _results import Results

    results = Results([str(BENCHMARKS / "example.py"), "--seeds", "1,2"])
    out = tmp_path / "example.md"
    results.write(out, ["# Title", "", "| a |"])
    text = out.read_text()
    assert HEADER.match(text)
    assert text.startswith("Written by `python benchmarks/example.py --seeds 1,2` at commit ")
    assert " at most.\n" in text.splitlines(keepends=True)[1]
    assert text.endswith("# Title\n\n| a |\n")
