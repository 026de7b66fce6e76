"""Training a pipeline end to end: data, tokenizers, model, `fit`, run directory."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import keras
import tensorflow as tf

import keras_s2s
from keras_s2s.data.pipeline import count_too_long, make_dataset, prepare_examples
from keras_s2s.data.splits import as_strings, available_splits, load_splits
from keras_s2s.data.vocabulary import build_tokenizers
from keras_s2s.errors import ConfigError
from keras_s2s.models import MODELS
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training.exact_match import ExactMatch
from keras_s2s.training.losses import MaskedSparseCategoricalCrossentropy
from keras_s2s.training.metrics import MaskedAccuracy


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The `tf.distribute` strategy models are built and compiled under.

    "default" is TensorFlow's default strategy (one machine: the first GPU if there is one,
    else the CPU); "one_device" is `tf.distribute.OneDeviceStrategy` on that same device, which
    runs the distributed code path (useful to test it; `model.fit` under it took 1.4x as long
    per epoch on 2 CPU cores, measured on the DLFS2 date attention model).
    """
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "default":
        return tf.distribute.get_strategy()
    raise ConfigError(f"Unknown strategy '{name}' (training.strategy)")


def check_model_config(model_config: dict):
    """Returns `(model class, constructor arguments)`; raises `ConfigError` on unknown keys."""
    arguments = dict(model_config)
    model_type = arguments.pop("type")
    if model_type not in MODELS:
        raise ConfigError(
            f"Unknown model type '{model_type}' (model.type); choose from {', '.join(MODELS)}"
        )
    cls = MODELS[model_type]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    for key in arguments:
        if key not in accepted or key.endswith("vocabulary_size"):
            raise ConfigError(
                f"Unknown config key 'model.{key}' for model type '{model_type}'. "
                f"Known keys: {', '.join(sorted(accepted - {'source_vocabulary_size', 'target_vocabulary_size', 'dtype', 'pad_id'}))}"  # noqa: E501
            )
    return cls, arguments


def static_lengths(model_config: dict, max_source_length: int, max_target_length: int) -> dict:
    """`model_config` with the data's lengths as the model's static lengths, if it has them.

    An unrolled model, one reading fixed-width sources (`mask_source_padding = false`) or one
    given any static length needs `source_length` = `data.max_source_length` and
    `target_length` = `data.max_target_length + 1` (bos + target); they are filled in, or
    checked if given.
    """
    static = any(model_config.get(k) for k in ("unroll", "source_length", "target_length"))
    if not static and model_config.get("mask_source_padding", True):
        return model_config
    expected = {"source_length": max_source_length, "target_length": max_target_length + 1}
    config = {**expected, **model_config}
    for key, value in expected.items():
        if config[key] != value:
            raise ConfigError(
                f"model.{key}={config[key]} does not match the data (expected {value} from "
                "data.max_source_length / data.max_target_length + 1); leave it out to derive it"
            )
    return config


def build_model(
    model_config: dict,
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
):
    """Builds the model a pipeline's `model` section describes (its constructor arguments).

    With the data's max lengths, an unrolled model gets its static lengths from them (see
    `static_lengths`).
    """
    if max_source_length is not None and max_target_length is not None:
        model_config = static_lengths(model_config, max_source_length, max_target_length)
    cls, arguments = check_model_config(model_config)
    try:
        return cls(
            source_vocabulary_size=source_vocabulary_size,
            target_vocabulary_size=target_vocabulary_size,
            **arguments,
        )
    except (ValueError, TypeError) as e:
        raise ConfigError(f"Invalid model config: {e}") from None


def compile_model(model: keras.Model, training: dict) -> keras.Model:
    """Compiles with Adam, global-norm clipping, the masked loss and masked token accuracy."""
    clip = training["global_clipnorm"] or None
    model.compile(
        optimizer=keras.optimizers.Adam(training["learning_rate"], global_clipnorm=clip),
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[MaskedAccuracy()],
        jit_compile=training["jit_compile"],
        steps_per_execution=training["steps_per_execution"],
    )
    return model


class _EpochTrainSeconds(keras.callbacks.Callback):
    """Logs `epoch_train_seconds`: the epoch's training steps only (no validation, no callbacks)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_train_seconds"] = self._end - self._start


def _count_batches(dataset: tf.data.Dataset) -> int:
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def train(config: dict, output_dir: str | Path, verbose: int | str = "auto") -> dict:
    """Trains `config` (a merged pipeline config) into the run directory `output_dir`.

    The run directory gets the config and tokenizers before training starts and the best model
    after each improving epoch, so an interrupted run still leaves a usable model.

    Returns a summary dict (the figures `keras-s2s train` prints).
    """
    data, training = config["data"], config["training"]
    check_model_config(config["model"])  # Fail on a config typo before any data work.
    max_source, max_target = data["max_source_length"], data["max_target_length"]
    model_config = static_lengths(config["model"], max_source, max_target)
    keras.utils.set_random_seed(training["seed"])
    run = RunDirectory(output_dir)
    has_validation = "validation" in available_splits(data)
    exact_match_split = training["exact_match_split"]
    monitor = training["monitor"]
    if not has_validation and monitor.startswith("val_"):
        monitor = monitor.removeprefix("val_")  # No validation data: the training value.
    logged = {"loss", "token_accuracy"}
    logged |= {f"val_{name}" for name in logged} if has_validation else set()
    logged |= {f"{exact_match_split}_exact_match"} if exact_match_split else set()
    if monitor not in logged:
        raise ConfigError(
            f"training.monitor='{monitor}' is not logged by this run; "
            f"choose from {', '.join(sorted(logged))}"
        )
    mode = "min" if monitor.endswith("loss") else "max"
    wanted = {"train", exact_match_split} | ({"validation"} if has_validation else set())
    splits = load_splits(
        data, splits=tuple(s for s in ("train", "validation", "test") if s in wanted)
    )
    train_sources, train_targets = as_strings(splits["train"])
    if not train_sources:
        raise ConfigError("The training split is empty")
    source_tokenizer, target_tokenizer = build_tokenizers(data, train_sources, train_targets)
    kept, dropped = count_too_long(
        prepare_examples(splits["train"], source_tokenizer, target_tokenizer),
        max_source,
        max_target,
    )
    if kept == 0:
        raise ConfigError(
            f"Every training example is longer than data.max_source_length={max_source} or "
            f"data.max_target_length={max_target}"
        )
    run.create(config)
    vocab = run.save_tokenizers(source_tokenizer, target_tokenizer)
    run.write_metadata(
        {
            "keras_s2s_version": keras_s2s.__version__,
            "pipeline": config["name"],
            "max_source_length": max_source,
            "max_target_length": max_target,
            **vocab,
            "data": {"train_examples": kept, "train_dropped_too_long": dropped},
        }
    )

    def dataset(split, shuffle):
        return make_dataset(
            splits[split],
            source_tokenizer,
            target_tokenizer,
            max_source_length=max_source,
            max_target_length=max_target,
            batch_tokens=training["batch_tokens"],
            bucket_width=data["bucket_width"],
            shuffle_buffer=data["shuffle_buffer"] if shuffle else 0,
            seed=training["seed"],
            batch_size=training["batch_size"],
            fixed_lengths=model_config.get("source_length") is not None,
        )

    callbacks = [_EpochTrainSeconds()]
    if exact_match_split:
        sources, references = as_strings(splits[exact_match_split])
        callbacks.append(
            ExactMatch(
                sources, references, source_tokenizer, target_tokenizer, max_source, max_target,
                name=f"{exact_match_split}_exact_match",
            )
        )  # fmt: skip

    strategy = make_strategy(training["strategy"])
    with strategy.scope():
        model = build_model(
            model_config, source_tokenizer.vocabulary_size, target_tokenizer.vocabulary_size
        )
        compile_model(model, training)

    callbacks += [
        keras.callbacks.ModelCheckpoint(
            run.model_path, monitor=monitor, mode=mode, save_best_only=True
        ),
        keras.callbacks.TensorBoard(log_dir=str(run.path / "logs"), profile_batch=0),
    ]
    if training["early_stopping_patience"]:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=training["early_stopping_patience"],
                restore_best_weights=True,
            )
        )
    # An epoch's batch count depends only on the example lengths (each bucket ends with one
    # partial batch), so one pass counts it; fit then reads one endless iterator instead of
    # tearing one down each epoch, which stalls (tf.data discards a half-read cache). Keras
    # keeps the validation iterator across epochs when given steps, so it repeats too.
    train_dataset = dataset("train", shuffle=True)
    validation = {}
    if has_validation:
        validation_dataset = dataset("validation", shuffle=False)
        validation = {
            "validation_data": validation_dataset.repeat(),
            "validation_steps": _count_batches(validation_dataset),
        }
    start = time.perf_counter()
    history = model.fit(
        train_dataset.repeat(),
        steps_per_epoch=_count_batches(train_dataset),
        **validation,
        shuffle=False,  # The tf.data pipeline shuffles, under the config's seed.
        epochs=training["epochs"],
        callbacks=callbacks,
        verbose=verbose,
    )
    train_seconds = time.perf_counter() - start
    values = history.history[monitor]
    best = (min if mode == "min" else max)(range(len(values)), key=values.__getitem__)
    summary = {
        "pipeline": config["name"],
        "run_dir": str(run.path),
        "epochs": len(values),
        "best_epoch": best + 1,
        "train_seconds": round(train_seconds, 2),
        "train_examples": kept,
        "train_dropped_too_long": dropped,
        **{k: float(v[best]) for k, v in history.history.items()},
    }
    run.write_metadata({"training": summary, "history": history.history})
    return summary
