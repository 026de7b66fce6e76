"""Training a pipeline end to end, as a recipe: check the config, prepare the data, build the
model, fit it, keep the best, write the run. The steps live in their own modules
(`keras_s2s.checks`, `training.prepared`, `training.building`, `training.callbacks`, the run
directory's resume logic); this module only orders them."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

import keras_s2s
from keras_s2s.checks import CheckedConfig, check_config, score_names
from keras_s2s.errors import ConfigError, KerasS2SError, RunDirectoryError
from keras_s2s.interrupts import GracefulStop, Interrupted, deferred
from keras_s2s.run_directory import BACKUP_DIR, FINISHED, RunDirectory, backed_up_epochs
from keras_s2s.training.averaging import CheckpointAverage
from keras_s2s.training.building import build_compiled_model, weights_fingerprint
from keras_s2s.training.callbacks import (
    EpochTrainSeconds,
    RunCheckpoint,
    StopOnNaN,
    StopOnSignal,
    attention_images_callback,
    decoding_callback,
    ema_callbacks,
)
from keras_s2s.training.distribution import (
    is_chief,
    make_strategy,
    worker_name,
)
from keras_s2s.training.optimizers import run_updates
from keras_s2s.training.prepared import PreparedData


def train(
    config: dict,
    output_dir: str | Path,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    finished_run: str = "error",
    init_from: str | Path | None = None,
) -> dict:
    """Trains `config` (a merged pipeline config) into the run directory `output_dir`.

    With `init_from` (a finished run directory), training starts from that run's weights, and
    with its tokenizers (a fine-tuned model must read the ids it was trained on): the
    pipeline's `[model]` must be the run's (its dropout may differ), and a pipeline that names
    its own vocabulary files or another tokenizer type is refused (`ConfigError`), before any
    data is read. `run.json` records the run it started from.

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
    checked = check_config(config)  # Fail on a config typo before any data work.
    if finished_run not in ("error", "move"):
        raise ValueError(f"finished_run must be 'error' or 'move'; got {finished_run!r}")
    initial = _initial_run(init_from, checked.config) if init_from is not None else None
    # Before any TensorFlow op: collective ops are configured at program start.
    strategy = strategy or make_strategy(config["training"]["strategy"])
    # One backup directory per worker (BackupAndRestore), in the run directory.
    backup_dir = Path(output_dir) / BACKUP_DIR / worker_name(strategy)
    if not is_chief(strategy):
        with tempfile.TemporaryDirectory(prefix=f"keras-s2s-{worker_name(strategy)}-") as d:
            run = RunDirectory(Path(d) / "run")
            return _train(_Job(checked, run, strategy, backup_dir, verbose, initial), "error")
    job = _Job(checked, RunDirectory(output_dir), strategy, backup_dir, verbose, initial)
    return _train(job, finished_run)


#: `[model]` keys a run started from another (`init_from`) may change: they hold no weights.
_FINE_TUNING_MAY_CHANGE = ("model.dropout",)


@dataclasses.dataclass
class _InitialRun:
    """The finished run `init_from` names, and its tokenizers (read once)."""

    run: RunDirectory
    tokenizers: tuple


def _initial_run(init_from, config: dict) -> _InitialRun:
    """The finished run `init_from` names, checked against `config` (see `train`)."""
    from keras_s2s.registry import TOKENIZERS
    from keras_s2s.run_directory import config_differences

    initial = RunDirectory(init_from)
    initial.check_finished()
    data = config["data"]
    for key in ("vocabulary", "target_vocabulary"):
        if data[key]:
            raise ConfigError(
                f"data.{key} = {data[key]!r}, but a run started from {initial.path} reads that "
                "run's vocabulary (its ids are the ones the model learned): drop data."
                f"{key}"
            )
    source, target = initial.load_tokenizers()
    wanted = TOKENIZERS[data["tokenizer"]]
    for side, tokenizer in (("source", source), ("target", target)):
        if type(tokenizer) is not wanted:
            raise ConfigError(
                f"data.tokenizer = {data['tokenizer']!r}, but the {side} tokenizer of "
                f"{initial.path} is a {type(tokenizer).__name__}: a run started from it keeps "
                "its tokenizers"
            )
    stored = {"model": initial.config()["model"]}
    differences = [
        key for key in config_differences(stored, {"model": config["model"]})
        if key not in _FINE_TUNING_MAY_CHANGE
    ]  # fmt: skip
    if differences:
        raise ConfigError(
            f"The pipeline's model differs from the one in {initial.path} "
            f"({', '.join(differences)}): a run started from it needs its model"
        )
    return _InitialRun(initial, (source, target))


@dataclasses.dataclass
class _Job:
    """What the steps of one `train` call share."""

    checked: CheckedConfig
    run: RunDirectory
    strategy: tf.distribute.Strategy
    backup_dir: Path
    verbose: int | str
    initial: _InitialRun | None = None  # the run `init_from` names

    @property
    def config(self) -> dict:
        return self.checked.config

    @property
    def training(self) -> dict:
        return self.checked.config["training"]


def _train(job: _Job, finished_run: str) -> dict:
    """Reads the data before anything in the run directory is moved or written, then trains
    under the run's lock."""
    run = job.run
    state = run.state()
    run.check_unlocked()
    if state == FINISHED and finished_run != "move":
        raise RunDirectoryError(
            f"{run.path} holds a finished run; train into another directory (keras-s2s train "
            "moves a finished run aside)"
        )
    resume = state == "unfinished" and run.resumable(job.config)
    # No dataset or tokenizer exists yet, so `tf.random.set_seed`'s clearing of TensorFlow's
    # kernel caches is harmless here (unlike later: see `building.reseed`).
    keras.utils.set_random_seed(job.training["seed"])
    tokenizers = run.saved_tokenizers() if resume else None
    if tokenizers is None and job.initial is not None:
        tokenizers = job.initial.tokenizers
    data = PreparedData.load(job.config, tokenizers=tokenizers)
    # The input is good: only now is anything moved or written.
    if state == FINISHED:
        print(f"Moved the earlier run in {run.path} to {run.move_aside()}", file=sys.stderr)
    elif resume:
        print(f"Resuming the unfinished run in {run.path}", file=sys.stderr)
    with run.lock():
        data_figures = _start_run(job, data)
        summary = _fit_marking_the_run(job, data)
    summary = {"pipeline": job.config["name"], "run_dir": str(run.path), **summary, **data_figures}
    run.write_metadata({"training": summary, "status": FINISHED})
    with contextlib.suppress(OSError):  # BackupAndRestore removed its own directory in it.
        (run.path / BACKUP_DIR).rmdir()
    return summary


def _start_run(job: _Job, data: PreparedData) -> dict:
    """Writes the config, tokenizers and "running" metadata; returns the data's figures."""
    config = job.config
    job.run.create(config)
    vocab = job.run.save_tokenizers(data.source_tokenizer, data.target_tokenizer)
    data_figures = {
        "train_examples": data.kept,
        "train_dropped_too_long": data.dropped,
        "skipped_empty": data.skipped,
    }
    job.run.write_metadata(
        {
            "keras_s2s_version": keras_s2s.__version__,
            "pipeline": config["name"],
            "status": "running",
            "max_source_length": config["data"]["max_source_length"],
            "max_target_length": config["data"]["max_target_length"],
            **vocab,
            "data": data_figures,
            **({"init_from": str(job.initial.run.path.resolve())} if job.initial else {}),
        }
    )
    return data_figures


def _fit_marking_the_run(job: _Job, data: PreparedData) -> dict:
    """`_fit` with SIGINT/SIGTERM stopping it after a batch; the run's status says
    "interrupted" (a signal) or "failed" (an error) if it does not end."""
    try:
        with GracefulStop() as stop:
            return _fit(job, data, StopOnSignal(stop))
    except KeyboardInterrupt as e:
        epochs = backed_up_epochs(job.backup_dir)
        with deferred():
            job.run.write_metadata({"status": "interrupted", "interrupted_after_epoch": epochs})
        if isinstance(e, Interrupted):
            raise Interrupted(
                e.signum,
                f"training stopped by {e.signal_name} after epoch {epochs} of "
                f"{job.training['epochs']} (the backup of its last whole epoch is kept in "
                f"{job.run.path / BACKUP_DIR}); train again with the same config and output "
                "directory to resume",
            ) from None
        raise
    except BaseException as e:
        with deferred():
            job.run.write_metadata({"status": "failed", "error": f"{type(e).__name__}: {e}"[:500]})
        raise


@dataclasses.dataclass
class _Callbacks:
    """`fit`'s callbacks, and those the steps after `fit` read."""

    all: list
    checkpoint: RunCheckpoint
    decoding: keras.callbacks.Callback | None
    averaging: CheckpointAverage | None


def _callbacks(job: _Job, data: PreparedData, first: keras.callbacks.Callback) -> _Callbacks:
    """`first`, the epoch timer, the config's decoding, averaging and attention-image
    callbacks, then the checkpoint, early stopping and backup."""
    training, checked, run = job.training, job.checked, job.run
    decoding = decoding_callback(data, training)
    averaging = None
    if training["average_last_epochs"]:
        averaging = CheckpointAverage(training["average_last_epochs"], apply_on_train_end=False)
    # (The attention images callback writes nothing for a model without attention.)
    images = attention_images_callback(data, training, run.path / "logs" / "attention")
    keep_last = training["checkpoint"] == "last"
    checkpoint = RunCheckpoint(run, None if keep_last else checked.monitor, checked.mode)
    # With `training.ema`, the epoch's end from `ema_in` to `ema_out` sees the average.
    ema_in, ema_out = ema_callbacks(training)
    callbacks = [first, EpochTrainSeconds(), *ema_in, decoding, averaging, images, StopOnNaN(run)]
    callbacks += [checkpoint]
    if training["early_stopping_patience"]:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=checked.monitor,
                mode=checked.mode,
                patience=training["early_stopping_patience"],
                restore_best_weights=not keep_last,
            )
        )
    callbacks += [
        *ema_out,
        keras.callbacks.TensorBoard(log_dir=str(run.path / "logs"), profile_batch=0),
        # After the checkpoint: a kill between the two repeats the epoch, never skips it.
        # Each epoch's end: the restarted run repeats at most the interrupted epoch, and the
        # optimizer's step count (the learning rate schedule's) is the completed epochs'.
        keras.callbacks.BackupAndRestore(str(job.backup_dir), double_checkpoint=True),
    ]
    callbacks = [c for c in callbacks if c is not None]
    return _Callbacks(callbacks, checkpoint, decoding, averaging)


def _built_model(job: _Job, data: PreparedData, total_updates: int) -> keras.Model:
    """The compiled model, built under the strategy (`BackupAndRestore` needs a built model);
    with the weights of the run `init_from` named, if any. `total_updates`: the run's length,
    for a learning rate schedule that decays to its end."""
    with job.strategy.scope():
        model = build_compiled_model(job.config, data, total_updates)
        if job.initial is not None:  # (A resumed run's backup then restores its own.)
            model.set_weights(job.initial.run.load_model().get_weights())
    return model


def _fit(job: _Job, data: PreparedData, first_callback) -> dict:
    """Builds and fits the model, keeps the best epoch (or the average of the last ones);
    returns the training figures."""
    training = job.training
    callbacks = _callbacks(job, data, first_callback)
    # A resumed run reads the data from where the interrupted epoch began, so it sees the
    # batches the uninterrupted run would have.
    resumed_epochs = backed_up_epochs(job.backup_dir)
    inputs = data.fit_inputs(
        training, job.checked.needs.fixed_lengths, job.strategy, resumed_epochs
    )
    model = _built_model(job, data, run_updates(training, inputs["steps_per_epoch"]))
    start = time.perf_counter()
    model.fit(**inputs, epochs=training["epochs"], callbacks=callbacks.all, verbose=job.verbose)
    train_seconds = time.perf_counter() - start
    kept, figures, kept_value = _kept_epoch(job, callbacks.checkpoint.history)
    summary = {
        **kept,
        "steps_per_epoch": inputs["steps_per_epoch"],
        "train_seconds": round(train_seconds, 2),
        **figures,
    }
    if resumed_epochs:
        summary["resumed_after_epoch"] = resumed_epochs
    summary["weights_sha256"] = weights_fingerprint(model)
    if callbacks.averaging is not None:
        summary.update(
            _keep_average_if_better(
                model, job, callbacks, kept_value,
                inputs.get("validation_data"), inputs.get("validation_steps"),
            )
        )  # fmt: skip
    return summary


def _kept_epoch(job: _Job, history: dict) -> tuple[dict, dict, float]:
    """Which epoch the run kept (the last, or the best by the monitor) in the run's history
    (this run's epochs after those of the run it resumed), that epoch's logged figures, and
    its monitored value."""
    monitor, mode = job.checked.monitor, job.checked.mode
    values = history.get(monitor, [])
    scored = [epoch for epoch, value in enumerate(values) if value is not None]
    if not scored:
        raise KerasS2SError(f"No epoch logged '{monitor}' (training.monitor)")
    kept = (
        len(values) - 1
        if job.training["checkpoint"] == "last"
        else (min if mode == "min" else max)(scored, key=values.__getitem__)
    )
    which = {
        "epochs": len(values),
        "checkpoint": job.training["checkpoint"],
        "best_epoch": kept + 1,
    }
    figures = {k: float(v[kept]) for k, v in history.items() if v[kept] is not None}
    return which, figures, float(values[kept])


def _keep_average_if_better(
    model, job: _Job, callbacks: _Callbacks, kept_value, validation_data, validation_steps
) -> dict:
    """Sets `model` to the average of the last epochs and measures the monitor for it as the
    epochs measured it (validation loss/accuracy, or the decoding scores of the
    `score_split`). The run keeps the average if it is at least as good as the kept
    epoch. Returns the figures for the summary."""
    monitor, mode = job.checked.monitor, job.checked.mode
    epochs = callbacks.averaging.apply()
    if monitor.startswith("val_"):  # (`check_config` allows only validation values.)
        logs = model.evaluate(validation_data, steps=validation_steps, return_dict=True, verbose=0)
        value = float(logs[monitor.removeprefix("val_")])
    else:
        decoding = callbacks.decoding
        names = {logged: score for score, logged in score_names(decoding.name).items()}
        value = float(decoding.score()[names[monitor]])
    better = value <= kept_value if mode == "min" else value >= kept_value
    if better:
        job.run.save_model(model)
        job.run.write_metadata({"checkpoint_epoch": f"average of epochs {epochs[0]}-{epochs[-1]}"})
    return {
        "averaged_epochs": epochs,
        f"averaged_{monitor}": value,
        "kept": "average" if better else "epoch",
    }
