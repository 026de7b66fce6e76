"""Every class of bad input through the real command line: case -> exit status -> message.

    python benchmarks/bad_input_table.py [--out benchmarks/bad_input_table.md]

Each case runs `keras-s2s` in a fresh process (as a user would, no `--verbose`) and records
the exit status, the number of stderr lines and the last one. Every path in the table is one
this script made (in a temporary folder, shown as `…`). Writes the whole Markdown file through
benchmarks/_results.py.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-m", "keras_s2s.cli.main"]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import Results  # noqa: E402

from tests.cli.test_bad_input import make_run  # noqa: E402  (a run directory made by hand)


def damaged_copy(run: Path, folder: Path, file: str, damage) -> Path:
    copy = folder / f"damaged-{file}-{len(list(folder.iterdir()))}"
    copy.mkdir()
    for p in run.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    (copy / file).write_bytes(damage((copy / file).read_bytes()))
    return copy


def data_pipeline(folder: Path, name: str, body: bytes, source="dlfs2", gz=False) -> str:
    data = folder / (name + (".txt.gz" if gz else ".txt"))
    data.write_bytes(gzip.compress(body) if gz else body)
    toml = folder / f"{name}.toml"
    toml.write_text(
        f'[data]\nsource = "{source}"\ntrain = ["{data}"]\ntest_size = 1\nvalidation_size = 1\n'
    )
    return str(toml)


def cases(folder: Path) -> list[tuple[str, list[str], bytes | None]]:
    good = b"".join(f"{i}+{i}_{2 * i}\n".encode() for i in range(40))
    run = make_run(folder / "run")
    unfinished = make_run(folder / "unfinished", status="failed")
    not_a_dir = folder / "a-file"
    not_a_dir.write_text("x")
    half = lambda b: b[: len(b) // 2]  # noqa: E731
    fake_gz = folder / "fake.txt.gz"
    fake_gz.write_bytes(b"not gzip at all\n")
    fake_toml = folder / "fake_gz.toml"
    fake_toml.write_text(f'[data]\nsource = "dlfs2"\ntrain = ["{fake_gz}"]\ntest_size = 1\n')
    bad_toml = folder / "syntax.toml"
    bad_toml.write_text("[data\nsource = 1\n")
    p = lambda name, body, **kw: data_pipeline(folder, name, body, **kw)  # noqa: E731
    return [
        ("data: empty file", ["data", p("empty", b"")], None),
        ("data: line without separator", ["data", p("nosep", b"1+1_2\n2+2 4\n")], None),
        ("data: invalid UTF-8", ["data", p("utf8", b"1+1_2\n\xfe+1_2\n")], None),
        (
            "data: TSV line of 3 columns",
            ["data", p("tsv3", b"a\tb\n" * 3 + b"a\tb\tc\n", source="tsv")],
            None,
        ),  # noqa: E501
        ("data: fake gzip", ["data", str(fake_toml)], None),
        (
            "data: BOM at the start (gzip)",
            ["data", p("bom", b"\xef\xbb\xbf" + good, gz=True)],
            None,
        ),  # noqa: E501
        ("data: 2 empty pairs", ["data", p("emptypairs", good + b"_5\n7+7_ \n")], None),
        ("data: every pair empty", ["data", p("allempty", b"_1\n2_\n")], None),
        ("config: unknown pipeline", ["train", "no_such_pipeline"], None),
        ("config: TOML syntax error", ["data", str(bad_toml)], None),
        (
            "config: model.no_such_key=1",
            ["data", "date_seq2seq", "--set", "model.no_such_key=1"],
            None,
        ),  # noqa: E501
        (
            "config: model.hidden_dim=-5",
            ["train", "date_seq2seq", "--set", "model.hidden_dim=-5"],
            None,
        ),  # noqa: E501
        (
            "config: model.hidden_dim=abc",
            ["train", "date_seq2seq", "--set", "model.hidden_dim=abc"],
            None,
        ),  # noqa: E501
        ("config: --epochs 0", ["train", "date_seq2seq", "--epochs", "0"], None),
        (
            "config: monitor on the test split",
            ["train", "dlfs2_date_attention", "--set", 'training.monitor="test_exact_match"'],
            None,
        ),  # noqa: E501
        ("flags: unknown option", ["translate", str(run), "--bogus", "1+1"], None),
        ("flags: --beam two", ["translate", str(run), "--beam", "two", "1+1"], None),
        ("flags: options after texts", ["translate", str(run), "1+1", "--beam", "2"], None),
        (
            "flags: --output-dir is a file",
            ["train", "addition_seq2seq", "--output-dir", str(not_a_dir)],
            None,
        ),  # noqa: E501
        ("run dir: missing", ["evaluate", str(folder / "nowhere")], None),
        ("run dir: a file", ["translate", str(not_a_dir), "1+1"], None),
        (
            "run dir: 0-byte model.keras",
            ["translate", str(damaged_copy(run, folder, "model.keras", lambda b: b"")), "1+1"],
            None,
        ),  # noqa: E501
        (
            "run dir: cut-short model.keras",
            ["export", str(damaged_copy(run, folder, "model.keras", half))],
            None,
        ),  # noqa: E501
        (
            "run dir: cut-short run.json",
            ["translate", str(damaged_copy(run, folder, "run.json", half)), "1+1"],
            None,
        ),  # noqa: E501
        (
            "run dir: cut-short config.json",
            ["evaluate", str(damaged_copy(run, folder, "config.json", half))],
            None,
        ),  # noqa: E501
        ("run dir: a failed run", ["translate", str(unfinished), "1+1"], None),
        ("translate: invalid UTF-8 on stdin", ["translate", str(run)], b"1+1\n\xff+2\n"),
        (
            "export: --quantization int4",
            [
                "export",
                str(run),
                "--format",
                "all",
                "--quantization",
                "int4",
                "--output-root",
                str(folder / "exports"),
            ],
            None,
        ),  # noqa: E501
        (
            "export: --beam-size 0",
            ["export", str(run), "--beam-size", "0", "--output-root", str(folder / "exports")],
            None,
        ),  # noqa: E501
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/bad_input_table.md")
    args = parser.parse_args()
    results = Results()
    rows = ["| case | exit | stderr lines | last stderr line |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, argv, stdin in cases(folder):
            result = subprocess.run(
                CLI + argv, input=stdin or b"", capture_output=True, timeout=600, cwd=folder
            )
            err = result.stderr.decode("utf-8", "replace").strip().splitlines()
            last = (err[-1] if err else "").replace(str(folder), "…").replace("|", "\\|")
            rows.append(f"| {name} | {result.returncode} | {len(err)} | `{last}` |")
            print(rows[-1], flush=True)
    intro = [
        "# Bad input through the command line",
        "",
        "Each case runs `keras-s2s` in a fresh process, as a user would (no `--verbose`): its "
        "exit status, the number of lines it wrote to stderr, and the last one. `…` is the "
        "temporary folder the script made the files in.",
        "",
    ]
    results.write(args.out, intro + rows)


if __name__ == "__main__":
    main()
