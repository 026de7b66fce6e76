"""Weight averaging during training: the optimizer's exponential moving average (EMA) of the
weights, used wherever an epoch is measured and saved."""

from __future__ import annotations

import keras


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """Puts the optimizer's moving average of the weights (`use_ema=True`: Polyak averaging,
    average <- m * average + (1 - m) * weights after every update) into the model wherever
    an epoch is measured or saved, and the trained weights back before the next update.

    Keras's `SwapEMAWeights` swaps them for `evaluate` (so `fit`'s validation loss is the
    average's) and, with `swap_on_epoch=True`, from the end of an epoch to the start of the
    next one, so a `BackupAndRestore` after it would back up the average as the trained weights
    and a resumed run would continue from it. This callback puts the average in at its own
    place in the callback list when an epoch ends (so the callbacks after it decode, average,
    checkpoint and stop early on the average) and `restore` (a second callback, placed before
    `BackupAndRestore`) puts the trained weights back, so the backup holds the weights training
    continues from and the average apart, as an uninterrupted run has them. When `fit` ends,
    Keras sets the model to the average.

    Example:
    ```python
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True, ema_momentum=0.999), ...)
    ema = keras_s2s.training.EMAWeights()
    checkpoint = keras.callbacks.ModelCheckpoint("best.keras", save_best_only=True)
    model.fit(train, validation_data=val, callbacks=[ema, checkpoint, ema.restore])
    ```
    """

    def __init__(self):
        super().__init__(swap_on_epoch=False)
        self.restore = _RestoreTrainedWeights(self)

    def _swap_variables(self):
        # Keras's TensorFlow swap adds and subtracts the two in place (a + b - b), which rounds
        # the trained weights by an ulp at every swap; this one copies (exact).
        self._apply_to_ema_optimizers(_exact_swap, _exact_swap)

    def on_epoch_end(self, epoch, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True


def _exact_swap(optimizer) -> None:
    """Swaps the optimizer's trainable variables and their moving averages by copies."""
    for variable, average in zip(
        optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True
    ):
        trained = keras.ops.copy(variable.value)
        variable.assign(average.value)
        average.assign(trained)


class _RestoreTrainedWeights(keras.callbacks.Callback):
    """`EMAWeights.restore`: puts the trained weights back when an epoch ends."""

    def __init__(self, swap: EMAWeights):
        super().__init__()
        self.swap = swap

    def on_epoch_end(self, epoch, logs=None):
        if self.swap._ema_weights_in_model:
            self.swap._swap_variables()
            self.swap._ema_weights_in_model = False
