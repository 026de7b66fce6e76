"""docs/extending.md, done as it shows: a user's own data source, tokenizer, model family and
export format, from a script and from an installed package, with no file of keras-s2s edited.
Each runs in its own process (fresh registries)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.test_docs import code_blocks

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "extending.md"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def page_script() -> str:
    (script,) = code_blocks(PAGE, ("python",))
    return script


def test_the_page_script_trains_evaluates_translates_and_exports(tmp_path):
    (tmp_path / "script.py").write_text(page_script())
    result = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True,
        timeout=900, env=ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]
    *_, scores_line, examples_line = result.stdout.strip().splitlines()
    exact_match = float(scores_line.split()[0])
    translations = re.findall(r"'([^']*)'", scores_line)
    # Reversing lower-cased words of 2-5 letters: 0.67 of the 200 test words after the 8
    # epochs (measured here); a model that did not read its source would score about 0.
    assert exact_match > 0.3, scores_line
    assert len(translations) == 2
    examples = json.loads(examples_line.replace("'", '"'))
    assert set(examples) == {"AbCd", "hgf"} and list(examples.values()) == translations
    run = tmp_path / "runs" / "reverse_words"
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["source"] == "jsonl" and config["model"]["type"] == "small_transformer"
    assert list(run.glob("*.lower.txt")), "the tokenizer's own vocabulary file"
    assert (tmp_path / "saved_models" / "reverse_words" / "1" / "saved_model.pb").is_file()
    written = tmp_path / "saved_models" / "reverse_words-examples" / "1" / "examples.json"
    assert json.loads(written.read_text())["version"] == 1


def test_an_installed_package_is_found_by_the_command_line(tmp_path):
    """The page's classes in a package with the page's entry points, pip-installed into a
    folder: `keras-s2s train` and `export` use them by name."""
    definitions = page_script().split("\nrng = random.Random(0)")[0]
    package = tmp_path / "src" / "my_package"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(definitions)
    (entry_points,) = code_blocks(PAGE, ("toml",))
    entry_points = re.sub(r"my_package\.\w+:", "my_package:", entry_points)
    (tmp_path / "src" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "my-package"\nversion = "0.1"\n\n' + entry_points
    )
    target = tmp_path / "installed"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(tmp_path / "src")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    (tmp_path / "words.jsonl").write_text(
        "".join(json.dumps({"source": w.upper(), "target": w[::-1]}) + "\n"
                for w in ["ab", "abc", "bcd", "cde", "def", "efg", "fgh", "ghd"] * 20)
    )  # fmt: skip
    (tmp_path / "pipeline.toml").write_text(
        'name = "reverse_words"\n[data]\nsource = "jsonl"\ntrain = ["words.jsonl"]\n'
        'validation_size = 20\ntest_size = 20\ntokenizer = "lowercase_chars"\n'
        "max_source_length = 8\nmax_target_length = 8\n"
        '[model]\ntype = "small_transformer"\nhidden_dim = 16\n'
        '[training]\nepochs = 1\nbatch_size = 32\nmonitor = "val_loss"\nattention_images = 0\n'
    )
    env = {**ENV, "PYTHONPATH": str(target)}
    # Both commands through the command line's `main` in one process (one TensorFlow start).
    commands = [
        ["train", "pipeline.toml", "--output-dir", "run"],
        ["export", "run", "--format", "examples_json", "--output-root", "exported"],
    ]
    code = (
        "import sys\nfrom keras_s2s.cli.main import main\n"
        f"for argv in {commands!r}:\n    if main(argv):\n        sys.exit(1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
        timeout=900, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "exported" / "reverse_words-examples" / "1" / "examples.json").is_file()


def test_without_the_package_its_names_are_config_errors(tmp_path, capsys, monkeypatch):
    """This process has no plugin installed: a pipeline naming one is refused, the known names
    listed, before anything is read or written."""
    from keras_s2s.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.toml").write_text('[data]\nsource = "jsonl"\ntrain = ["words.jsonl"]\n')
    assert main(["train", "pipeline.toml", "--output-dir", "run"]) == 2
    error = capsys.readouterr().err
    assert "'data.source'" in error and "tfds, text, tsv, dlfs2" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.toml"]
