"""Training: the masked loss and metric, the optimizer and learning rate schedule, strategy,
compile settings and the pipeline trainer.

Names are imported on first use, so a `fit` script that takes the loss and metric does not
load the data pipeline's dependencies (tensorflow-datasets, tensorflow-text, sacrebleu).
"""

import importlib

_NAMES = {
    "AccumulatingAdam": "keras_s2s.training.optimizers",
    "AttentionImages": "keras_s2s.training.attention_images",
    "CheckpointAverage": "keras_s2s.training.averaging",
    "EMAWeights": "keras_s2s.training.ema",
    "ExactMatch": "keras_s2s.training.exact_match",
    "InverseSquareRootSchedule": "keras_s2s.training.schedules",
    "MaskedAccuracy": "keras_s2s.training.metrics",
    "MaskedSparseCategoricalCrossentropy": "keras_s2s.training.losses",
    "PreparedData": "keras_s2s.training.prepared",
    "RunCheckpoint": "keras_s2s.training.callbacks",
    "StopOnNaN": "keras_s2s.training.callbacks",
    "StopOnSignal": "keras_s2s.training.callbacks",
    "build_model": "keras_s2s.training.building",
    "build_variables": "keras_s2s.training.building",
    "check_config": "keras_s2s.checks",
    "compile_model": "keras_s2s.training.building",
    "make_optimizer": "keras_s2s.training.optimizers",
    "distribute_batches": "keras_s2s.training.distribution",
    "is_chief": "keras_s2s.training.distribution",
    "make_strategy": "keras_s2s.training.distribution",
    "train": "keras_s2s.training.trainer",
    "WarmupCosineSchedule": "keras_s2s.training.schedules",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'keras_s2s.training' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
