"""keras-tuner searches over pipelines: `PipelineHyperModel` (a family's, or several
families'), `make_tuner` and `tune` (local or keras-tuner's distributed mode, resumable)."""

from keras_s2s.tuning.hypermodel import (
    OBJECTIVES,
    PipelineHyperModel,
    check_space,
    default_space,
    objective_name,
)
from keras_s2s.tuning.search import TUNERS, make_tuner, trials_table, tune, write_pipeline

__all__ = [
    "OBJECTIVES",
    "TUNERS",
    "PipelineHyperModel",
    "check_space",
    "default_space",
    "make_tuner",
    "objective_name",
    "trials_table",
    "tune",
    "write_pipeline",
]
