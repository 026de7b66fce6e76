"""The documentation: every page is in the site's nav, every config key and command-line option
and every public name is documented, and every shell command of the README and the docs runs.

The shell commands run for real through the command line's `main` (what the `keras-s2s`
script calls; in this process, which saves an interpreter and TensorFlow start per command:
tests/cli/test_cli.py runs the installed script itself), each made tiny by the `--set`
overrides and flags that `COMMANDS` adds to it. A command the table does not know fails
`test_every_documented_command_is_known`: a new command in the docs gets a row here (or an
exemption with its reason), so it gets run.
"""

import ast
import contextlib
import io
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = ("bash", "sh", "console")


def doc_pages() -> list[Path]:
    """The README, then the site's pages in the order of `mkdocs.yml`'s nav."""
    text = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.search(r"^nav:\n((?:  - .*\n)+)", text, re.M).group(1)
    names = re.findall(r"^  - [^:]+: (\S+\.md)$", nav, re.M)
    return [REPO / "README.md"] + [REPO / "docs" / name for name in names]


def code_blocks(path: Path, languages: tuple[str, ...]) -> list[str]:
    """The fenced code blocks of `path` in one of `languages`, in order."""
    text = path.read_text(encoding="utf-8")
    return [
        body
        for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
        if language in languages
    ]


def without_comment(line: str) -> str:
    """`line` without its shell comment (a `#` that starts a word, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def block_commands(block: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments and blank lines dropped,
    runs of spaces made one."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = without_comment(line).strip()
        if line:
            commands.append(re.sub(r"\s+", " ", line))
    return commands


def shell_blocks() -> list[tuple[str, list[str]]]:
    """(`page:index`, commands) of every shell block of the README and the docs."""
    return [
        (f"{page.relative_to(REPO)}:{index}", block_commands(block))
        for page in doc_pages()
        for index, block in enumerate(code_blocks(page, SHELL_LANGUAGES))
    ]


# Overrides that make a date_normalization pipeline tiny: the 5k/500/500 builder config in the
# session's TFDS folder, a small model, one epoch.
DATE = (
    "--set", 'data.config="small"', "--set", 'data.data_dir="{tfds}"',
    "--set", "model.embedding_dim=8", "--set", "model.hidden_dim=16", "--epochs", "1",
)  # fmt: skip
ADDITION = (
    "--set", 'data.config="two_digits"', "--set", 'data.data_dir="{tfds}"',
    "--set", "model.hidden_dim=16", "--epochs", "1",
)  # fmt: skip
# Multi30k (29,000 pairs): a small SentencePiece vocabulary, short sentences only, a tiny model.
MULTI30K = (
    "--set", "data.vocabulary_size=500", "--set", "data.max_source_length=16",
    "--set", "data.max_target_length=16", "--set", "training.average_last_epochs=0",
    "--set", "model.hidden_dim=16", "--epochs", "1",
)  # fmt: skip
TRANSFORMER = (
    "--set", "model.intermediate_dim=32", "--set", "model.num_heads=2",
    "--set", "model.num_encoder_layers=1", "--set", "model.num_decoder_layers=1",
)  # fmt: skip
MULTI30K_ATTENTION = MULTI30K + ("--set", "model.embedding_dim=16")
TINY_TRANSFORMER = ("--set", "model.hidden_dim=16", "--epochs", "1", *TRANSFORMER)

# The quickstart's `train` command: run once, by the `trained_run` fixture, whose run every block
# that reads `runs/date_attention` gets a copy of.
TRAIN_DATE = "keras-s2s train date_attention --set data.config='\"small\"' --epochs 3"


# Every command the README and the docs show, as written there (comments dropped), with the
# arguments appended to make it tiny (later options win: `--epochs 1` after `--epochs 3`).
COMMANDS: dict[str, tuple[str, ...]] = {
    # Quickstart (README and docs/quickstart.md).
    "keras-s2s data date_attention": DATE[:4],
    TRAIN_DATE: DATE,
    "keras-s2s evaluate runs/date_attention": ("--limit", "100"),
    'keras-s2s translate runs/date_attention "september 27, 1994" "27/09/94"': (),
    "keras-s2s export runs/date_attention --format all": (),
    # docs/cli.md
    "keras-s2s train addition_seq2seq --set model.hidden_dim=256 "
    "--set training.learning_rate=0.002": ADDITION,
    "keras-s2s translate runs/date_attention --beam 4 --nbest 2 --plot-attention attention.png "
    '"27/09/94"': (),
    "keras-s2s translate runs/date_attention --sample --num-samples 3 --temperature 1.5 --seed 1 "
    '"27/09/94"': (),
    "keras-s2s export runs/date_attention --format tflite --quantization float32,int8": (),
    # docs/export.md
    "keras-s2s train date_transformer": (*DATE[:4], *TINY_TRANSFORMER),
    "keras-s2s export runs/date_transformer --format ctranslate2 --quantization int8": (),
    # docs/scale.md
    "keras-s2s train multi30k_transformer_de_en --strategy mirrored": MULTI30K + TRANSFORMER,
    # A one-point space of a tiny model (tests/tuning searches every family's default space).
    "keras-s2s tune date_attention --tuner random --max-trials 10 --directory tuning": (
        *DATE[:4],
        "--set",
        'search.space={"model.hidden_dim" = [16], "model.embedding_dim" = [8]}',
        "--max-trials",
        "1",
        "--epochs",
        "1",
    ),  # fmt: skip
    "keras-s2s train tuning/date_attention/best.toml": ("--epochs", "1", *DATE[4:8]),
    # docs/results.md: one Multi30k row each (the benchmark script after `&&` is exempt).
    ".venv/bin/keras-s2s train multi30k_transformer_de_en": MULTI30K + TRANSFORMER,
    ".venv/bin/keras-s2s train multi30k_transformer_en_de": MULTI30K + TRANSFORMER,
    ".venv/bin/keras-s2s train multi30k_attention_de_en": MULTI30K_ATTENTION,
}

# Commands not run, and why.
EXEMPT: dict[str, str] = {
    "python3.11 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/keras-s2s run": (
        "the main job from a fresh clone (9 to 12 minutes): a new venv and pip install; "
        "its parts are tested (tests/cli, tests/export) and measured in the README"
    ),
    "python3.11 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/ruff check "
    ". && .venv/bin/ruff format --check . && .venv/bin/mkdocs build --strict && .venv/bin/python "
    "-m pytest -q -n 2 --dist loadfile": (
        "the test command itself (running it here would recurse); .ci/run runs it verbatim "
        "(tests/test_package.py checks that)"
    ),
    "python3.11 -m venv .venv && .venv/bin/pip install -q -e .": (
        "a pip install into a new venv; tests/test_wheel.py installs the package"
    ),
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": '
    '"worker", "index": 0}}\' keras-s2s train multi30k_transformer_de_en --strategy '
    "multi_worker --output-dir /shared/runs/m30k": (
        "needs a second machine; tests/training/test_distribution.py runs two real "
        "`train --strategy multi_worker` processes on 127.0.0.1"
    ),
}
EXEMPT_PARTS: dict[str, str] = {
    f".venv/bin/python benchmarks/multi30k_results.py runs/{pipeline}": (
        "rewrites the committed benchmarks/multi30k_results.md and its curves from full runs"
    )
    for pipeline in (
        "multi30k_transformer_de_en",
        "multi30k_transformer_en_de",
        "multi30k_attention_de_en",
    )
}
# Blocks whose commands read ../shared/data/multi30k: a minute or more each on 2 cores (29,000
# pairs read and tokenized, a SentencePiece model trained), so they run with `-m slow`.
SLOW_MARK = "multi30k_"
# The run the blocks read without training it first (`runs/date_attention`).
SHARED_RUN = "runs/date_attention"
SHARED_DATA = REPO.parent / "shared" / "data"


def command_parts(command: str) -> list[str]:
    """The parts of a command to run (none if it is exempt whole)."""
    if command in EXEMPT:
        return []
    return [part.strip() for part in command.split("&&")]


def test_every_documented_command_is_known():
    """Each command of the docs is run by `test_shell_block` or exempt with a reason, and the
    tables name no command the docs no longer show."""
    seen = set()
    for name, commands in shell_blocks():
        for command in commands:
            seen.add(command)
            for part in command_parts(command):
                seen.add(part)
                assert part in COMMANDS or part in EXEMPT_PARTS, (
                    f"{name}: {part!r} is not in tests/test_docs.py's COMMANDS (add the "
                    "arguments that make it tiny) or EXEMPT (with the reason)"
                )
    assert not (set(COMMANDS) | set(EXEMPT) | set(EXEMPT_PARTS)) - seen


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tfds_dir):
    """The run directory of the quickstart's `train date_attention` command (made tiny), after
    checking the command's output."""
    folder = tmp_path_factory.mktemp("trained_run")
    check_output(*run_command(TRAIN_DATE, COMMANDS[TRAIN_DATE], folder, tfds_dir), folder)
    return folder / SHARED_RUN


def run_command(part: str, extra: tuple[str, ...], cwd: Path, tfds_dir: str):
    """Runs one documented command with `extra` appended; returns (argv, its JSON figures,
    its stdout lines)."""
    words = shlex.split(part)
    assert words[0] in ("keras-s2s", ".venv/bin/keras-s2s"), part
    argv = words[1:] + [a.replace("{tfds}", tfds_dir) for a in extra]
    from keras_s2s.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
    finally:
        os.chdir(previous)
    assert code == 0, f"{part}\n{stderr.getvalue()[-3000:]}"
    lines = stdout.getvalue().strip().splitlines()
    return argv, json.loads(lines[-1]), lines[:-1]


def option(argv: list[str], name: str, default=None):
    """The last value of option `name` in `argv` (argparse keeps the last)."""
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
    return values[-1] if values else default


def check_output(argv: list[str], figures: dict, lines: list[str], cwd: Path):
    """What each command says it does, checked on its output and its files."""
    command = argv[0]
    if command == "data":
        assert figures["pipeline"] == Path(argv[1]).stem
        assert figures["examples"]["train"] > 0 and figures["train"]["examples"] > 0
    elif command == "train":
        run_dir = cwd / figures["run_dir"]
        assert figures["epochs"] == int(option(argv, "--epochs"))
        assert (run_dir / "model.keras").is_file()
        status = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["status"]
        assert status == "finished"
    elif command == "evaluate":
        assert 0.0 <= figures["exact_match"] <= 1.0 and 0.0 <= figures["bleu"] <= 100.0
        assert figures["bleu_signature"].startswith("nrefs:1|case:mixed")
        assert figures["examples"] == int(option(argv, "--limit"))
        assert figures["beam"]["beam_size"] == 4  # evaluation.beam_size: greedy, then beam 4
    elif command == "translate":
        texts = [a for a in argv[2:] if not a.startswith("--") and a not in argv_values(argv)]
        nbest = int(option(argv, "--num-samples" if "--sample" in argv else "--nbest", 1))
        assert figures["count"] == len(texts) and len(lines) == len(texts) * nbest
        if nbest > 1:
            assert all(re.fullmatch(r"\d+ \|\|\| .* \|\|\| -?\d+\.\d{4}", line) for line in lines)
        if option(argv, "--plot-attention"):
            png = (cwd / option(argv, "--plot-attention")).read_bytes()
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
    elif command == "export":
        kinds = {"all": {"savedmodel", "tflite"}}.get(option(argv, "--format"))
        assert set(figures) - {"run_dir"} == (kinds or {option(argv, "--format")})
        for kind in kinds or {option(argv, "--format")}:
            assert (cwd / figures[kind]).is_dir()
        if "ctranslate2" in figures:
            info = json.loads((cwd / figures["ctranslate2"] / "keras_s2s_export.json").read_text())
            assert info["quantization"] == option(argv, "--quantization", "float32")
        if "--quantization" in argv and "tflite" in figures:
            names = {p.name for p in (cwd / figures["tflite"]).glob("*.tflite")}
            assert len(names) == len(option(argv, "--quantization").split(","))
    elif command == "tune":
        assert len(lines) >= 1 and figures["trials"] == int(option(argv, "--max-trials"))
        assert 0.0 <= figures["best_score"] <= 1.0
        assert (cwd / figures["best_config"]).is_file()
    else:
        raise AssertionError(f"no check for {command!r}")


def argv_values(argv: list[str]) -> set[str]:
    """The values of `--option value` pairs in `argv`."""
    flags = {"--beam", "--nbest", "--length-penalty", "--plot-attention", "--set", "--limit"}
    flags |= {"--num-samples", "--temperature", "--top-k", "--top-p", "--seed"}
    return {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in flags}


def block_params():
    """One test per shell block with commands to run; a block repeated verbatim (the README's
    quickstart is the docs' quickstart) runs once."""
    params, seen = [], set()
    for name, commands in shell_blocks():
        parts = [p for c in commands for p in command_parts(c) if p not in EXEMPT_PARTS]
        if not parts or tuple(parts) in seen:
            continue
        seen.add(tuple(parts))
        marks = [pytest.mark.slow] if any(SLOW_MARK in p for p in parts) else []
        params.append(pytest.param(parts, id=name, marks=marks))
    return params


@pytest.mark.parametrize("parts", block_params())
def test_shell_block(parts, tmp_path, tfds_dir, request):
    """A shell block's commands run in order in one folder, each made tiny, and do what they
    say. A block that reads `runs/date_attention` gets a copy of `trained_run` there (the
    quickstart's `train` command, run once)."""
    if any(SLOW_MARK in p for p in parts) and not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    if any(SHARED_RUN in part for part in parts):
        shutil.copytree(request.getfixturevalue("trained_run"), tmp_path / SHARED_RUN)
    for part in parts:
        if part == TRAIN_DATE:
            continue  # Run by `trained_run`, whose run is here.
        argv, figures, lines = run_command(part, COMMANDS[part], tmp_path, tfds_dir)
        check_output(argv, figures, lines, tmp_path)


def test_every_config_key_is_documented():
    """docs/config.md names every key of `keras_s2s.config.DEFAULTS` as `section.key`."""
    from keras_s2s.config import DEFAULTS

    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    keys = [
        f"{section}.{key}" if isinstance(values, dict) else section
        for section, values in DEFAULTS.items()
        for key in (values if isinstance(values, dict) else [None])
    ]
    assert len(keys) > 50
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"docs/config.md does not document {missing}"


def test_every_command_and_option_is_documented():
    """docs/cli.md's table of options has a row per command naming each of its options."""
    from keras_s2s.cli.main import build_parser

    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `?([a-z ]+?)`? \| (.*) \|$", text, re.M))
    _, commands = build_parser()
    assert set(commands) == {
        "data", "train", "tune", "evaluate", "translate", "score", "export", "run"
    }  # fmt: skip
    for name, parser in commands.items():
        row = rows[name]
        if name == "run":  # "the options of `train`", then its own
            row += rows["train"]
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help", "--verbose"):
                    assert f"`{flag}" in row, f"docs/cli.md: `{name}` lacks {flag}"
            if not action.option_strings:
                assert action.dest.upper() in row, f"docs/cli.md: `{name}` lacks {action.dest}"
    assert "`--verbose`" in rows["every command"]


def public_names(init: Path) -> list[str]:
    """A subpackage's `__all__`, read from its source (a list, or `sorted(_NAMES)`)."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    values = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names = values["__all__"]
    if isinstance(names, ast.Call):  # sorted(_NAMES)
        return sorted(ast.literal_eval(values[names.args[0].id]))
    return [n for n in ast.literal_eval(names) if not n.startswith("*")]


def test_every_public_name_is_in_the_api_reference():
    """docs/api.md renders every name of every subpackage's `__all__` (mkdocs --strict then
    fails if one cannot be found)."""
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    rendered = set(re.findall(r"^::: [\w.]+\.(\w+)$", text, re.M))
    named = set(re.findall(r"`(\w+)`", text))
    inits = sorted((REPO / "keras_s2s").glob("*/__init__.py"))
    inits += sorted((REPO / "keras_s2s" / "models").glob("*/__init__.py"))
    for init in inits:
        if init.parent.name == "cli":
            continue
        for name in public_names(init):
            assert name in rendered or name in named, f"docs/api.md lacks {init.parent.name}.{name}"
    for name in ("Translator", "KerasS2SError", "ConfigError", "DataError"):
        assert name in rendered
