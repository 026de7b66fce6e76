"""The callbacks `train` (and keras-tuner trials) add to `fit`: run checkpoints, stopping on
NaN or a signal, the epoch timer, and the decoding, weight-averaging and attention-image
callbacks a config asks for (`decoding_callback`, `ema_callbacks`,
`attention_images_callback`)."""

from __future__ import annotations

import math
import time

import keras

from keras_s2s.data.splits import as_strings
from keras_s2s.errors import TrainingDiverged
from keras_s2s.interrupts import GracefulStop
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training.attention_images import AttentionImages
from keras_s2s.training.ema import EMAWeights
from keras_s2s.training.exact_match import ExactMatch


def decoding_callback(data, training: dict) -> ExactMatch | None:
    """The callback that logs free-running decoding scores (exact match, BLEU, chrF) on
    `training.score_split` of `data` (a `PreparedData`) after every `training.score_every`-th
    epoch and the last, on the split's first `training.score_examples` examples (0: all; None
    if the split is "")."""
    split, count = training["score_split"], training["score_examples"]
    if not split:
        return None
    examples = data.splits[split]
    sources, references = as_strings(examples.take(count) if count else examples)
    return ExactMatch(
        sources, references, data.source_tokenizer, data.target_tokenizer,
        data.data["max_source_length"], data.data["max_target_length"],
        every=training["score_every"], name=f"{split}_exact_match",
    )  # fmt: skip


def ema_callbacks(training: dict) -> tuple[list, list]:
    """The callbacks that put the moving average of the weights (`training.ema` > 0) in the
    model when an epoch ends, to go first, and those that put the trained weights back, to go
    before the backup (`EMAWeights`); both empty when `training.ema` is 0."""
    if not training["ema"]:
        return [], []
    ema = EMAWeights()
    return [ema], [ema.restore]


def attention_images_callback(data, training: dict, log_dir) -> AttentionImages | None:
    """The callback that writes the attention heatmaps of the first `training.attention_images`
    validation sources (else training sources) of `data` to TensorBoard in `log_dir` after each
    epoch (None if that is 0)."""
    count = training["attention_images"]
    if not count:
        return None
    split = "validation" if "validation" in data.splits else "train"
    sources, _ = as_strings(data.splits[split].take(count))
    return AttentionImages(
        sources,
        data.source_tokenizer, data.target_tokenizer,
        data.data["max_source_length"], data.data["max_target_length"], log_dir,
    )  # fmt: skip


class EpochTrainSeconds(keras.callbacks.Callback):
    """Logs `epoch_train_seconds`: the epoch's training steps only (no validation, no callbacks)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_train_seconds"] = self._end - self._start


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the model into a run directory after an epoch: the best one by `monitor` (`mode`
    "min" or "max"), or every epoch's (`monitor=None`: the last epoch is kept).

    Each save goes through a temporary file renamed into place, and `run.json` records the
    saved epoch (`checkpoint_epoch`) and every ended epoch's logs (`history`), so an
    interrupted save never leaves half a model. A run resumed at epoch e (`fit` starts there,
    e.g. from `BackupAndRestore`) keeps the history of epochs 1..e from `run.json`, and its
    best value: a resumed epoch replaces the checkpoint only if it is better.
    `history` holds the logs of every epoch, the resumed run's included.
    """

    def __init__(self, run: RunDirectory, monitor: str | None = None, mode: str = "max"):
        super().__init__()
        self.run, self.monitor, self.mode = run, monitor, mode
        self.best = None
        self.history: dict[str, list[float]] = {}
        self._started = False

    def _better(self, value):
        return self.best is None or (value < self.best if self.mode == "min" else value > self.best)

    def on_train_begin(self, logs=None):
        self.history = self.run.metadata(missing_ok=True).get("history", {})
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._started:
            return
        self._started = True  # fit starts at `epoch`: keep the history of the epochs before.
        self.history = {k: list(v[:epoch]) for k, v in self.history.items()}
        for value in self.history.get(self.monitor, []):
            if value is not None and self._better(value):
                self.best = value

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        # One entry per epoch in every list: None where an epoch did not log the key (e.g. a
        # decoding score every N-th epoch only).
        ended = 1 + max(map(len, self.history.values()), default=0)
        for key in set(self.history) | set(logs):
            values = self.history.setdefault(key, [])
            values += [None] * (ended - 1 - len(values)) + [logs.get(key)]
        self.run.write_metadata({"history": self.history})
        if self.monitor is not None:
            value = logs.get(self.monitor)
            if value is None or not self._better(value):
                return
            self.best = value
        self.run.save_model(self.model)
        self.run.write_metadata({"checkpoint_epoch": epoch + 1})


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's `TerminateOnNaN`, stopping at once: a batch whose loss is NaN or infinite
    raises `TrainingDiverged`, before the epoch ends, so no checkpoint, backup or average
    takes the broken weights; the run's last good checkpoint stays, and the error says so."""

    def __init__(self, run: RunDirectory):
        super().__init__()
        self.run = run
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            epoch = self.run.metadata(missing_ok=True).get("checkpoint_epoch")
            kept = (
                f"the last good checkpoint (epoch {epoch}) is kept in {self.run.model_path}"
                if epoch is not None
                else "no epoch had ended, so no checkpoint was saved"
            )
            raise TrainingDiverged(
                f"The training loss became {float(loss)} at epoch {self._epoch + 1}, batch "
                f"{batch + 1}; {kept}. Lower training.learning_rate, or check the data"
            )


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
