"""Pipeline configuration: defaults, named pipelines and validation.

A pipeline is one small TOML file in `pipelines/` whose sections (`data`, `model`, `training`,
`evaluation`) are merged over `DEFAULTS`. The `model` section holds the model's constructor
arguments (plus `type`), so config files, `.keras` files and keras-tuner share one source of
truth.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
import warnings
from pathlib import Path
from typing import Any

from keras_s2s.errors import ConfigError
from keras_s2s.registry import DATA_SOURCES, TOKENIZERS, TUNERS

DEFAULTS: dict[str, Any] = {
    "name": "",
    "description": "",
    "data": {
        # "tfds" (a built-in or installed TFDS builder), "text" (aligned source/target files),
        # "tsv" (source<TAB>target lines), "dlfs2" (source_target lines), or a data source
        # registered with keras_s2s.data.register_source.
        "source": "tfds",
        "name": "date_normalization",
        "config": "default",
        "data_dir": "",
        # File sources: a split is [source_file, target_file] for "text", [file] otherwise.
        "train": [],
        "validation": [],
        "test": [],
        # File sources without validation/test files hold out this many shuffled examples.
        "validation_size": 0,
        "test_size": 0,
        "holdout_seed": 1984,
        "tokenizer": "char",
        "shared_vocabulary": True,
        "vocabulary_size": 8000,
        # A user's own SentencePiece model (tokenizer = "sentencepiece") or character
        # vocabulary file (tokenizer = "char"); empty means "build from the training split".
        "vocabulary": "",
        "target_vocabulary": "",
        "max_source_length": 64,
        "max_target_length": 64,
        "bucket_width": 8,
        "shuffle_buffer": 20000,
        # Training batches are shuffled too (a buffer of this many batches; 0: off), or the
        # buckets' last, partial batches come at the end of each epoch in length order.
        "batch_shuffle_buffer": 512,
    },
    "model": {
        "type": "seq2seq",
    },
    "training": {
        "epochs": 10,
        "batch_tokens": 4096,
        # Examples per batch instead of a token budget (0: bucket by length under
        # batch_tokens). Models with static lengths (model.unroll) get fixed-shape batches.
        "batch_size": 0,
        # The learning rate of "constant"; the formula's `scale` of "inverse_sqrt".
        "learning_rate": 1e-3,
        # "constant": `learning_rate` at every update. "inverse_sqrt": the Transformer's
        # warm-up (`keras_s2s.training.InverseSquareRootSchedule`), at update n = 1, 2, ...
        #   lr(n) = learning_rate * schedule_dim^-0.5 * min(n^-0.5, n * warmup_steps^-1.5)
        # rising linearly to its peak at n = warmup_steps, then falling as n^-0.5; there
        # `learning_rate` is a multiplier (the paper: 1.0), not a rate. "cosine": linear
        # warm-up to `learning_rate` at n = warmup_steps, then a half cosine down to 0 over
        # `decay_steps` updates (`keras_s2s.training.WarmupCosineSchedule`).
        "learning_rate_schedule": "constant",
        "warmup_steps": 4000,
        # Updates of "cosine"'s decay from the peak to 0; 0: to the run's last update
        # (epochs x batches per epoch / accumulation_steps - warmup_steps).
        "decay_steps": 0,
        # d_model of "inverse_sqrt": the model's width (`hidden_dim`, 512 in the paper).
        "schedule_dim": 512,
        # Adam's moment decay rates and epsilon, Keras's defaults (the Transformer paper:
        # 0.9, 0.98, 1e-9).
        "adam_beta_1": 0.9,
        "adam_beta_2": 0.999,
        "adam_epsilon": 1e-7,
        # Label smoothing eps of the masked loss, in [0, 1) (the Transformer paper: 0.1).
        "label_smoothing": 0.0,
        # Global-norm gradient clipping (Keras `global_clipnorm`); 0 turns clipping off.
        "global_clipnorm": 5.0,
        # Gradient accumulation: one update per N batches, with their gradients' mean (Keras
        # optimizers' `gradient_accumulation_steps`): N batches of B tokens update as one batch
        # of N x B when the batches hold equal token counts, under every strategy
        # (`AccumulatingAdam`). 1: an update per batch. The learning rate schedule counts
        # updates (`warmup_steps` are updates).
        "accumulation_steps": 1,
        # Weight averaging during training: the momentum m of an exponential moving average of
        # the weights (Keras optimizers' `use_ema`: average <- m * average + (1 - m) * weights
        # after every update), which every epoch's validation, decoding scores, checkpoint and
        # `average_last_epochs` use (`keras_s2s.training.EMAWeights`); 0: off.
        "ema": 0.0,
        "seed": 42,
        "jit_compile": False,
        # The model's dtype policy: "float32", "mixed_float16" or "mixed_bfloat16" (logits
        # and softmax stay float32; float16 gets Keras's loss scaling).
        "precision": "float32",
        "steps_per_execution": 1,
        "early_stopping_patience": 0,
        # The model a run keeps: "best" by `monitor`, or "last" (the last epoch's).
        "checkpoint": "best",
        # Average the weights of the last N epochs when training ends (0: off). The run keeps
        # the average if its `monitor` value on validation is at least the kept epoch's.
        "average_last_epochs": 0,
        # The best checkpoint is chosen by this logged value (without validation data, the
        # training value of the same name, e.g. "token_accuracy"); never a test value.
        "monitor": "val_token_accuracy",
        # "validation" or "test": log whole-sequence exact match, sacreBLEU and chrF on that
        # split after every epoch (free-running greedy decoding) as "<split>_exact_match",
        # "<split>_bleu" and "<split>_chrf"; "" turns it off.
        "score_split": "",
        # Score `score_split` after every N-th epoch and the last (N = 1: every epoch), and
        # only its first M examples (0: all of them): less time decoding, while the checkpoint
        # is still chosen among the scored epochs.
        "score_every": 1,
        "score_examples": 0,
        # Models with attention: after each epoch, write the attention heatmaps of the first N
        # validation sources (else training sources) to TensorBoard (logs/attention); 0: off.
        "attention_images": 1,
        # The tf.distribute strategy (keras_s2s.training.make_strategy): "default",
        # "one_device", "mirrored" (local GPUs), "multi_worker" (TF_CONFIG) or "auto".
        "strategy": "default",
    },
    "evaluation": {
        # Sentences decoded at once (`keras_s2s.translator.DECODING_BATCH_SIZE`).
        "batch_size": 512,
        # `keras-s2s evaluate` scores greedy decoding, then beam search of this size (1: greedy
        # only) with this GNMT length penalty alpha (0: plain log-probabilities); choose both
        # on the validation split.
        "beam_size": 4,
        "length_penalty": 0.0,
        # Example sources `keras-s2s run` translates at the end, with this beam size.
        "examples": [],
        "examples_beam_size": 4,
    },
    "search": {
        # `keras-s2s tune`: what a trial scores, after its last epoch (free-running greedy
        # decoding of the validation split, or the validation loss): "validation_bleu",
        # "validation_chrf", "validation_exact_match" or "val_loss"; "" picks BLEU for
        # SentencePiece pipelines, exact match for character ones.
        "objective": "",
        "tuner": "random",
        "max_trials": 10,
        # Epochs a trial trains (Hyperband: the most); 0 takes training.epochs.
        "epochs": 0,
        "seed": 1,
        # {"model.KEY" or "training.KEY": [values] (a choice) or {min, max, step, sampling}
        # (an int or float range; sampling "linear" or "log")}. Empty: the model family's
        # defaults (`search_space()`) and a learning-rate range. "model.type" may be searched
        # too (a cross-family search); a family's own keys then apply to it only.
        "space": {},
    },
}

# The strategies of `keras_s2s.training.make_strategy`.
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "auto")

_CHOICES = {
    ("data", "source"): DATA_SOURCES,
    ("data", "tokenizer"): TOKENIZERS,
    ("training", "strategy"): STRATEGIES,
    ("training", "score_split"): ("", "validation", "test"),
    ("training", "checkpoint"): ("best", "last"),
    ("training", "learning_rate_schedule"): ("constant", "inverse_sqrt", "cosine"),
    ("training", "precision"): ("float32", "mixed_float16", "mixed_bfloat16"),
    ("search", "tuner"): TUNERS,
    ("search", "objective"): (
        "",
        "validation_bleu",
        "validation_chrf",
        "validation_exact_match",
        "val_loss",
    ),
}
_POSITIVE = {
    ("data", "max_source_length"),
    ("data", "max_target_length"),
    ("data", "bucket_width"),
    ("data", "vocabulary_size"),
    ("data", "shuffle_buffer"),
    ("training", "epochs"),
    ("training", "batch_tokens"),
    ("training", "learning_rate"),
    ("training", "steps_per_execution"),
    ("training", "accumulation_steps"),
    ("training", "score_every"),
    ("training", "warmup_steps"),
    ("training", "schedule_dim"),
    ("training", "adam_epsilon"),
    ("evaluation", "batch_size"),
    ("evaluation", "examples_beam_size"),
    ("evaluation", "beam_size"),
    ("search", "max_trials"),
}
_NON_NEGATIVE = {
    ("data", "validation_size"),
    ("data", "test_size"),
    ("data", "batch_shuffle_buffer"),
    ("training", "global_clipnorm"),
    ("training", "early_stopping_patience"),
    ("training", "average_last_epochs"),
    ("training", "decay_steps"),
    ("training", "score_examples"),
    ("training", "attention_images"),
    ("training", "batch_size"),
    ("evaluation", "length_penalty"),
    ("search", "epochs"),
}
# In [0, 1).
_FRACTION = {
    ("training", "adam_beta_1"),
    ("training", "adam_beta_2"),
    ("training", "label_smoothing"),
    ("training", "ema"),
}


def pipelines_directory() -> Path:
    """The folder of named pipelines: `$KERAS_S2S_PIPELINES`, else the copy shipped in an
    installed wheel (`keras_s2s/pipelines/`), else the repository's `pipelines/` (a source
    checkout or an editable install)."""
    env = os.environ.get("KERAS_S2S_PIPELINES")
    if env:
        return Path(env)
    shipped = Path(__file__).resolve().parent / "pipelines"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[1] / "pipelines"


def available_pipelines() -> list[str]:
    folder = pipelines_directory()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def merge(base: dict, override: dict) -> dict:
    """Deep-merges `override` into a copy of `base`."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: Keys renamed since pipelines and runs were written with them: `(section, old) -> new`.
RENAMED_KEYS = {("training", "exact_match_split"): "score_split"}


def migrate(raw: dict, origin: str, warn: bool = True) -> dict:
    """Renames the `RENAMED_KEYS` in a raw config (a pipeline file's, a saved run's), in place,
    with a `FutureWarning` naming each (unless `warn` is False: a run's own `config.json`).
    Both names given is a `ConfigError`. Returns `raw`."""
    for (section, old), new in RENAMED_KEYS.items():
        values = raw.get(section)
        if not isinstance(values, dict) or old not in values:
            continue
        if new in values:
            raise ConfigError(
                f"'{section}.{old}' and '{section}.{new}' both given in {origin}: "
                f"'{old}' is the old name of '{new}'; keep '{new}'"
            )
        if warn:
            warnings.warn(
                f"'{section}.{old}' in {origin} is now '{section}.{new}'; rename it",
                FutureWarning,
                stacklevel=3,
            )
        values[new] = values.pop(old)
    return raw


def load_pipeline(name_or_path: str) -> dict:
    """Loads a named pipeline (or a path to a TOML file) merged over `DEFAULTS`, validated."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = pipelines_directory() / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(
                f"Unknown pipeline '{name_or_path}'. "
                f"Available: {', '.join(available_pipelines()) or '(none found)'}; "
                "or pass the path to a .toml file."
            )
    elif not path.is_file():
        raise ConfigError(f"Pipeline file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"Cannot parse pipeline file {path}: {e}") from None
    raw.setdefault("name", path.stem)
    config = merge(DEFAULTS, migrate(raw, str(path)))
    validate(config, origin=str(path))
    _resolve_paths(config["data"], path.parent)
    return config


_PATH_KEYS = ("train", "validation", "test", "vocabulary", "target_vocabulary", "data_dir")


def _resolve_paths(data: dict, folder: Path) -> None:
    """Relative file paths in a pipeline file are relative to that file's folder."""

    def resolve(value: str) -> str:
        return value if not value or os.path.isabs(value) else os.path.normpath(folder / value)

    for key in _PATH_KEYS:
        value = data[key]
        data[key] = [resolve(v) for v in value] if isinstance(value, list) else resolve(value)


def parse_override(assignment: str) -> tuple[str, Any]:
    """Parses `section.key=value` (value in TOML syntax, bare words taken as strings)."""
    if "=" not in assignment:
        raise ConfigError(f"Invalid --set '{assignment}': expected section.key=value")
    key, value = assignment.split("=", 1)
    key = key.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


def apply_overrides(config: dict, overrides: dict[str, Any]) -> dict:
    """Applies `{"section.key": value}` overrides (e.g. from CLI flags) and re-validates."""
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ConfigError(f"Invalid config key '{dotted}': expected section.key")
        section, key = parts
        if (section, key) in RENAMED_KEYS:
            key = migrate({section: {key: value}}, "the overrides")[section].popitem()[0]
        if section not in DEFAULTS or not isinstance(DEFAULTS[section], dict):
            sections = ", ".join(k for k, v in DEFAULTS.items() if isinstance(v, dict))
            raise ConfigError(
                f"Unknown config section '{section}' in '{dotted}'. Known sections: {sections}"
            )
        config[section][key] = value
    validate(config, origin="overrides")
    return config


def validate(config: dict, origin: str = "config") -> None:
    """Raises `ConfigError` naming the first unknown key or invalid value."""
    for key in config:
        if key not in DEFAULTS:
            raise ConfigError(f"Unknown config key '{key}' in {origin}")
    for section, defaults in DEFAULTS.items():
        if not isinstance(defaults, dict):
            continue
        values = config[section]
        if not isinstance(values, dict):
            raise ConfigError(f"Config key '{section}' in {origin} must be a table")
        if section == "model":
            # Model arguments are checked against the model's constructor when it is built.
            if not isinstance(values.get("type"), str):
                raise ConfigError(f"Config key 'model.type' in {origin} must be a string")
            continue
        for key, value in values.items():
            where = (section, key)
            if key not in defaults:
                raise ConfigError(
                    f"Unknown config key '{section}.{key}' in {origin}. "
                    f"Known keys: {', '.join(sorted(defaults))}"
                )
            default = defaults[key]
            if not type_ok(value, default):
                raise ConfigError(
                    f"Invalid value for '{section}.{key}' in {origin}: {value!r} "
                    f"(expected {type(default).__name__})"
                )
            if where in _CHOICES and value not in _CHOICES[where]:
                raise ConfigError(
                    f"Invalid value for '{section}.{key}' in {origin}: {value!r} "
                    f"(choose from {', '.join(_CHOICES[where])})"
                )
            if where in _POSITIVE and not value > 0:
                raise ConfigError(
                    f"Invalid value for '{section}.{key}' in {origin}: {value!r} (must be > 0)"
                )
            if where in _NON_NEGATIVE and value < 0:
                raise ConfigError(
                    f"Invalid value for '{section}.{key}' in {origin}: {value!r} (must be >= 0)"
                )
            if where in _FRACTION and not 0 <= value < 1:
                raise ConfigError(
                    f"Invalid value for '{section}.{key}' in {origin}: {value!r} "
                    "(must be in [0, 1))"
                )


def type_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, list)
    return isinstance(value, type(default))


def dumps(config: dict) -> str:
    return json.dumps(config, indent=2, sort_keys=True)
