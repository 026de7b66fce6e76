"""Nothing is moved or written before the input is known good; only a run directory is ever
moved aside; one training process per run directory, with real processes."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from keras_s2s.cli.main import main
from keras_s2s.run_directory import LOCK_FILE, RunDirectory
from tests.pipeline_files import addition_pipeline

TINY_MODEL = '[model]\ntype = "seq2seq"\ncell = "gru"\nembedding_dim = 8\nhidden_dim = 16\n'


def tiny_pipeline(folder, epochs=1, extra_data=""):
    path = addition_pipeline(
        folder, 30, 2, validation=50, sections=f"{TINY_MODEL}[training]\nepochs = {epochs}\n"
    )
    if extra_data:  # More [data] keys (the section is the file's first table).
        text = path.read_text()
        path.write_text(text.replace("[model]", f"{extra_data}\n[model]", 1))
    return path


def finished_run(folder):
    """A finished run as `train` leaves one (its config and its `run.json`), by hand."""
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    (folder / "model.keras").write_bytes(b"the earlier model")
    return sorted(p.name for p in folder.iterdir())


def last_error(capsys):
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "data, named",
    [
        ('test = ["missing.txt"]', "missing.txt"),  # A split `train` itself does not read.
        ('test = ["bad.txt"]', "bad.txt"),
        ('vocabulary = "no_vocabulary.txt"', "no_vocabulary.txt"),
    ],
)
def test_a_finished_run_is_not_moved_when_the_data_is_bad(data, named, tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("1+1_2\nno separator on this line\n")
    pipeline = tiny_pipeline(tmp_path, extra_data=data)
    before = finished_run(tmp_path / "run")
    for command in ("train", "run"):
        assert main([command, str(pipeline), "--output-dir", str(tmp_path / "run")]) == 2
        assert named in last_error(capsys)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
        assert [p.name for p in tmp_path.iterdir() if "previous" in p.name] == []


def test_a_folder_that_is_not_a_run_is_refused_untouched(tmp_path, capsys, monkeypatch):
    pipeline = tiny_pipeline(tmp_path)
    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("years of work")
    assert main(["train", str(pipeline), "--output-dir", str(documents)]) == 2
    assert last_error(capsys) == (
        f"keras-s2s: error: {documents} is not a run directory (it has no config.json or "
        "run.json); choose an empty or new folder"
    )
    assert [p.name for p in tmp_path.iterdir() if "previous" in p.name] == []
    assert (documents / "thesis.txt").read_text() == "years of work"
    # `--output-dir .` in a non-empty folder: the same refusal, not a traceback.
    monkeypatch.chdir(documents)
    assert main(["train", str(pipeline), "--output-dir", "."]) == 2
    assert "keras-s2s: error: . is not a run directory" in last_error(capsys)
    assert sorted(p.name for p in documents.iterdir()) == ["thesis.txt"]


def test_the_current_folder_holding_a_finished_run_is_moved_aside(tmp_path, monkeypatch):
    finished_run(tmp_path / "run")
    monkeypatch.chdir(tmp_path / "run")
    moved = RunDirectory(".").move_aside()
    assert moved.parent == tmp_path and moved.name.startswith("run.previous-")
    assert (moved / "model.keras").read_bytes() == b"the earlier model"
    assert not (tmp_path / "run").exists()


def test_a_stale_lock_of_an_ended_process_is_taken_over(tmp_path, capsys):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    run = tmp_path / "run"
    run.mkdir()
    stale = {"pid": ended.pid, "host": socket.gethostname(), "start": None, "since": "then"}
    (run / LOCK_FILE).write_text(json.dumps(stale))
    assert main(["train", str(tiny_pipeline(tmp_path)), "--output-dir", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"took over the lock of {run} from process {ended.pid}, which has ended" in err
    assert RunDirectory(run).status() == "finished" and not (run / LOCK_FILE).exists()
    # A lock held by a live process (this one) is not taken over.
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / LOCK_FILE).write_text(json.dumps(mine))
    argv = ["train", str(tiny_pipeline(tmp_path)), "--output-dir", str(tmp_path / "other")]
    assert main(argv) == 2
    assert f"is in use by another training process (pid {os.getpid()}" in last_error(capsys)


# The second process imports TensorFlow first and only then waits for the first one's lock,
# so it asks while the first one trains.
SECOND = """
import pathlib, sys, time
import tensorflow
from keras_s2s.cli.main import main
lock = pathlib.Path(sys.argv[1])
deadline = time.monotonic() + 240
while not lock.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
sys.exit(main(sys.argv[2:]))
"""


def test_a_second_train_into_the_same_directory_is_refused_and_the_first_finishes(tmp_path):
    pipeline, run = tiny_pipeline(tmp_path, epochs=6), tmp_path / "run"
    argv = ["train", str(pipeline), "--output-dir", str(run)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    second = subprocess.Popen(
        [sys.executable, "-c", SECOND, str(run / LOCK_FILE), *argv],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)
    first = subprocess.run(
        [sys.executable, "-m", "keras_s2s.cli.main", *argv],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out, err = second.communicate(timeout=60)
    assert second.returncode == 2, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"keras-s2s: error: {run} is in use by another training process")
    assert f"on host {socket.gethostname()}" in last
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 6 and RunDirectory(run).status() == "finished"
    assert not (run / LOCK_FILE).exists()
