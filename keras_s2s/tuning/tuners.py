"""The built-in tuners (`search.tuner`), registered in `keras_s2s.registry.TUNERS`.

A tuner entry is a function `(max_trials, epochs, **common) -> keras_tuner.Tuner`: `epochs` is
what a trial trains at most, `common` keras-tuner's arguments every tuner takes (hypermodel,
objective, directory, project_name, seed, overwrite).
"""

from __future__ import annotations

import keras_tuner


def random_search(max_trials: int, epochs: int, **common) -> keras_tuner.Tuner:
    """keras-tuner's `RandomSearch`."""
    del epochs
    return keras_tuner.RandomSearch(max_trials=max_trials, **common)


def bayesian_optimization(max_trials: int, epochs: int, **common) -> keras_tuner.Tuner:
    """keras-tuner's `BayesianOptimization` (a Gaussian process over the space)."""
    del epochs
    return keras_tuner.BayesianOptimization(max_trials=max_trials, **common)


def hyperband(max_trials: int, epochs: int, **common) -> keras_tuner.Tuner:
    """keras-tuner's `Hyperband` up to `epochs` a trial (factor 3), at most `max_trials`."""
    tuner = keras_tuner.Hyperband(max_epochs=epochs, factor=3, **common)
    tuner.oracle.max_trials = max_trials
    return tuner
