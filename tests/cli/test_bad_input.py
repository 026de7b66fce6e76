"""Bad input of every class gets exit status 2 and one line naming the problem, in process
(no TensorFlow start-up per case); real processes are in test_cli.py."""

import io
import json
import re
import sys

import pytest

from keras_s2s.cli.main import main
from keras_s2s.models import Seq2Seq
from keras_s2s.run_directory import RunDirectory
from keras_s2s.tokenizers import CharTokenizer


def make_run(path, status="finished"):
    """A run directory by hand: an untrained Luong model on digits (fast, no training)."""
    tokenizer = CharTokenizer.build(["0123456789+"])
    model = Seq2Seq(
        tokenizer.vocabulary_size, tokenizer.vocabulary_size, embedding_dim=4, hidden_dim=8,
        decoder="luong",
    )  # fmt: skip
    run = RunDirectory(path)
    run.create({"name": "handmade", "data": {}, "evaluation": {"batch_size": 8}})
    meta = {"max_source_length": 8, "max_target_length": 5, "pipeline": "handmade"}
    run.write_metadata({**meta, **run.save_tokenizers(tokenizer, tokenizer), "status": status})
    run.save_model(model)
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "handmade")


def copy_run(run, destination):
    destination.mkdir()
    for file in run.iterdir():
        (destination / file.name).write_bytes(file.read_bytes())
    return destination


def error_line(capsys):
    """The last stderr line, which must be the one `keras-s2s: error: ...` line."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


COMMANDS = {
    "evaluate": lambda run, tmp: ["evaluate", str(run)],
    "translate": lambda run, tmp: ["translate", str(run), "1+1"],
    "export": lambda run, tmp: ["export", str(run), "--output-root", str(tmp / "exports")],
}
DAMAGE = {
    "empty model.keras": ("model.keras", lambda b: b"", r"model.keras is damaged \(0 bytes"),
    "cut-short model.keras": (
        "model.keras",
        lambda b: b[: len(b) // 2],
        r"model.keras is damaged \(\d+ bytes",
    ),
    "cut-short run.json": ("run.json", lambda b: b[: len(b) // 2], r"run.json is damaged"),
    "empty run.json": ("run.json", lambda b: b"", r"run.json is damaged \(0 bytes"),
    "cut-short config.json": ("config.json", lambda b: b[:7], r"config.json is damaged"),
}
# What each command reads: a file it does not read cannot fail it.
READS = {
    "evaluate": {"model.keras", "run.json", "config.json"},
    "translate": {"model.keras", "run.json"},
    "export": {"model.keras", "run.json"},
}


@pytest.mark.parametrize(
    "command, damage",
    [(c, d) for c in COMMANDS for d, (file, _, _) in DAMAGE.items() if file in READS[c]],
)
def test_damaged_run_directories(command, damage, finished_run, tmp_path, capsys):
    file, damaged, message = DAMAGE[damage]
    run = copy_run(finished_run, tmp_path / "run")
    (run / file).write_bytes(damaged((run / file).read_bytes()))
    assert main(COMMANDS[command](run, tmp_path)) == 2
    line = error_line(capsys)
    assert line.startswith("keras-s2s: error: ") and re.search(message, line), line
    assert not (tmp_path / "exports").exists()


@pytest.mark.parametrize("status", ["running", "failed", "interrupted"])
def test_unfinished_runs_are_refused_unless_allowed(status, tmp_path, capsys):
    run = make_run(tmp_path / "run", status=status)
    RunDirectory(run).write_metadata({"checkpoint_epoch": 2, "error": "RuntimeError: boom"})
    assert main(["translate", str(run), "1+1"]) == 2
    line = error_line(capsys)
    assert f"is not a finished run (status '{status}'" in line
    assert "model.keras, epoch 2" in line and "--allow-unfinished" in line
    assert main(["translate", "--allow-unfinished", str(run), "1+1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["count"] == 1


def test_options_and_texts_in_any_order(finished_run, capsys):
    assert main(["translate", str(finished_run), "--beam", "2", "1+1", "--nbest", "2", "2+2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert (figures["count"], figures["beam"], figures["nbest"]) == (2, 2, 2)
    assert [line.split(" ||| ")[0] for line in out[:-1]] == ["0", "0", "1", "1"]


def test_usage_errors_show_the_subcommand_usage_and_one_error_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["translate", "run", "--beam", "two"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: keras-s2s translate")
    assert err[-1] == "keras-s2s: error: argument --beam: invalid int value: 'two'"
    with pytest.raises(SystemExit):
        main(["export", "run", "--format", "onnx"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: keras-s2s export") and err[-1].startswith(
        "keras-s2s: error: argument --format: invalid choice: 'onnx'"
    )


def test_invalid_utf8_on_stdin_is_replaced_and_flagged(finished_run, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"1+1\n\xff+2\n3+3\n")))
    assert main(["translate", str(finished_run)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1])["invalid_utf8"] == [1]
    assert len(captured.out.splitlines()) == 4  # three translations and the JSON line
    assert "input 1: invalid UTF-8 replaced by U+FFFD" in captured.err


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.no_such_key=1", "Unknown config key 'model.no_such_key'"),
        ("model.hidden_dim=-5", "`hidden_dim` must be a positive integer"),
        ("model.hidden_dim=abc", "Invalid value for 'model.hidden_dim': 'abc' (expected int)"),
        ("model.decoder=transformer", "`decoder` must be one of"),
        ("training.monitor=test_exact_match", "would choose the model on the test split"),
    ],
)
@pytest.mark.parametrize("command", ["data", "train"])
def test_the_whole_config_is_checked_before_any_work(
    command, override, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    # A data file that does not exist: reading data first would fail with another message.
    toml = tmp_path / "mine.toml"
    toml.write_text(f'[data]\nsource = "tsv"\ntrain = ["{tmp_path}/missing.tsv"]\n')
    argv = [command, str(toml), "--set", override]
    argv += ["--output-dir", str(tmp_path / "run")] if command == "train" else []
    assert main(argv) == 2
    line = error_line(capsys)
    assert message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml"]


def test_output_dir_that_is_a_file(tmp_path, capsys):
    file = tmp_path / "taken"
    file.write_text("not a directory")
    assert main(["train", "addition_seq2seq", "--output-dir", str(file)]) == 2
    assert error_line(capsys) == f"keras-s2s: error: --output-dir {file} is a file, not a directory"
    assert file.read_text() == "not a directory"
