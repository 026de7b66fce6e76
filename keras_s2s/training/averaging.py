"""Checkpoint averaging: the mean of the weights of the last epochs."""

from __future__ import annotations

import collections

import keras
import numpy as np


class CheckpointAverage(keras.callbacks.Callback):
    """Keeps the model's weights at the end of each of the last `last` epochs and, when
    training ends, sets the model to their element-wise mean.

    Averaging the last checkpoints is the standard cheap gain of Transformer training
    (Vaswani et al., 2017, section 6.1, averaged the last 5 or 20; Popel and Bojar, 2018): the
    mean of nearby points of one run sits closer to the middle of the basin than any of them.
    Float weights are averaged (summed in float64), integer ones (counters, seeds) take the
    newest value; the copies live in host memory (one per kept epoch); the optimizer's state is
    not averaged.

    Args:
        last: int >= 1, how many of the last epochs to average.
        apply_on_train_end: bool, set the model to the average when `fit` returns; else call
            `average()` / `apply()` yourself.

    Example:
    ```python
    averaging = keras_s2s.training.CheckpointAverage(last=5)
    model.fit(train, epochs=20, shuffle=False, callbacks=[averaging])  # the model holds the mean
    ```
    """

    def __init__(self, last: int = 5, apply_on_train_end: bool = True):
        super().__init__()
        if isinstance(last, bool) or not isinstance(last, int) or last < 1:
            raise ValueError(f"`last` must be a positive integer. Received: last={last!r}")
        self.last = last
        self.apply_on_train_end = apply_on_train_end
        self.checkpoints: collections.deque = collections.deque(maxlen=last)
        self.epochs: collections.deque = collections.deque(maxlen=last)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoints.append([np.array(w) for w in self.model.get_weights()])
        self.epochs.append(epoch + 1)

    def average(self) -> list[np.ndarray]:
        """The mean of the kept epochs' weights, in `model.get_weights()` order and dtypes."""
        if not self.checkpoints:
            raise ValueError("No checkpoint to average: no epoch has ended")
        count, newest = len(self.checkpoints), self.checkpoints[-1]
        averaged = []
        for i, weight in enumerate(newest):
            if np.issubdtype(weight.dtype, np.floating):
                total = sum(np.asarray(c[i], np.float64) for c in self.checkpoints)
                weight = (total / count).astype(weight.dtype)
            averaged.append(weight)  # Counters and seeds (integers): the newest value.
        return averaged

    def apply(self) -> list[int]:
        """Sets the model to the average; returns the (1-based) epochs averaged."""
        self.model.set_weights(self.average())
        return list(self.epochs)

    def on_train_end(self, logs=None):
        if self.apply_on_train_end and self.checkpoints:
            self.apply()
