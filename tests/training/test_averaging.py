"""Checkpoint averaging: the averaged weights are the mean of the last epochs' weights."""

import keras
import numpy as np
import pytest

from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.errors import ConfigError
from keras_s2s.evaluation import evaluate_run
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import CheckpointAverage, check_config, compile_model, train
from keras_s2s.training import trainer as trainer_module
from keras_s2s.training.prepared import PreparedData
from keras_s2s.translator import Translator


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])


def _fit(callbacks, epochs=5):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.1), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    model.fit(x, x.sum(-1), epochs=epochs, batch_size=8, verbose=0, callbacks=callbacks)
    return model


@pytest.mark.parametrize("last", [1, 3, 5, 8])
def test_averaged_weights_are_the_mean_of_the_last_epochs(last):
    record, averaging = _Record(), CheckpointAverage(last=last)
    model = _fit([record, averaging])
    kept = record.weights[-last:]
    assert list(averaging.epochs) == list(range(6 - len(kept), 6))
    for i, weight in enumerate(model.get_weights()):
        want = np.mean([epoch[i] for epoch in kept], axis=0)
        np.testing.assert_allclose(weight, want, rtol=1e-6, atol=1e-7)
    if last > 1:  # The epochs differ, so the mean is not the last epoch's weights.
        assert not np.allclose(model.get_weights()[0], record.weights[-1][0])


def test_without_applying_the_model_keeps_the_last_epoch():
    record, averaging = _Record(), CheckpointAverage(last=3, apply_on_train_end=False)
    model = _fit([record, averaging])
    for got, want in zip(model.get_weights(), record.weights[-1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert averaging.apply() == [3, 4, 5]
    np.testing.assert_allclose(
        model.get_weights()[0], np.mean([w[0] for w in record.weights[-3:]], axis=0), rtol=1e-6
    )


@pytest.mark.parametrize("last", [0, -1, 2.0, True])
def test_bad_last_is_named(last):
    with pytest.raises(ValueError, match="`last` must be a positive integer"):
        CheckpointAverage(last=last)


def test_nothing_to_average_before_an_epoch_ends():
    with pytest.raises(ValueError, match="No checkpoint to average"):
        CheckpointAverage(last=2).average()


def _addition_config(tmp_path, overrides):
    lines = "".join(f"{a}+{b}_{a + b}\n" for a in range(0, 40) for b in range(0, 40, 3))
    data_file = tmp_path / "addition.txt"
    data_file.write_text(lines)
    return apply_overrides(
        load_pipeline("addition_seq2seq"),
        {
            "data.source": "dlfs2",
            "data.train": [str(data_file)],
            "data.validation_size": 60,
            "data.test_size": 60,
            "training.epochs": 3,
            "training.score_split": "validation",
            "model.hidden_dim": 16,
            **overrides,
        },
    )


class _RecordingAverage(CheckpointAverage):
    """The trainer's averaging callback, also keeping a copy of every epoch's weights for the
    test's own measurements (what it averages and reports is unchanged)."""

    instances: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorded = []
        _RecordingAverage.instances.append(self)

    def on_epoch_end(self, epoch, logs=None):
        self.recorded.append([np.array(w) for w in self.model.get_weights()])
        super().on_epoch_end(epoch, logs)


def _mean(epochs):
    """The element-wise mean of float weights (integers, e.g. seeds: the newest value)."""
    return [
        np.mean(np.stack(ws).astype("float64"), axis=0).astype(ws[-1].dtype)
        if np.issubdtype(ws[-1].dtype, np.floating)
        else ws[-1]
        for ws in zip(*epochs, strict=True)
    ]


def _measure(run_dir, config, monitor, weights) -> float:
    """`monitor` for the saved model of `run_dir` set to `weights`, measured here: chrF of a
    greedy decoding of the validation split (`evaluate_run`), or the masked loss of
    `model.evaluate` on the validation batches."""
    translator = Translator.from_run_directory(run_dir)
    translator.model.set_weights(weights)
    if monitor == "validation_chrf":
        return evaluate_run(run_dir, split="validation", translator=translator)["chrf"]
    run = RunDirectory(run_dir)
    data = PreparedData.load(config, tokenizers=run.load_tokenizers())
    model = compile_model(translator.model, config["training"])
    logs = model.evaluate(data.dataset("validation", config["training"]), verbose=0)
    return float(logs[0] if isinstance(logs, list) else logs)


@pytest.mark.parametrize(
    "monitor", [pytest.param("val_loss", marks=pytest.mark.slow), "validation_chrf"]
)
def test_trainer_keeps_the_average_only_if_it_is_as_good_on_validation(
    tmp_path, monitor, monkeypatch
):
    """Every figure is checked against the saved model measured here, not against the
    summary's own numbers: each epoch's weights (recorded as they were averaged) and their
    mean are loaded into the run directory's model and scored on the validation split; the
    best epoch, the averaged figure and the keep/discard decision must agree with those
    measurements, and `model.keras` must hold the weights the decision kept."""
    _RecordingAverage.instances.clear()
    monkeypatch.setattr(trainer_module, "CheckpointAverage", _RecordingAverage)
    # 14 steps an epoch at a high learning rate: the epochs' scores differ and are not 0.
    config = _addition_config(
        tmp_path,
        {
            "training.average_last_epochs": 2,
            "training.monitor": monitor,
            "training.batch_tokens": 256,
            "training.learning_rate": 0.01,
        },
    )
    run_dir = tmp_path / "run"
    summary = train(config, run_dir, verbose=0)
    (recording,) = _RecordingAverage.instances
    assert len(recording.recorded) == 3 and summary["averaged_epochs"] == [2, 3]
    minimize = monitor.endswith("loss")
    measured = [_measure(run_dir, config, monitor, w) for w in recording.recorded]
    average = _mean(recording.recorded[1:])
    measured_average = _measure(run_dir, config, monitor, average)
    tolerance = {"rel": 1e-5} if minimize else {"abs": 1e-9}  # chrF: the same strings
    best = int((np.argmin if minimize else np.argmax)(measured))
    assert summary["best_epoch"] == best + 1, (measured, summary)
    assert summary[monitor] == pytest.approx(measured[best], **tolerance)
    assert summary[f"averaged_{monitor}"] == pytest.approx(measured_average, **tolerance)
    as_good = measured_average <= measured[best] if minimize else measured_average >= measured[best]
    assert summary["kept"] == ("average" if as_good else "epoch"), (measured_average, measured)
    run = RunDirectory(run_dir)
    saved = str(run.metadata()["checkpoint_epoch"])
    assert saved.startswith("average of epochs 2-3") == as_good
    kept = average if as_good else recording.recorded[best]
    for got, want in zip(run.load_model().get_weights(), kept, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_averaging_needs_a_validation_monitor(tmp_path):
    config = _addition_config(
        tmp_path, {"training.average_last_epochs": 2, "training.monitor": "token_accuracy"}
    )
    with pytest.raises(ConfigError, match="average_last_epochs .* on validation data"):
        check_config(config)
