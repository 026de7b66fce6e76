"""Run files are written whole or not at all, and a run that did not finish says so."""

import json

import pytest

from keras_s2s.cli.main import main
from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.errors import RunDirectoryError
from keras_s2s.run_directory import RunDirectory, atomic_path, write_atomic
from keras_s2s.training import callbacks, trainer


def small_addition(tfds_dir, **overrides):
    settings = {
        "data.config": "two_digits",
        "data.data_dir": tfds_dir,
        "training.batch_tokens": 1024,
        "model.hidden_dim": 16,
        "model.embedding_dim": 8,
    }
    return apply_overrides(load_pipeline("addition_seq2seq"), {**settings, **overrides})


def test_an_interrupted_write_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "run.json"
    write_atomic(target, '{"epoch": 1}\n')

    with pytest.raises(OSError, match="disk full"), atomic_path(target) as temporary:
        temporary.write_text('{"epo')
        raise OSError("disk full")
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left

    class FailingModel:
        def save(self, path):
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half a model")
            raise KeyboardInterrupt

    run = RunDirectory(tmp_path)
    run.model_path.write_bytes(b"the earlier model")
    with pytest.raises(KeyboardInterrupt):
        run.save_model(FailingModel())
    assert run.model_path.read_bytes() == b"the earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "run.json"]


@pytest.mark.parametrize(
    "exception, status", [(RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")]
)
def test_a_failed_train_leaves_no_finished_run(exception, status, tmp_path, tfds_dir, monkeypatch):
    saved = callbacks.RunCheckpoint.on_epoch_end

    def save_then_fail(self, epoch, logs=None):
        saved(self, epoch, logs)
        if epoch == 1:
            raise exception

    monkeypatch.setattr(callbacks.RunCheckpoint, "on_epoch_end", save_then_fail)
    config = small_addition(tfds_dir, **{"training.epochs": 3, "training.checkpoint": "last"})
    with pytest.raises(type(exception)):
        trainer.train(config, tmp_path / "run", verbose=0)
    run = RunDirectory(tmp_path / "run")
    meta = run.metadata()
    assert meta["status"] == status and meta["checkpoint_epoch"] == 2
    assert "training" not in meta
    with pytest.raises(RunDirectoryError, match=f"not a finished run \\(status '{status}'"):
        run.load_model()
    assert run.load_model(allow_unfinished=True).count_params() > 0
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]  # no temporary files


def test_run_end_to_end_and_an_earlier_run_is_moved_aside(tmp_path, tfds_dir, capsys):
    """`keras-s2s run` trains, evaluates, translates and exports; a second `train` into the
    same directory moves the first run aside instead of overwriting it."""
    run_dir, exports = tmp_path / "run", tmp_path / "exports"
    where = ["--output-dir", str(run_dir)]
    settings = ["--set", 'data.config="two_digits"', "--set", f'data.data_dir="{tfds_dir}"']
    settings += ["--set", "model.hidden_dim=16", "--set", 'evaluation.examples=["1+1", "20+22"]']
    argv = ["run", "addition_seq2seq", *where, "--epochs", "2", *settings]
    assert main([*argv, "--export-root", str(exports)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert figures["epochs"] == 2 and 0.0 <= figures["exact_match"] <= 1.0
    assert set(figures["examples"]) == {"1+1", "20+22"}
    for source, outputs in figures["artifacts"].items():
        assert outputs["keras"] == outputs["savedmodel"] == outputs["tflite"], source
    assert (exports / "addition_seq2seq" / "1" / "saved_model.pb").is_file()
    assert RunDirectory(run_dir).metadata()["status"] == "finished"
    first_model = (run_dir / "model.keras").read_bytes()

    assert main(["train", *settings, "--epochs", "1", "addition_seq2seq", *where]) == 0
    err = capsys.readouterr().err
    (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.previous-")]
    assert f"Moved the earlier run in {run_dir} to {moved}" in err
    assert (moved / "model.keras").read_bytes() == first_model
    assert RunDirectory(run_dir).metadata()["training"]["epochs"] == 1
