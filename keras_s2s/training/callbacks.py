"""Callbacks of the trainer that are not about the model's figures."""

from __future__ import annotations

import keras

from keras_s2s.interrupts import GracefulStop


class StopOnSignal(keras.callbacks.Callback):
    """Ends `fit` at the end of the current batch once `stop` (a `GracefulStop`) has received
    SIGINT or SIGTERM, by raising `keras_s2s.interrupts.Interrupted`.

    It raises before the epoch ends, so the epoch-end callbacks (checkpoint, backup) never
    take a half-trained epoch for a whole one: a resumed run repeats the interrupted epoch.
    It also checks when an epoch begins, so a signal that came during the previous epoch's
    end (validation, decoding, saving) stops there, after that epoch's backup.
    """

    def __init__(self, stop: GracefulStop):
        super().__init__()
        self.stop = stop

    def on_train_batch_end(self, batch, logs=None):
        self.stop.check()

    def on_test_batch_end(self, batch, logs=None):
        self.stop.check()

    def on_epoch_begin(self, epoch, logs=None):
        self.stop.check()
