"""Training from another run's weights (`init_from`, `keras-s2s train --init-from`)."""

import json

import pytest

from keras_s2s.cli.main import main
from keras_s2s.config import apply_overrides
from keras_s2s.errors import ConfigError, RunDirectoryError
from keras_s2s.training import train
from tests.training.test_training import two_digit_addition

SMALL = {"model.hidden_dim": 16, "model.embedding_dim": 8, "training.learning_rate": 0.01}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, tfds_dir):
    config = two_digit_addition(tfds_dir, {**SMALL, "training.epochs": 3})
    run_dir = tmp_path_factory.mktemp("fine_tuning") / "source"
    return config, run_dir, train(config, run_dir, verbose=0)


def test_a_run_started_from_another_starts_at_its_validation_loss(source_run, tmp_path):
    config, source_dir, source = source_run
    # One epoch at a negligible learning rate: the validation loss is the source run's, far
    # below a fresh model's after the same epoch.
    still = apply_overrides(config, {"training.epochs": 1, "training.learning_rate": 1e-9})
    tuned = train(still, tmp_path / "tuned", verbose=0, init_from=source_dir)
    fresh = train(still, tmp_path / "fresh", verbose=0)
    assert tuned["val_loss"] == pytest.approx(source["val_loss"], abs=1e-3)
    assert fresh["val_loss"] > source["val_loss"] + 0.5
    meta = json.loads((tmp_path / "tuned" / "run.json").read_text())
    assert meta["init_from"] == str(source_dir.resolve())
    for side in ("source", "target"):  # the source run's tokenizer files, byte for byte
        file = meta[side]["file"]
        assert (tmp_path / "tuned" / file).read_bytes() == (source_dir / file).read_bytes()


def test_a_run_to_start_from_is_checked_before_any_data_is_read(source_run, tmp_path):
    config, source_dir, _ = source_run
    cases = [
        ({"model.hidden_dim": 32}, "model differs.*model.hidden_dim"),
        ({"data.tokenizer": "sentencepiece"}, "data.tokenizer = 'sentencepiece'"),
        ({"data.vocabulary": "my.vocab"}, "drop data.vocabulary"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            train(apply_overrides(config, overrides), tmp_path / "out", init_from=source_dir)
        assert not (tmp_path / "out").exists()
    with pytest.raises(RunDirectoryError):
        train(config, tmp_path / "out", init_from=tmp_path / "missing")
    # Dropout holds no weights: a fine-tuning run may change it.
    changed = apply_overrides(config, {"model.dropout": 0.3, "training.epochs": 1})
    assert train(changed, tmp_path / "dropout", verbose=0, init_from=source_dir)["epochs"] == 1


def test_the_train_command_takes_init_from(source_run, tmp_path, tfds_dir, capsys):
    _, source_dir, _ = source_run
    argv = [
        "train", "addition_seq2seq", "--set", 'data.config="two_digits"',
        "--set", f'data.data_dir="{tfds_dir}"', "--set", "model.hidden_dim=16",
        "--set", "model.embedding_dim=8", "--epochs", "1", "--output-dir", str(tmp_path / "cli"),
        "--init-from", str(source_dir),
    ]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "cli" / "run.json").read_text())["init_from"]
    capsys.readouterr()
    assert main([*argv[:-1], str(tmp_path / "missing"), "--output-dir", str(tmp_path / "b")]) == 2
    assert "missing" in capsys.readouterr().err
