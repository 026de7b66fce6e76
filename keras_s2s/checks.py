"""Checking a merged pipeline config whole, before any data is read or anything is written.

`check_config` is what every command runs first (`train`, `run`, `tune`, the CLI's config
loading): unknown keys and invalid values of every section (the model's included, by its
family), a checkpoint monitor the run would not log, and a model chosen on the test split are
all `ConfigError`s. It returns a `CheckedConfig`: the config with what the checks derived
(the model family, what it needs from the data, the monitored value).
"""

from __future__ import annotations

import dataclasses
import inspect

from keras_s2s.config import type_ok, validate
from keras_s2s.data.splits import available_splits
from keras_s2s.errors import ConfigError
from keras_s2s.models import MODELS, DataNeeds


@dataclasses.dataclass(frozen=True)
class CheckedConfig:
    """A merged pipeline config that passed `check_config`, with what the checks derived.

    Attributes:
        config: the config itself.
        model_class: the model family's class (`model.type`).
        needs: what the model needs from the data (its arguments completed from the data's
            max lengths, and whether batches have fixed lengths).
        monitor: the logged value the checkpoint and early stopping follow.
        mode: "min" or "max": which way `monitor` is better.
    """

    config: dict
    model_class: type
    needs: DataNeeds
    monitor: str
    mode: str


def check_config(config: dict) -> CheckedConfig:
    """Checks a merged pipeline config as far as it can be without data (see the module)."""
    validate(config)
    data = config["data"]
    cls, needs = check_model_config(
        config["model"], data["max_source_length"], data["max_target_length"]
    )
    monitor, mode = _monitor_and_mode(config)
    return CheckedConfig(config, cls, needs, monitor, mode)


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


def score_names(name: str = "exact_match") -> dict[str, str]:
    """`{score: logged name}` of the scores a decoding callback logs with its exact match
    logged as `name`: "validation_exact_match" -> "validation_bleu", "validation_chrf";
    "em" -> "em_bleu", "em_chrf"."""
    suffix = "exact_match"
    prefix = name[: -len(suffix)] if name.endswith(suffix) else f"{name}_"
    return {"exact_match": name, "bleu": f"{prefix}bleu", "chrf": f"{prefix}chrf"}


def _monitor_and_mode(config: dict) -> tuple[str, str]:
    """The logged value the checkpoint (and early stopping) follows, and "min" or "max".

    Without validation data, a `val_` monitor falls back to the training value of that name.
    Nothing may be chosen on the test split: a monitor on it is refused (log the test split's
    exact match with `score_split = "test"` and keep the last epoch instead).
    """
    training = config["training"]
    has_validation = "validation" in available_splits(config["data"])
    score_split = training["score_split"]
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
    if score_split:
        logged |= set(score_names(f"{score_split}_exact_match").values())
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
