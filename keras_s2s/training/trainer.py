"""Training a pipeline end to end: data, tokenizers, model, `fit`, run directory."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import keras_s2s
from keras_s2s.config import type_ok, validate
from keras_s2s.data.splits import available_splits
from keras_s2s.errors import ConfigError, KerasS2SError, RunDirectoryError, TrainingDiverged
from keras_s2s.interrupts import GracefulStop, Interrupted, deferred
from keras_s2s.models import MODELS, DataNeeds
from keras_s2s.run_directory import BACKUP_DIR, CONFIG_FILE, FINISHED, RunDirectory
from keras_s2s.training.averaging import CheckpointAverage
from keras_s2s.training.callbacks import StopOnSignal
from keras_s2s.training.distribution import is_chief, make_strategy, worker_name
from keras_s2s.training.exact_match import ExactMatch
from keras_s2s.training.losses import MaskedSparseCategoricalCrossentropy
from keras_s2s.training.metrics import MaskedAccuracy
from keras_s2s.training.optimizers import make_optimizer, training_settings
from keras_s2s.training.prepared import PreparedData


def check_model_config(
    model_config: dict,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
):
    """Returns `(model class, DataNeeds)`; raises `ConfigError` on a bad key or value.

    Keys must be constructor arguments of the model type (`config_arguments`); a value must
    have the type of the argument's default (an int for an int, a bool for a bool, ...). Given
    the data's max lengths, the model family completes its arguments from them
    (`adapt_to_data`); then it checks the values itself (`validate_arguments`), without
    building anything.
    """
    arguments = dict(model_config)
    model_type = arguments.pop("type")
    if model_type not in MODELS:
        raise ConfigError(
            f"Unknown model type '{model_type}' (model.type); choose from {', '.join(MODELS)}"
        )
    cls = MODELS[model_type]
    accepted = cls.config_arguments()
    for key, value in arguments.items():
        if key not in accepted:
            raise ConfigError(
                f"Unknown config key 'model.{key}' for model type '{model_type}'. "
                f"Known keys: {', '.join(sorted(accepted))}"
            )
        default = accepted[key]
        if default is not None and default is not inspect.Parameter.empty:
            if not type_ok(value, default):
                raise ConfigError(
                    f"Invalid value for 'model.{key}': {value!r} "
                    f"(expected {type(default).__name__})"
                )
    try:
        if max_source_length is not None and max_target_length is not None:
            needs = cls.adapt_to_data(arguments, max_source_length, max_target_length)
        else:
            needs = DataNeeds(arguments)
        cls.validate_arguments(**needs.arguments)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"Invalid model config: {e}") from None
    return cls, needs


def check_config(config: dict) -> DataNeeds:
    """Checks a merged pipeline config as far as it can be without data; returns what the
    model needs from the data (its arguments completed from the data's max lengths).

    Commands call it before they read data or write anything: unknown keys and invalid values
    of every section (the model's included), a checkpoint monitor that is not logged, and a
    model chosen on the test split are all `ConfigError`s.
    """
    validate(config)
    data = config["data"]
    _, needs = check_model_config(
        config["model"], data["max_source_length"], data["max_target_length"]
    )
    monitor_and_mode(config)
    return needs


def monitor_and_mode(config: dict) -> tuple[str, str]:
    """The logged value the checkpoint (and early stopping) follows, and "min" or "max".

    Without validation data, a `val_` monitor falls back to the training value of that name.
    Nothing may be chosen on the test split: a monitor on it is refused (log the test split's
    exact match with `exact_match_split = "test"` and keep the last epoch instead).
    """
    training = config["training"]
    has_validation = "validation" in available_splits(config["data"])
    exact_match_split = training["exact_match_split"]
    monitor = training["monitor"]
    if monitor.startswith("test_"):
        raise ConfigError(
            f"training.monitor='{monitor}' would choose the model on the test split; monitor a "
            'validation value, or set training.checkpoint = "last" (the last epoch)'
        )
    if not has_validation and monitor.startswith("val"):
        # No validation data: the training value of the same name.
        monitor = monitor.removeprefix("validation_").removeprefix("val_")
    logged = {"loss", "token_accuracy"}
    logged |= {f"val_{name}" for name in logged} if has_validation else set()
    if exact_match_split:
        logged |= set(ExactMatch.logged_names(f"{exact_match_split}_exact_match").values())
    logged = {name for name in logged if not name.startswith("test_")}
    if monitor not in logged:
        raise ConfigError(
            f"training.monitor='{monitor}' is not logged by this run; "
            f"choose from {', '.join(sorted(logged))}"
        )
    if training["average_last_epochs"] and not (
        monitor.startswith("val_") or monitor.startswith("validation_")
    ):
        raise ConfigError(
            "training.average_last_epochs compares the average with the kept epoch on "
            f"validation data; training.monitor='{monitor}' is not measured there"
        )
    return monitor, "min" if monitor.endswith("loss") else "max"


def build_model(
    model_config: dict,
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    precision: str = "float32",
):
    """Builds the model a pipeline's `model` section describes (`type` and constructor
    arguments). With the data's max lengths, the model family completes its arguments from
    them (e.g. the static lengths of an unrolled RNN, see `EncoderDecoder.adapt_to_data`).
    `precision` (`training.precision`) is the model's dtype policy: "float32",
    "mixed_float16" or "mixed_bfloat16" (variables float32, computation in 16 bits, logits and
    softmax in float32; Keras's `compile` adds loss scaling for float16).
    """
    cls, needs = check_model_config(model_config, max_source_length, max_target_length)
    dtype = None if precision == "float32" else precision
    try:
        return cls(
            source_vocabulary_size=source_vocabulary_size,
            target_vocabulary_size=target_vocabulary_size,
            dtype=dtype,
            **needs.arguments,
        )
    except (ValueError, TypeError) as e:
        raise ConfigError(f"Invalid model config: {e}") from None


def compile_model(model: keras.Model, training: dict) -> keras.Model:
    """Compiles with `make_optimizer(training)` (Adam: learning rate schedule, betas, epsilon,
    global-norm clipping; with loss scaling under `training.precision = "mixed_float16"`), the
    masked loss with `training.label_smoothing` and masked token accuracy. Keys left out of
    `training` take their defaults."""
    training = training_settings(training)
    optimizer = make_optimizer(training)
    if training["precision"] == "mixed_float16":
        # Loss scaling against float16 underflow (Keras adds it only when the model's own
        # policy is float16; a functional model's stays float32 when its layers' is not).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=MaskedSparseCategoricalCrossentropy(label_smoothing=training["label_smoothing"]),
        metrics=[MaskedAccuracy()],
        jit_compile=training["jit_compile"],
        steps_per_execution=training["steps_per_execution"],
    )
    return model


def reseed(seed: int) -> None:
    """Re-seeds what a model's initial weights and dropout seeds are drawn from (Python's
    generator, through Keras's default seeds, and NumPy's), as `keras.utils.set_random_seed`
    does, but without its `tf.random.set_seed`: that clears TensorFlow's kernel caches, which
    destroys the SentencePiece tokenizers' resources that built datasets still use."""
    random.seed(seed)
    np.random.seed(seed)


def build_compiled_model(config: dict, data) -> keras.Model:
    """`config`'s model for the vocabularies of `data` (a `PreparedData`), compiled with its
    `[training]` settings (call it under a strategy's scope). The initial weights depend on
    `training.seed` only, not on what ran before (e.g. TFDS preparing a dataset the first time
    a run reads it draws random numbers)."""
    reseed(config["training"]["seed"])
    model = build_model(
        config["model"],
        data.source_tokenizer.vocabulary_size,
        data.target_tokenizer.vocabulary_size,
        config["data"]["max_source_length"],
        config["data"]["max_target_length"],
        config["training"]["precision"],
    )
    return compile_model(model, config["training"])


class _EpochTrainSeconds(keras.callbacks.Callback):
    """Logs `epoch_train_seconds`: the epoch's training steps only (no validation, no callbacks)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_train_seconds"] = self._end - self._start


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 of the model's weights (their bytes, in order): equal on two processes exactly
    when their weights are equal, e.g. the workers of a multi-worker run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


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
            if self._better(value):
                self.best = value

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
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


def backed_up_epochs(backup_dir: str | Path) -> int:
    """The epochs a `BackupAndRestore` backup holds (0: none), from its
    `training_metadata.json`."""
    path = Path(backup_dir) / "training_metadata.json"
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def train(
    config: dict,
    output_dir: str | Path,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    finished_run: str = "error",
) -> dict:
    """Trains `config` (a merged pipeline config) into the run directory `output_dir`.

    The model, optimizer and metrics are created under `strategy` (default: one made from
    `training.strategy` by `make_strategy`; pass your own to choose devices). Under a
    multi-worker strategy every worker runs the same call; only the chief writes `output_dir`
    (the others write into a temporary directory, removed at the end).

    The config is checked whole before any data is read (`check_config`), and the data (every
    file of every split, the test split's included, and the tokenizer files the config names)
    is read before anything is written or moved. `output_dir` must be new or empty, an
    unfinished run of this config (resumed from its last backup), or a finished run: that is
    an error, or with `finished_run="move"` (what `keras-s2s train` does) it is renamed to
    `<output_dir>.previous-<time>` once the data is known good. Any other folder is refused.

    While it trains, the run directory holds `train.lock`: a second process training into it
    is refused (a lock left by a process that ended is taken over). The run directory gets the
    config and tokenizers before training starts and the model after each improving epoch (or
    every epoch, with `training.checkpoint = "last"`), each file written whole or not at all.
    `run.json`'s `status` says "running" until the run ends "finished", "failed" or
    "interrupted": readers refuse an unfinished run unless asked, and its last checkpoint stays.

    SIGINT or SIGTERM (in the main thread) stops training at the end of the current batch (a
    second signal at once): the backup of the last whole epoch stays, `run.json` says
    "interrupted" with `interrupted_after_epoch`, and `keras_s2s.interrupts.Interrupted` (a
    `KeyboardInterrupt`) is raised; the same call then resumes the run.

    Returns a summary dict (the figures `keras-s2s train` prints).
    """
    needs = check_config(config)  # Fail on a config typo before any data work.
    if finished_run not in ("error", "move"):
        raise ValueError(f"finished_run must be 'error' or 'move'; got {finished_run!r}")
    training = config["training"]
    # Before any TensorFlow op: collective ops are configured at program start.
    strategy = strategy or make_strategy(training["strategy"])
    # One backup directory per worker (BackupAndRestore), in the run directory.
    backup_dir = Path(output_dir) / BACKUP_DIR / worker_name(strategy)
    if not is_chief(strategy):
        with tempfile.TemporaryDirectory(prefix=f"keras-s2s-{worker_name(strategy)}-") as d:
            return _train(config, needs, Path(d) / "run", verbose, strategy, backup_dir, "error")
    return _train(config, needs, output_dir, verbose, strategy, backup_dir, finished_run)


def resumable(run: RunDirectory, config: dict) -> bool:
    """Whether `run` (an unfinished run, `RunDirectory.state`) holds a run of `config` (train
    resumes it) rather than no config (train starts one). An unfinished run of another config
    is a `ConfigError` naming the differences: nothing is overwritten."""
    if not (run.path / CONFIG_FILE).is_file():
        return False
    status = run.status()
    differences = config_differences(run.stored_config(), config)
    if differences:
        raise ConfigError(
            f"{run.path} holds an unfinished run (status '{status}') of a different config "
            f"({', '.join(differences[:5])}{', ...' if len(differences) > 5 else ''}); rerun "
            "it with the same config to resume it, or train into another directory"
        )
    return True


def config_differences(stored: dict, config: dict) -> list[str]:
    """The dotted keys whose values differ between a stored config and `config` (as JSON)."""

    def flat(value, prefix=""):
        if isinstance(value, dict):
            items = {}
            for key, inner in value.items():
                items.update(flat(inner, f"{prefix}{key}."))
            return items
        return {prefix[:-1]: value}

    a, b = flat(stored), flat(json.loads(json.dumps(config, default=str)))
    return sorted(key for key in a.keys() | b.keys() if a.get(key, None) != b.get(key, None))


def _train(config, needs, output_dir, verbose, strategy, backup_dir, finished_run):
    run = RunDirectory(output_dir)
    state = run.state()
    run.check_unlocked()
    if state == FINISHED and finished_run != "move":
        raise RunDirectoryError(
            f"{run.path} holds a finished run; train into another directory (keras-s2s train "
            "moves a finished run aside)"
        )
    resume = state == "unfinished" and resumable(run, config)
    keras.utils.set_random_seed(config["training"]["seed"])
    data = PreparedData.load(config, tokenizers=_saved_tokenizers(run) if resume else None)
    # The input is good: only now is anything moved or written.
    if state == FINISHED:
        print(f"Moved the earlier run in {run.path} to {run.move_aside()}", file=sys.stderr)
    elif resume:
        print(f"Resuming the unfinished run in {run.path}", file=sys.stderr)
    with run.lock():
        return _train_locked(config, needs, run, data, verbose, strategy, backup_dir)


def _train_locked(config, needs, run, data, verbose, strategy, backup_dir):
    training = config["training"]
    monitor, mode = monitor_and_mode(config)
    run.create(config)
    vocab = run.save_tokenizers(data.source_tokenizer, data.target_tokenizer)
    data_figures = {
        "train_examples": data.kept,
        "train_dropped_too_long": data.dropped,
        "skipped_empty": data.skipped,
    }
    run.write_metadata(
        {
            "keras_s2s_version": keras_s2s.__version__,
            "pipeline": config["name"],
            "status": "running",
            "max_source_length": config["data"]["max_source_length"],
            "max_target_length": config["data"]["max_target_length"],
            **vocab,
            "data": data_figures,
        }
    )
    try:
        with GracefulStop() as stop:
            summary = _fit(
                config, needs, (monitor, mode), run, data, verbose, strategy, backup_dir,
                extra_callbacks=[StopOnSignal(stop)],
            )  # fmt: skip
    except KeyboardInterrupt as e:
        epochs = backed_up_epochs(backup_dir)
        with deferred():
            run.write_metadata({"status": "interrupted", "interrupted_after_epoch": epochs})
        if isinstance(e, Interrupted):
            raise Interrupted(
                e.signum,
                f"training stopped by {e.signal_name} after epoch {epochs} of "
                f"{training['epochs']} (the backup of its last whole epoch is kept in "
                f"{run.path / BACKUP_DIR}); train again with the same config and output "
                "directory to resume",
            ) from None
        raise
    except BaseException as e:
        with deferred():
            run.write_metadata({"status": "failed", "error": f"{type(e).__name__}: {e}"[:500]})
        raise
    summary = {
        "pipeline": config["name"],
        "run_dir": str(run.path),
        **summary,
        **data_figures,
    }
    run.write_metadata({"training": summary, "status": FINISHED})
    with contextlib.suppress(OSError):  # BackupAndRestore removed its own directory in it.
        (run.path / BACKUP_DIR).rmdir()
    return summary


def _saved_tokenizers(run: RunDirectory):
    """The tokenizers an unfinished run saved (a resumed run must keep its ids), or None if it
    was stopped before saving them."""
    try:
        return run.load_tokenizers()
    except RunDirectoryError:
        return None


def _fit(config, needs, monitored, run, data, verbose, strategy, backup_dir, extra_callbacks=()):
    """Builds, compiles and fits the model; returns the training figures. `needs` is what the
    model needs from the data (`check_config`), `monitored` `(monitor, mode)` from
    `monitor_and_mode`, `data` the `PreparedData`; `extra_callbacks` come first."""
    training = config["training"]
    monitor, mode = monitored
    callbacks = [*extra_callbacks, _EpochTrainSeconds()]
    decoding = data.decoding(training)
    if decoding is not None:
        callbacks.append(decoding)
    averaging = None
    if training["average_last_epochs"]:
        averaging = CheckpointAverage(training["average_last_epochs"], apply_on_train_end=False)
        callbacks.append(averaging)
    images = data.attention_images(training, run.path / "logs" / "attention")
    if images is not None:  # (It writes nothing for a model without attention.)
        callbacks.append(images)

    with strategy.scope():
        model = build_compiled_model(config, data)

    keep_last = training["checkpoint"] == "last"
    checkpoint = RunCheckpoint(run, None if keep_last else monitor, mode)
    callbacks += [
        StopOnNaN(run),
        checkpoint,
        keras.callbacks.TensorBoard(log_dir=str(run.path / "logs"), profile_batch=0),
        # After the checkpoint: a kill between the two repeats the epoch, never skips it.
        # Each epoch's end: the restarted run repeats at most the interrupted epoch, and the
        # optimizer's step count (the learning rate schedule's) is the completed epochs'.
        keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True),
    ]
    if training["early_stopping_patience"]:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=training["early_stopping_patience"],
                restore_best_weights=not keep_last,
            )
        )
    # BackupAndRestore needs a built model; a resumed run reads the data from where the
    # interrupted epoch began, so it sees the batches the uninterrupted run would have.
    source_length, target_length = (
        (config["data"]["max_source_length"], config["data"]["max_target_length"] + 1)
        if needs.fixed_lengths
        else (2, 2)
    )
    with strategy.scope():
        model(
            {
                "encoder_token_ids": tf.ones([1, source_length], "int32"),
                "decoder_token_ids": tf.ones([1, target_length], "int32"),
            }
        )
    resumed_epochs = backed_up_epochs(backup_dir)
    inputs = data.fit_inputs(training, needs.fixed_lengths, strategy, resumed_epochs)
    start = time.perf_counter()
    model.fit(**inputs, epochs=training["epochs"], callbacks=callbacks, verbose=verbose)
    train_seconds = time.perf_counter() - start
    history = checkpoint.history  # This run's epochs after those of the run it resumed.
    values = history.get(monitor)
    if not values:
        raise KerasS2SError(f"No epoch logged '{monitor}' (training.monitor)")
    kept = (
        len(values) - 1
        if keep_last
        else (min if mode == "min" else max)(range(len(values)), key=values.__getitem__)
    )
    summary = {
        "epochs": len(values),
        "checkpoint": training["checkpoint"],
        "best_epoch": kept + 1,
        "steps_per_epoch": inputs["steps_per_epoch"],
        "train_seconds": round(train_seconds, 2),
        **{k: float(v[kept]) for k, v in history.items()},
    }
    if resumed_epochs:
        summary["resumed_after_epoch"] = resumed_epochs
    summary["weights_sha256"] = weights_fingerprint(model)
    if averaging is not None:
        summary.update(
            _keep_average_if_better(
                model, averaging, run, monitored, float(values[kept]), decoding,
                inputs.get("validation_data"), inputs.get("validation_steps"),
            )
        )  # fmt: skip
    return summary


def _keep_average_if_better(
    model, averaging, run, monitored, kept_value, decoding, validation_data, validation_steps
) -> dict:
    """Sets `model` to the average of the last epochs and measures `monitor` for it as the
    epochs measured it (validation loss/accuracy, or the decoding scores of the
    `exact_match_split`). The run keeps the average if it is at least as good as the kept
    epoch. Returns the figures for the summary."""
    monitor, mode = monitored
    epochs = averaging.apply()
    if monitor.startswith("val_"):  # (`monitor_and_mode` allows only validation values.)
        logs = model.evaluate(validation_data, steps=validation_steps, return_dict=True, verbose=0)
        value = float(logs[monitor.removeprefix("val_")])
    else:
        names = {logged: score for score, logged in decoding.logged_names(decoding.name).items()}
        value = float(decoding.score()[names[monitor]])
    better = value <= kept_value if mode == "min" else value >= kept_value
    if better:
        run.save_model(model)
        run.write_metadata({"checkpoint_epoch": f"average of epochs {epochs[0]}-{epochs[-1]}"})
    return {
        "averaged_epochs": epochs,
        f"averaged_{monitor}": value,
        "kept": "average" if better else "epoch",
    }
