"""keras-tuner HyperModels over pipeline configs: `hp` maps only to the keys of a pipeline's
`[model]` and `[training]` sections, so a trial is a pipeline config that `keras-s2s train`
takes as is."""

from __future__ import annotations

import copy

import keras_tuner

from keras_s2s.checks import check_config
from keras_s2s.config import DEFAULTS
from keras_s2s.errors import ConfigError
from keras_s2s.models import MODELS
from keras_s2s.tokenizers import TOKENIZERS
from keras_s2s.training.building import build_compiled_model
from keras_s2s.training.callbacks import decoding_callback, ema_callbacks
from keras_s2s.training.optimizers import needs_run_length, run_updates
from keras_s2s.training.prepared import PreparedData, count_batches

#: Objectives of free-running decoding (logged by `ExactMatch` on the validation split) or
#: the validation loss; teacher-forced token accuracy is not one.
OBJECTIVES = {
    "validation_bleu": "max",
    "validation_chrf": "max",
    "validation_exact_match": "max",
    "val_loss": "min",
}
_SAMPLINGS = ("linear", "log", "reverse_log")


def objective_name(config: dict) -> str:
    """`search.objective`, or by default the tokenizer's (`Tokenizer.search_objective`):
    validation BLEU for subword pipelines, validation exact match for character ones."""
    return config["search"]["objective"] or TOKENIZERS[config["data"]["tokenizer"]].search_objective


def default_space(config: dict) -> dict:
    """The pipeline family's `search_space()` (as `model.*` keys) and a learning-rate range
    that suits `training.learning_rate_schedule` (a rate, or the inverse-sqrt scale)."""
    family = MODELS[config["model"]["type"]]
    space = {f"model.{key}": spec for key, spec in family.search_space().items()}
    if config["training"]["learning_rate_schedule"] == "inverse_sqrt":
        space["training.learning_rate"] = {"min": 0.2, "max": 2.0, "sampling": "log"}
    else:
        space["training.learning_rate"] = {"min": 3e-4, "max": 1e-2, "sampling": "log"}
    return space


def check_space(space: dict, config: dict) -> dict:
    """Raises `ConfigError` naming the first bad entry of a search space; returns it."""
    if not isinstance(space, dict) or not space:
        raise ConfigError("search.space must be a non-empty table of 'section.key' entries")
    types = space.get("model.type", [config["model"]["type"]])
    if not isinstance(types, list) or not types or any(t not in MODELS for t in types):
        raise ConfigError(
            f"search.space 'model.type' must be a list of model types ({', '.join(MODELS)})"
        )
    for key, spec in space.items():
        section, _, name = key.partition(".")
        if section == "model":
            if name != "type" and not any(name in MODELS[t].config_arguments() for t in types):
                raise ConfigError(
                    f"search.space '{key}': no searched model type ({', '.join(types)}) has "
                    f"an argument '{name}'"
                )
        elif section == "training":
            if name not in DEFAULTS["training"] or name in ("strategy", "score_split"):
                raise ConfigError(f"search.space '{key}': not a searchable training key")
        else:
            raise ConfigError(
                f"search.space '{key}': only 'model.*' and 'training.*' keys are searched (the "
                "data, and so the tokenizers, stay fixed)"
            )
        if isinstance(spec, list):
            if not spec or len({type(v) for v in spec}) != 1:
                raise ConfigError(f"search.space '{key}': a choice needs values of one type")
        elif isinstance(spec, dict):
            if set(spec) - {"min", "max", "step", "sampling"} or not {"min", "max"} <= set(spec):
                raise ConfigError(
                    f"search.space '{key}': a range is {{min, max}} with optional step and "
                    f"sampling; got {sorted(spec)}"
                )
            if not spec["min"] < spec["max"]:
                raise ConfigError(f"search.space '{key}': min must be below max")
            if spec.get("sampling", "linear") not in _SAMPLINGS:
                raise ConfigError(
                    f"search.space '{key}': sampling must be one of {', '.join(_SAMPLINGS)}"
                )
        else:
            raise ConfigError(
                f"search.space '{key}': expected a list of choices or a {{min, max}} range"
            )
    return space


def _declare(hp: keras_tuner.HyperParameters, name: str, spec):
    if isinstance(spec, list):
        if isinstance(spec[0], bool):  # keras-tuner's Choice turns bools into ints.
            if len(set(spec)) == 1:
                return hp.Fixed(name, spec[0])
            return hp.Boolean(name, default=spec[0])
        return hp.Choice(name, spec)
    kwargs = {"sampling": spec.get("sampling", "linear")}
    if "step" in spec:
        kwargs["step"] = spec["step"]
    if all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max")):
        return hp.Int(name, spec["min"], spec["max"], **kwargs)
    return hp.Float(name, float(spec["min"]), float(spec["max"]), **kwargs)


class PipelineHyperModel(keras_tuner.HyperModel):
    """The keras-tuner `HyperModel` of a pipeline: each trial is the pipeline's config with
    the searched `model.*` / `training.*` keys set by `hp`.

    The space is `config["search"]["space"]`, or the family's default (`default_space`). With
    `model.type` in the space the family itself is a hyperparameter (a cross-family search):
    a key only some of the searched families take is declared under a keras-tuner condition on
    `model.type`, and the pipeline's own `[model]` keys apply to the families that take them.
    Trials read one `PreparedData` (the tokenizers stay fixed), log the decoding scores on the
    validation split after each epoch (`ExactMatch`), and are scored by `objective_name`.

    Args:
        config: a merged pipeline config (`keras_s2s.config.load_pipeline`).
        data: its `keras_s2s.training.PreparedData` (default: loaded at the first trial).

    Example:
    ```python
    config = keras_s2s.config.load_pipeline("date_attention")
    tuner = keras_tuner.RandomSearch(
        keras_s2s.tuning.PipelineHyperModel(config),
        objective=keras_tuner.Objective("validation_exact_match", "max"),
        max_trials=5, directory="tuning", project_name="date_attention")
    tuner.search(epochs=2)
    ```
    """

    def __init__(self, config: dict, data=None):
        super().__init__(name=config.get("name") or "keras_s2s")
        config = copy.deepcopy(config)
        if not config["training"]["score_split"] and objective_name(config) != "val_loss":
            config["training"]["score_split"] = "validation"
        self.config = config
        self.space = check_space(config["search"]["space"] or default_space(config), config)
        self._data = data
        self.trials_run = 0  # Trials this process trained.

    @property
    def data(self):
        if self._data is None:
            self._data = PreparedData.load(self.config)
            if "validation" not in self._data.splits:
                raise ConfigError(
                    "A search scores trials on the validation split; this pipeline has none "
                    "(set data.validation or data.validation_size)"
                )
        return self._data

    def trial_config(self, hp: keras_tuner.HyperParameters) -> dict:
        """The pipeline config of the trial `hp` describes (declaring the space in `hp`)."""
        config = copy.deepcopy(self.config)
        types = self.space.get("model.type")
        family = _declare(hp, "model.type", types) if types else config["model"]["type"]
        for key, spec in self.space.items():
            if key == "model.type":
                continue
            section, _, name = key.partition(".")
            takers = [t for t in types or [family] if name in MODELS[t].config_arguments()]
            if section == "model" and types and len(takers) < len(types):
                with hp.conditional_scope("model.type", takers):
                    value = _declare(hp, key, spec)
            else:
                value = _declare(hp, key, spec)
            if value is not None and (section != "model" or family in takers):
                config[section][name] = value
        if config["model"]["type"] != family:
            accepted = MODELS[family].config_arguments()
            model = {k: v for k, v in config["model"].items() if k in accepted}
            config["model"] = {**model, "type": family}
        return config

    def build(self, hp):
        """The trial's compiled model; a schedule that decays to the run's end decays over
        `search.epochs` (else `training.epochs`) epochs of the trial's batches."""
        config = self.trial_config(hp)
        needs = check_config(config).needs
        training, updates = config["training"], None
        if needs_run_length(training):  # One pass over the trial's batches to count them.
            data = self.data.renewed()  # (keras-tuner cleared the session before building)
            batches = count_batches(data.dataset("train", training, needs.fixed_lengths))
            updates = run_updates(training, batches, config["search"]["epochs"])
        return build_compiled_model(config, self.data, updates)

    def fit(self, hp, model, *args, callbacks=None, epochs=None, **kwargs):
        """Trains one trial on the pipeline's data: `epochs` (Hyperband's bracket, else
        `search.epochs` or `training.epochs`), keras-tuner's `callbacks` after the decoding
        one (so they see its scores), other keyword arguments to `model.fit`."""
        del args
        config = self.trial_config(hp)
        needs = check_config(config).needs
        # keras-tuner cleared the session before building this trial's model.
        training, data = config["training"], self.data.renewed()
        decoding = decoding_callback(data, training)
        ema_in, ema_out = ema_callbacks(training)  # (keras-tuner's see the average)
        verbose = kwargs.pop("verbose", "auto")  # keras-tuner passes `search`'s
        self.trials_run += 1
        return model.fit(
            **data.fit_inputs(training, needs.fixed_lengths),
            epochs=epochs or config["search"]["epochs"] or training["epochs"],
            callbacks=[
                *ema_in,
                *[c for c in [decoding] if c is not None],
                *(callbacks or []),
                *ema_out,
            ],
            verbose=verbose,
            **kwargs,
        )
