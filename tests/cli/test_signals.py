"""SIGTERM and SIGINT end `train`, `tune` and `export` cleanly, sent to real processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_s2s.cli.main import main
from keras_s2s.run_directory import LOCK_FILE, RunDirectory, backed_up_epochs
from tests.pipeline_files import addition_pipeline

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
CLI = [sys.executable, "-m", "keras_s2s.cli.main"]
TINY_MODEL = '[model]\ntype = "seq2seq"\ncell = "gru"\nembedding_dim = 8\nhidden_dim = 16\n'


def tiny_pipeline(folder, epochs, search=""):
    return addition_pipeline(
        folder, 40, 1, validation=100,
        sections=f"{TINY_MODEL}[training]\nepochs = {epochs}\nbatch_tokens = 256\n{search}",
    )  # fmt: skip


def wait_for(condition, process, seconds=300):
    """Polls `condition` until it holds; fails if `process` ended first."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def stop(process, signum, times=1):
    for _ in range(times):
        process.send_signal(signum)
        time.sleep(0.05)
    out, err = process.communicate(timeout=120)
    return out, err.strip().splitlines()


def test_sigterm_stops_training_at_a_batch_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    command = [*CLI, "train", str(tiny_pipeline(tmp_path, epochs=4)), "--output-dir", str(run_dir)]
    first = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    backup = run_dir / "backup" / "chief"
    wait_for(lambda: backed_up_epochs(backup) >= 1, first)
    _, err = stop(first, signal.SIGTERM)
    assert first.returncode == 143, err[-20:]
    meta = RunDirectory(run_dir).metadata()
    done = meta["interrupted_after_epoch"]
    assert meta["status"] == "interrupted" and 1 <= done < 4
    assert backed_up_epochs(backup) == done and len(meta["history"]["loss"]) == done
    assert not (run_dir / LOCK_FILE).exists()
    assert err[-1].decode() == (
        f"keras-s2s: training stopped by SIGTERM after epoch {done} of 4 (the backup of its "
        f"last whole epoch is kept in {run_dir / 'backup'}); train again with the same config "
        f"and output directory to resume; resume with: keras-s2s {' '.join(command[3:])}"
    )

    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["resumed_after_epoch"] == done and summary["epochs"] == 4
    assert RunDirectory(run_dir).status() == "finished"


def test_a_second_sigint_stops_at_once(tmp_path):
    run_dir = tmp_path / "run"
    command = [*CLI, "train", str(tiny_pipeline(tmp_path, epochs=50)), "--output-dir", str(run_dir)]
    first = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: (run_dir / "logs" / "train").is_dir(), first)  # fit has begun
    _, err = stop(first, signal.SIGINT, times=2)
    assert first.returncode == 130, err[-20:]
    text = b"\n".join(err).decode()
    assert "SIGINT received: stopping at the end of the current batch" in text
    assert err[-1].decode().startswith("keras-s2s: training stopped by SIGINT after epoch ")
    assert RunDirectory(run_dir).status() == "interrupted"
    assert not (run_dir / LOCK_FILE).exists()


def test_sigterm_stops_a_search_and_the_interrupted_trial_runs_again(tmp_path):
    search = '[search]\nobjective = "val_loss"\nmax_trials = 2\n[search.space]\n'
    search += '"model.hidden_dim" = [16, 24]\n"training.learning_rate" = [0.001, 0.003]\n'
    pipeline, directory = tiny_pipeline(tmp_path, epochs=2, search=search), tmp_path / "search"
    command = [*CLI, "tune", str(pipeline), "--directory", str(directory)]
    first = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def trials():
        return [json.loads(p.read_text()) for p in directory.glob("tiny/trial_*/trial.json")]

    wait_for(lambda: any(t["status"] == "RUNNING" for t in trials()), first)
    time.sleep(1.0)  # Into its training.
    _, err = stop(first, signal.SIGTERM)
    assert first.returncode == 143, err[-20:]
    assert err[-1].decode().startswith("keras-s2s: stopped by SIGTERM; the trial in progress")
    (interrupted,) = [t["trial_id"] for t in trials() if t["status"] != "COMPLETED"]

    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["trials"] == 2
    statuses = {t["trial_id"]: t["status"] for t in trials()}
    assert statuses[interrupted] == "COMPLETED" and set(statuses.values()) == {"COMPLETED"}


def test_sigterm_during_an_export_leaves_no_version(tmp_path, capsys):
    run_dir = tmp_path / "run"
    pipeline = tiny_pipeline(tmp_path, epochs=1)
    assert main(["train", str(pipeline), "--output-dir", str(run_dir)]) == 0
    capsys.readouterr()
    root = tmp_path / "exports"
    command = [*CLI, "export", str(run_dir), "--format", "all", "--output-root", str(root)]
    export = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: any(p.name.startswith(".1-") for p in root.glob("*/.*")), export)
    _, err = stop(export, signal.SIGTERM)
    assert export.returncode == 143, err[-20:]
    assert err[-1].decode() == "keras-s2s: stopped by SIGTERM; no version was written"
    left = [str(p.relative_to(root)) for p in Path(root).rglob("*")] if root.exists() else []
    assert left == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_whose_exception_python_ignored_still_stops_the_export(tmp_path):
    """The export test once ended with exit 0: SIGTERM arrived while a TensorFlow function's
    finalizer ran, and Python ignores an exception raised in `__del__`. The signal is recorded,
    so nothing is renamed into place and the block still raises."""
    from keras_s2s.export.layout import staged_directory
    from keras_s2s.interrupts import Interrupted, signals_raise

    class Finalizer:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # The handler runs here, inside `__del__`: its exception is lost.

    reached = []
    with pytest.raises(Interrupted, match="SIGTERM"), signals_raise():
        with staged_directory(tmp_path / "model" / "1") as staging:
            (staging / "saved_model.pb").write_text("x")
            Finalizer()  # Collected at once.
            reached.append(True)
    assert reached == [True]  # The first exception was lost...
    assert list(tmp_path.iterdir()) == []  # ...and still no version, no folder, is left.


def test_a_second_signal_turned_into_another_error_still_stops_training_as_interrupted():
    """Under load the second SIGINT once arrived while TensorFlow traced the training step;
    the tracing re-raised its `Interrupted` as a TypeError, and `train` ended with exit 1 and
    a traceback. `GracefulStop` ends such a block with `Interrupted` (the error chained)."""
    from keras_s2s.interrupts import GracefulStop, Interrupted

    with pytest.raises(Interrupted, match="SIGINT") as raised, GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert stop.signum == signal.SIGINT  # the first: recorded only
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        except Interrupted:
            raise TypeError("Expected int32, but got None of type 'NoneType'.") from None
    assert isinstance(raised.value.__cause__, TypeError)
    # Without a second signal, an error stays what it is.
    with pytest.raises(ValueError), GracefulStop():
        raise ValueError("a bug")


def test_a_second_signal_while_tensorflow_traces_waits_for_the_next_safe_point():
    """Raised inside tracing, the second signal's exception once crashed `train` (SIGSEGV)."""
    import tensorflow as tf

    from keras_s2s.interrupts import GracefulStop, Interrupted

    traced = []

    @tf.function
    def step(x):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the second signal's handler runs here, while tracing
        traced.append(True)
        return x + 1

    with pytest.raises(Interrupted, match="SIGINT"), GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        result = step(tf.constant(1)).numpy()
        stop.check()  # the next safe point
    assert traced == [True] and result == 2  # the trace ran to its end
    assert stop.forced == signal.SIGINT


def test_a_signal_arriving_while_the_command_exits_on_an_interrupt_keeps_its_exit_code():
    """A command stopped by SIGINT whose exit path receives one more (a late second Ctrl-C)
    still exits 130 with its message: the later signal is ignored, not raised where nothing
    catches it (Python would then kill itself by SIGINT: exit -2, seen under load)."""
    script = (
        "import os, signal, sys\n"
        "from keras_s2s.cli import main as cli\n"
        "from keras_s2s.interrupts import Interrupted\n"
        "def stopped(args):\n"
        "    raise Interrupted(signal.SIGINT, 'stopped by SIGINT')\n"
        "cli.cmd_data = stopped\n"
        "close = cli._close\n"
        "def late_signal(quiet):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    close(quiet)\n"
        "cli._close = late_signal\n"
        "sys.exit(cli.main(['data', 'date_attention']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 130, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == "keras-s2s: stopped by SIGINT"
