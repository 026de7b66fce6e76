"""Weight averaging during training (`training.ema`, `EMAWeights`): each epoch is measured and
saved with the moving average of the weights, training continues from the trained weights,
and a resumed run ends where an uninterrupted one ends."""

import keras
import numpy as np
import pytest

from keras_s2s.config import load_pipeline
from keras_s2s.errors import ConfigError
from keras_s2s.interrupts import Interrupted
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import (
    EMAWeights,
    MaskedSparseCategoricalCrossentropy,
    PreparedData,
    make_optimizer,
    trainer,
)
from tests.pipeline_files import addition_pipeline

MOMENTUM = 0.8


class Recorder(keras.callbacks.Callback):
    """The model's weights after every batch and, at each epoch's end, where it is placed."""

    def __init__(self):
        super().__init__()
        self.batches, self.epochs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append([np.array(w) for w in self.model.get_weights()])

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append([np.array(w) for w in self.model.get_weights()])


def test_each_epoch_is_measured_and_saved_with_the_moving_average_and_training_goes_on():
    """Between `EMAWeights` and its `restore` an epoch's end sees the average computed here
    from the trained weights after every batch; after `restore`, the trained weights; the
    validation loss is the average's; `fit` ends with the average in the model."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(make_optimizer({"learning_rate": 0.05, "ema": MOMENTUM}), "mse")
    trained, averaged, after = Recorder(), Recorder(), Recorder()
    ema = EMAWeights()
    history = model.fit(
        x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_data=(x, y),
        callbacks=[trained, ema, averaged, ema.restore, after],
    )  # fmt: skip
    expected, ends = None, []
    for step, weights in enumerate(trained.batches):
        momentum = MOMENTUM if step else 0.0  # Keras starts the average at the first update.
        expected = [
            w if e is None else momentum * e + (1 - momentum) * w
            for w, e in zip(weights, expected or [None] * len(weights), strict=True)
        ]
        if (step + 1) % 4 == 0:  # 64 examples in batches of 16
            ends.append(expected)
    assert len(ends) == 3
    for epoch in range(3):
        for got, want in zip(averaged.epochs[epoch], ends[epoch], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        last_batch = trained.batches[4 * epoch + 3]
        for got, want in zip(after.epochs[epoch], last_batch, strict=True):
            np.testing.assert_array_equal(got, want)
        # The average differs from the trained weights (the test can tell them apart).
        assert not np.allclose(averaged.epochs[epoch][0], last_batch[0], atol=1e-4)
    for got, want in zip(model.get_weights(), ends[-1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(x, y, verbose=0), rel=1e-5
    )


def tiny_pipeline(tmp_path, ema=MOMENTUM):
    return addition_pipeline(
        tmp_path, 40, 4, validation=60,
        sections='[model]\ntype = "seq2seq"\nembedding_dim = 8\nhidden_dim = 16\n'
        f'[training]\nepochs = 2\nbatch_tokens = 128\ncheckpoint = "last"\nema = {ema}\n'
        "learning_rate = 0.01\n",
    )  # fmt: skip


class StopAtSecondEpoch(keras.callbacks.Callback):
    """A SIGINT at the start of epoch 2 (what `StopOnSignal` raises), after epoch 1's backup."""

    def __init__(self, stop):
        super().__init__()

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise Interrupted(2)


def test_a_run_with_ema_keeps_the_average_and_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """`training.ema`: the run's saved model scores the logged validation loss (the average's),
    and a run interrupted after epoch 1 and resumed ends with the uninterrupted run's weights
    (the backup holds the trained weights and the average apart)."""
    config = load_pipeline(str(tiny_pipeline(tmp_path)))
    reference = trainer.train(config, tmp_path / "uninterrupted", verbose=0)
    with monkeypatch.context() as patch:
        patch.setattr(trainer, "StopOnSignal", StopAtSecondEpoch)
        with pytest.raises(Interrupted):
            trainer.train(config, tmp_path / "resumed", verbose=0)
    resumed = trainer.train(config, tmp_path / "resumed", verbose=0)
    assert resumed["resumed_after_epoch"] == 1
    assert resumed["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-5)
    ours = keras.saving.load_model(tmp_path / "resumed" / "model.keras").get_weights()
    theirs = keras.saving.load_model(tmp_path / "uninterrupted" / "model.keras").get_weights()
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)

    # The saved model is the average the epoch was measured with: it scores the logged
    # validation loss (that the average differs from the trained weights is checked above).
    run = RunDirectory(tmp_path / "uninterrupted")
    data = PreparedData.load(config, tokenizers=run.saved_tokenizers())
    inputs = data.fit_inputs(config["training"])
    model = run.load_model()
    model.compile(loss=MaskedSparseCategoricalCrossentropy(pad_id=model.pad_id))
    loss = model.evaluate(inputs["validation_data"], steps=inputs["validation_steps"], verbose=0)
    assert loss == pytest.approx(reference["val_loss"], rel=1e-5)


@pytest.mark.parametrize("value", [1.0, -0.1])
def test_the_momentum_must_be_a_fraction(value):
    with pytest.raises(ConfigError, match="training.ema"):
        make_optimizer({"ema": value})
