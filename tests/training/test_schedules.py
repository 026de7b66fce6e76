"""The learning rate schedules: the inverse-square-root warm-up (the formula, its peak, its two
regimes, the step count Keras passes, serialization) and the warm-up cosine (its shape, and a
run that decays to zero at its last update)."""

import keras
import numpy as np
import pytest

from keras_s2s.config import load_pipeline
from keras_s2s.errors import ConfigError
from keras_s2s.training import (
    InverseSquareRootSchedule,
    WarmupCosineSchedule,
    make_optimizer,
    train,
)
from tests.pipeline_files import addition_pipeline
from tests.training.test_observability import events


def formula(n, model_dim, warmup, scale):
    """Vaswani et al. (2017), eq. 3, times `scale`; n counts updates from 1."""
    n = np.asarray(n, "float64")
    return scale * model_dim**-0.5 * np.minimum(n**-0.5, n * warmup**-1.5)


def rates(schedule, updates):
    """The rate of update n = 1, 2, ... (Keras passes n - 1, the updates already applied)."""
    return np.array([float(schedule(n - 1)) for n in updates])


@pytest.mark.parametrize("model_dim, warmup, scale", [(512, 4000, 1.0), (64, 40, 2.0)])
def test_the_rate_is_the_formula_and_peaks_at_warmup_steps(model_dim, warmup, scale):
    schedule = InverseSquareRootSchedule(model_dim, warmup_steps=warmup, scale=scale)
    updates = np.unique(np.linspace(1, 5 * warmup, 400).astype(int))
    updates = np.union1d(updates, [warmup - 1, warmup, warmup + 1])
    lr = rates(schedule, updates)
    np.testing.assert_allclose(lr, formula(updates, model_dim, warmup, scale), rtol=1e-5)
    assert updates[np.argmax(lr)] == warmup
    peak = scale / np.sqrt(model_dim * warmup)
    assert lr.max() == pytest.approx(peak, rel=1e-6)


def test_linear_warm_up_then_inverse_square_root_decay():
    warmup = 50
    schedule = InverseSquareRootSchedule(32, warmup_steps=warmup, scale=3.0)
    before = np.arange(1, warmup + 1)
    np.testing.assert_allclose(rates(schedule, before), before * float(schedule(0)), rtol=1e-5)
    after = np.arange(warmup, 20 * warmup, 37)
    peak = float(schedule(warmup - 1))
    np.testing.assert_allclose(
        rates(schedule, after) * np.sqrt(after), peak * np.sqrt(warmup), rtol=1e-5
    )


def test_keras_passes_the_updates_already_applied():
    """The optimizer's rate after k updates is the formula at n = k + 1: the first update gets
    lr(1) > 0, not the formula's lr(0) = 0."""
    schedule = InverseSquareRootSchedule(16, warmup_steps=10)
    variable = keras.Variable(np.zeros(3, "float32"))
    optimizer = keras.optimizers.Adam(schedule)
    optimizer.build([variable])
    for k in range(4):
        rate = float(optimizer.learning_rate)
        assert rate == pytest.approx(formula(k + 1, 16, 10, 1.0), rel=1e-6) and rate > 0
        optimizer.apply_gradients([(np.ones(3, "float32"), variable)])
    assert int(optimizer.iterations) == 4


def test_serialization_and_bad_arguments():
    schedule = InverseSquareRootSchedule(256, warmup_steps=1000, scale=2.0)
    assert schedule.get_config() == {"model_dim": 256, "warmup_steps": 1000, "scale": 2.0}
    name = keras.saving.get_registered_name(InverseSquareRootSchedule)
    assert name == "keras_s2s>InverseSquareRootSchedule"
    optimizer = keras.optimizers.Adam(schedule, beta_2=0.98, epsilon=1e-9)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored._learning_rate, InverseSquareRootSchedule)
    assert restored._learning_rate.get_config() == schedule.get_config()
    assert float(restored.learning_rate) == pytest.approx(float(schedule(0)), rel=1e-6)
    for kwargs, message in [
        ({"model_dim": 0}, "model_dim=0"),
        ({"model_dim": 8.0}, "model_dim=8.0"),
        ({"model_dim": 8, "warmup_steps": 0}, "warmup_steps=0"),
        ({"model_dim": 8, "scale": 0.0}, "scale=0.0"),
    ]:
        with pytest.raises(ValueError, match=message):
            InverseSquareRootSchedule(**kwargs)


def test_cosine_warms_up_linearly_then_halves_at_mid_decay_and_ends_at_zero():
    schedule = WarmupCosineSchedule(2e-3, warmup_steps=10, decay_steps=100)
    up = np.arange(1, 11)
    np.testing.assert_allclose(rates(schedule, up), 2e-3 * up / 10, rtol=1e-5)
    after = np.arange(10, 111)
    want = 1e-3 * (1 + np.cos(np.pi * (after - 10) / 100))
    np.testing.assert_allclose(rates(schedule, after), want, rtol=1e-4, atol=1e-9)
    assert rates(schedule, [60])[0] == pytest.approx(1e-3, rel=1e-5)  # half way down
    assert np.all(rates(schedule, [110, 111, 500]) == 0)
    assert np.all(np.diff(rates(schedule, after)) < 0)
    # Two batches per update (gradient accumulation): update n is steps 2(n-1) and 2n-1.
    accumulated = WarmupCosineSchedule(2e-3, 10, 100, steps_per_update=2)
    assert [float(accumulated(s)) for s in (18, 19)] == [float(schedule(9))] * 2
    restored = keras.optimizers.deserialize(
        keras.optimizers.serialize(keras.optimizers.Adam(accumulated))
    )
    assert restored._learning_rate.get_config() == accumulated.get_config()
    for kwargs, message in [
        ({"peak": 0.0, "warmup_steps": 1, "decay_steps": 1}, "peak=0.0"),
        ({"peak": 1.0, "warmup_steps": 1, "decay_steps": 0}, "decay_steps=0"),
    ]:
        with pytest.raises(ValueError, match=message):
            WarmupCosineSchedule(**kwargs)


def test_cosine_needs_the_run_length_or_decay_steps():
    cosine = {"learning_rate_schedule": "cosine", "learning_rate": 1e-3, "warmup_steps": 5}
    with pytest.raises(ConfigError, match="set training.decay_steps"):
        make_optimizer(cosine)
    with pytest.raises(ConfigError, match=r"warmup_steps \(5\) leaves no update of the run's 5"):
        make_optimizer(cosine, total_updates=5)
    assert make_optimizer(cosine, total_updates=25)._learning_rate.decay_steps == 20
    given = make_optimizer({**cosine, "decay_steps": 7}, total_updates=25)
    assert given._learning_rate.decay_steps == 7
    with pytest.raises(ConfigError, match="training.decay_steps"):
        make_optimizer({**cosine, "decay_steps": -1})


def test_a_cosine_run_decays_to_zero_at_its_last_update(tmp_path):
    pipeline = addition_pipeline(
        tmp_path, 20, 1,
        sections='[model]\ntype = "seq2seq"\nembedding_dim = 8\nhidden_dim = 16\n'
        '[training]\nepochs = 3\nbatch_tokens = 256\nlearning_rate = 0.01\n'
        'learning_rate_schedule = "cosine"\nwarmup_steps = 2\n',
    )  # fmt: skip
    summary = train(load_pipeline(pipeline), tmp_path / "run", verbose=0)
    logged = events(tmp_path / "run" / "logs" / "train")["epoch_learning_rate"]
    rates_logged = [float(logged[epoch]) for epoch in sorted(logged)]
    # After epoch e Keras logs the rate of the next update: schedule(e x steps per epoch).
    steps = summary["steps_per_epoch"]
    schedule = WarmupCosineSchedule(0.01, warmup_steps=2, decay_steps=3 * steps - 2)
    want = [float(schedule(epoch * steps)) for epoch in (1, 2, 3)]
    np.testing.assert_allclose(rates_logged, want, rtol=1e-5)
    assert rates_logged[0] > rates_logged[1] > rates_logged[2] == 0
