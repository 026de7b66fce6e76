"""The CLI reports bad input as one clear line and a non-zero exit, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_s2s.cli.main import main


def run_cli(*args, stdin=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "keras_s2s.cli.main", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=300,
    )


def test_unknown_pipeline_in_a_real_process_of_the_installed_script():
    script = Path(sys.executable).with_name("keras-s2s")  # what `pip install` put beside python
    result = subprocess.run(
        [str(script), "train", "no_such_pipeline"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert "keras-s2s: error: Unknown pipeline 'no_such_pipeline'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_subcommand_and_option():
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["train", "date_seq2seq", "--epoch-count", "3"])
    assert e.value.code == 2


def bad_data_pipeline(tmp_path, body: bytes, name="data.txt"):
    data = tmp_path / name
    data.write_bytes(body)
    toml = tmp_path / "mine.toml"
    toml.write_text(
        f'[data]\nsource = "dlfs2"\ntrain = ["{data}"]\ntest_size = 1\nvalidation_size = 1\n'
    )
    return str(toml)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", r"File is empty: .*data.txt"),
        (b"1+1_2\n2+2 4\n", r"Line 2 of .*data.txt has no separator '_'"),
        (b"1+1_2\n\xfe+1_2\n", r"Invalid UTF-8 in .*data.txt, line 2"),
    ],
)
def test_bad_data_files(tmp_path, capsys, body, message):
    assert main(["data", bad_data_pipeline(tmp_path, body)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-s2s: error: ")
    assert __import__("re").search(message, err), err


def test_missing_file_and_invalid_value(tmp_path, capsys):
    toml = tmp_path / "p.toml"
    toml.write_text(f'[data]\nsource = "text"\ntrain = ["{tmp_path}/a.en", "{tmp_path}/a.de"]\n')
    assert main(["data", str(toml)]) == 2
    assert "File not found: " in capsys.readouterr().err
    assert main(["train", "date_seq2seq", "--epochs", "0"]) == 2
    assert "'training.epochs' in overrides: 0 (must be > 0)" in capsys.readouterr().err
    assert main(["train", "date_seq2seq", "--set", "model.depth=3"]) == 2
    assert "Unknown config key 'model.depth'" in capsys.readouterr().err


def test_missing_run_directory(tmp_path, capsys):
    assert main(["translate", str(tmp_path / "nowhere"), "x"]) == 2
    assert "Run directory not found" in capsys.readouterr().err


def test_data_command_prints_figures_as_last_json_line(tmp_path, capsys):
    lines = "".join(f"{i}+{i}_{2 * i}\n" for i in range(60)).encode()
    assert main(["data", bad_data_pipeline(tmp_path, lines)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert figures["examples"] == {"train": 58, "validation": 1, "test": 1}
    assert figures["train"]["source_tokens"]["max"] == 5  # "29+29"
    assert figures["shared_vocabulary"] is True
