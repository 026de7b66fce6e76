"""Fault tolerance: a killed run resumes where its last epoch ended; a diverging run stops with
its last good checkpoint; nothing is overwritten."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_s2s.config import load_pipeline
from keras_s2s.errors import ConfigError, RunDirectoryError, TrainingDiverged
from keras_s2s.run_directory import RunDirectory, backed_up_epochs
from keras_s2s.training import building, prepared, trainer
from tests.pipeline_files import addition_pipeline

EPOCHS = 3


def tiny_pipeline(tmp_path, epochs=EPOCHS, checkpoint="last"):
    """A small DLFS2-format addition task (no dropout: the resumed run can match exactly)."""
    return addition_pipeline(
        tmp_path, 100, 4, validation=200,
        sections='[model]\ntype = "seq2seq"\nembedding_dim = 16\nhidden_dim = 32\n'
        f'[training]\nepochs = {epochs}\nbatch_tokens = 128\ncheckpoint = "{checkpoint}"\n',
    )  # fmt: skip


def test_a_killed_run_resumes_at_the_interrupted_epoch_and_matches_an_uninterrupted_one(
    tmp_path,
):
    """SIGKILL in the third of 3 epochs, then the same command again: it resumes at the start
    of epoch 3 (BackupAndRestore; the data and the optimizer's step count continue from
    there) and ends where an uninterrupted run ends."""
    pipeline = tiny_pipeline(tmp_path)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "keras_s2s.cli.main", "train", str(pipeline)]
    command += ["--output-dir", str(run_dir)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        # The backup of epoch 2 is written last when it ends (after the checkpoint and history).
        while time.monotonic() < deadline and first.poll() is None:
            if backed_up_epochs(run_dir / "backup" / "chief") == 2:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # Into the third epoch (each takes a few seconds).
        assert first.poll() is None, first.communicate()[1][-2000:]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    run = RunDirectory(run_dir)
    assert run.status() == "running" and len(run.metadata()["history"]["loss"]) == 2
    assert (run_dir / "backup" / "chief" / "training_metadata.json").is_file()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming the unfinished run" in second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["resumed_after_epoch"] == 2 and summary["epochs"] == EPOCHS
    assert not (run_dir / "backup").exists()  # Removed when the run finished.
    assert run.status() == "finished"
    history = run.metadata()["history"]

    config = load_pipeline(str(pipeline))
    reference = trainer.train(config, tmp_path / "uninterrupted", verbose=0)
    expected = RunDirectory(tmp_path / "uninterrupted").metadata()["history"]
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-4)
    assert summary["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-4)
    resumed = keras.saving.load_model(run_dir / "model.keras").get_weights()
    uninterrupted = keras.saving.load_model(tmp_path / "uninterrupted" / "model.keras")
    for a, b in zip(resumed, uninterrupted.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_an_unfinished_run_of_another_config_is_refused_and_a_finished_one_kept(tmp_path):
    config = load_pipeline(str(tiny_pipeline(tmp_path, epochs=1)))
    run = RunDirectory(tmp_path / "run")
    run.create(config)
    run.write_metadata({"status": "running"})
    other = json.loads(json.dumps(config))
    other["training"]["learning_rate"] = 0.5
    with pytest.raises(ConfigError, match="unfinished run .* different config .*learning_rate"):
        trainer.train(other, run.path, verbose=0)
    run.write_metadata({"status": "finished"})
    with pytest.raises(RunDirectoryError, match="holds a finished run"):
        trainer.train(config, run.path, verbose=0)
    assert run.stored_config() == json.loads(json.dumps(config))


def test_a_run_written_with_a_key_renamed_since_is_read_under_the_new_name(tmp_path):
    config = load_pipeline(str(tiny_pipeline(tmp_path, epochs=1)))
    config["training"]["score_split"] = "validation"
    run = RunDirectory(tmp_path / "run")
    run.create(config)
    run.write_metadata({"status": "running"})
    stored = json.loads((run.path / "config.json").read_text())
    stored["training"]["exact_match_split"] = stored["training"].pop("score_split")
    (run.path / "config.json").write_text(json.dumps(stored))
    assert run.config()["training"]["score_split"] == "validation"
    assert run.resumable(config)  # the same config under today's names: train resumes it


def test_a_diverging_run_stops_with_its_last_good_checkpoint(tmp_path, monkeypatch):
    """The learning rate becomes absurd (1e38: the weights overflow within a few steps) when the
    first epoch ends: the loss turns NaN in epoch 2, training stops there, and the run keeps
    epoch 1's model and says so."""
    config = load_pipeline(str(tiny_pipeline(tmp_path, epochs=3, checkpoint="best")))
    epoch_steps = []
    count_batches = prepared.count_batches

    def count_and_remember(dataset):
        epoch_steps.append(count_batches(dataset))  # The training split's comes first.
        return epoch_steps[-1]

    class AbsurdAfterEpoch1(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):  # Traced at the first step, after the batches are counted.
            return keras.ops.where(step < epoch_steps[0], 1e-3, 1e38)

        def get_config(self):  # The checkpoint saves the optimizer.
            return {}

    def make_optimizer(training, total_updates=None):
        return keras.optimizers.Adam(AbsurdAfterEpoch1())

    monkeypatch.setattr(prepared, "count_batches", count_and_remember)
    monkeypatch.setattr(building, "make_optimizer", make_optimizer)
    with pytest.raises(TrainingDiverged, match="became nan at epoch 2, batch .*epoch 1"):
        trainer.train(config, tmp_path / "run", verbose=0)
    run = RunDirectory(tmp_path / "run")
    meta = run.metadata()
    assert meta["status"] == "failed" and meta["checkpoint_epoch"] == 1
    assert "TrainingDiverged" in meta["error"] and len(meta["history"]["loss"]) == 1
    # (Not compiled: the test's schedule class is not registered for loading.)
    import keras_s2s.models  # noqa: F401

    weights = keras.saving.load_model(run.model_path, compile=False).get_weights()
    assert all(np.isfinite(w).all() for w in weights)
