"""The inverse-square-root warm-up schedule: the formula, its peak, its two regimes, the step
count Keras passes, and serialization."""

import keras
import numpy as np
import pytest

from keras_s2s.training import InverseSquareRootSchedule


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
