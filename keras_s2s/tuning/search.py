"""`tune`: a keras-tuner search over a pipeline, local or distributed, resumable."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import keras_tuner

from keras_s2s.errors import ConfigError
from keras_s2s.registry import TUNERS
from keras_s2s.tuning.hypermodel import OBJECTIVES, PipelineHyperModel, objective_name


def is_search_chief() -> bool:
    """Whether this process reports the search: always, except as a keras-tuner worker
    (`KERASTUNER_TUNER_ID` other than "chief" with `KERASTUNER_ORACLE_IP` set)."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return True
    return os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief"


def make_tuner(
    hypermodel: PipelineHyperModel,
    tuner: str = "random",
    max_trials: int = 10,
    directory: str | Path = "tuning",
    project_name: str | None = None,
    seed: int | None = 1,
) -> keras_tuner.Tuner:
    """A keras-tuner tuner of `hypermodel` (its objective, direction and epochs from the
    pipeline). The search state lives in `directory/project_name`: a tuner made again there
    (overwrite off) resumes it, running no completed trial again. keras-tuner's distributed
    mode (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`) applies as
    it is: the chief serves the oracle, workers run trials."""
    if tuner not in TUNERS:
        raise ConfigError(f"Unknown tuner '{tuner}'; choose from {', '.join(TUNERS)}")
    config = hypermodel.config
    name = objective_name(config)
    objective = keras_tuner.Objective(name, OBJECTIVES[name])
    common = {
        "hypermodel": hypermodel,
        "objective": objective,
        "directory": str(directory),
        "project_name": project_name or config["name"] or "search",
        "seed": seed,
        "overwrite": False,
    }
    epochs = config["search"]["epochs"] or config["training"]["epochs"]
    return TUNERS[tuner](max_trials, epochs, **common)


def trials_table(tuner: keras_tuner.Tuner) -> list[dict]:
    """Every trial of the search: id, status, score and hyperparameters, best first."""
    direction = tuner.oracle.objective.direction
    rows = [
        {
            "trial": trial.trial_id,
            "status": trial.status,
            "score": trial.score,
            "hyperparameters": {
                k: v
                for k, v in trial.hyperparameters.values.items()
                if trial.hyperparameters.is_active(k)
            },
        }
        for trial in tuner.oracle.trials.values()
    ]

    def order(row):
        if row["score"] is None:
            return float("inf")
        return -row["score"] if direction == "max" else row["score"]

    return sorted(rows, key=order)


def write_pipeline(config: dict, path: str | Path) -> Path:
    """Writes a merged config as a pipeline TOML file that `keras-s2s train` takes as is."""
    import tomli_w

    def without_none(value):  # TOML has no null: a None argument takes its default.
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        return value

    path = Path(path)
    config = without_none(copy.deepcopy(config))
    name = config.pop("name", "")
    config["description"] = config.get("description") or f"Best configuration of {name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


def tune(
    config: dict,
    directory: str | Path = "tuning",
    tuner: str | None = None,
    max_trials: int | None = None,
    data=None,
    verbose: int = 1,
) -> dict:
    """Runs (or resumes) a keras-tuner search over `config` (a merged pipeline config).

    `tuner` and `max_trials` default to `search.tuner` / `search.max_trials`. On the chief
    (or without distribution), returns the trials table, the best hyperparameters and score,
    and writes the best trial's config as `directory/<pipeline>/best.toml`. A keras-tuner
    worker returns `{"role": "worker", "trials_run": n}` when the chief stops handing out
    trials.
    """
    search = config["search"]
    hypermodel = PipelineHyperModel(config, data=data)
    made = make_tuner(
        hypermodel,
        tuner or search["tuner"],
        max_trials or search["max_trials"],
        directory,
        seed=search["seed"],
    )
    made.search(verbose=verbose)
    if not is_search_chief():
        return {"role": "worker", "trials_run": hypermodel.trials_run}
    table = trials_table(made)
    completed = [row for row in table if row["score"] is not None]
    if not completed:
        raise ConfigError("No trial of the search completed (see the errors above)")
    best = made.oracle.get_best_trials(1)[0]
    best_config = hypermodel.trial_config(best.hyperparameters.copy())
    project = Path(made.project_dir)
    path = write_pipeline(best_config, project / "best.toml")
    return {
        "objective": made.oracle.objective.name,
        "direction": made.oracle.objective.direction,
        "trials": table,
        "best_trial": best.trial_id,
        "best_score": best.score,
        "best_hyperparameters": completed[0]["hyperparameters"],
        "best_config": str(path),
    }
