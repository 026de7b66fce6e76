"""Training under a `tf.distribute` strategy: one device, several GPUs, several machines.

`make_strategy(name)` creates the strategy (before any TensorFlow op runs: collective ops are
configured at program start). `distribute_batches(strategy, dataset)` turns the pipeline's
global batches into per-replica batches: every worker reads the same global batches, in the
same order, and takes its replicas' parts of each, so every worker runs the same number of
steps by construction (a worker with fewer batches would hang the collective all-reduce). The
masked loss (`MaskedSparseCategoricalCrossentropy`) divides by the global batch's real tokens,
so the gradient is the default strategy's whatever the replicas' token counts.

Only the chief writes the run directory (`is_chief`); Keras callbacks do not know the chief, so
the other workers write into temporary directories.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from keras_s2s.config import STRATEGIES
from keras_s2s.errors import ConfigError


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The `tf.distribute` strategy models are built and compiled under.

    - "default": TensorFlow's default strategy (one machine: the first GPU if there is one, else
      the CPU).
    - "one_device": `tf.distribute.OneDeviceStrategy` on that same device; it runs the
      distributed code path, which costs time on one device (the README's scale section).
    - "mirrored": `tf.distribute.MirroredStrategy` over every local GPU (or every logical CPU
      device when there is no GPU: how the tests run it).
    - "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`, the cluster read from the
      `TF_CONFIG` environment variable; every worker runs the same command.
    - "auto": "mirrored" when there are several GPUs, else "default".

    Create it before any TensorFlow op runs (`keras-s2s train` does): a multi-worker strategy
    created later fails with "Collective ops must be configured at program startup".
    """
    if name not in STRATEGIES:
        raise ConfigError(
            f"Unknown strategy '{name}' (training.strategy); choose from {', '.join(STRATEGIES)}"
        )
    if name == "multi_worker":
        return _multi_worker_strategy()
    # Physical devices: listing logical ones would start the runtime.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    # Every local GPU, or every logical CPU device when there is none.
    devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def _multi_worker_strategy():
    if "TF_CONFIG" not in os.environ:
        raise ConfigError(
            "training.strategy='multi_worker' reads the cluster from the TF_CONFIG environment "
            "variable, which is not set (README: 'Training on several machines')"
        )
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {e}") from None
    patch_keras_for_multi_worker()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process writes the run directory: always, except under a multi-worker
    strategy, where only the chief does (task "chief", or worker 0 when there is no chief)."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_name(strategy: tf.distribute.Strategy | None = None) -> str:
    """ "chief" or "<task type>-<id>" (a multi-worker cluster's worker), for directory names."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if is_chief(strategy) or resolver is None:
        return "chief"
    return f"{resolver.task_type}-{resolver.task_id}"


def split_rows(num_parts: int):
    """A `tf.data` transformation: each global batch `(features, labels)` becomes `num_parts`
    consecutive batches of equal size, its rows in order, after all-padding rows (masked out
    of the loss and metrics) fill it up to a multiple of `num_parts`. Equal sizes keep every
    replica's shapes the same (Keras builds the model from one replica's batch)."""

    def split(features, labels):
        rows = tf.shape(labels)[0]
        missing = (num_parts - rows % num_parts) % num_parts

        def parts(x):
            x = tf.pad(x, [[0, missing], [0, 0]])
            return tf.reshape(x, [num_parts, -1, tf.shape(x)[1]])

        return tf.data.Dataset.from_tensor_slices(
            ({k: parts(v) for k, v in features.items()}, parts(labels))
        )

    def apply(dataset):
        return dataset.flat_map(split)

    return apply


def distribute_batches(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """The pipeline's global batches as a distributed dataset for `model.fit` (or `dataset`
    itself under a one-replica strategy).

    Each global batch (a token budget of `training.batch_tokens`, for all replicas together)
    is split into `num_replicas_in_sync` parts of equal rows (`split_rows`); worker w's input
    pipeline reads every global batch and keeps the parts of its own replicas. So every worker
    and replica runs one step per global batch: the same number of steps, whatever the data.
    `dataset` must be the same sequence on every worker (the pipeline is deterministic under
    its seed).
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return dataset

    def dataset_fn(context: tf.distribute.InputContext):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local
        parts = dataset.apply(split_rows(replicas))
        if local < replicas:
            # Keep this worker's parts: [first, first + local) of each global batch.
            parts = parts.enumerate().filter(
                lambda i, _: tf.logical_and(i % replicas >= first, i % replicas < first + local)
            )
            parts = parts.map(lambda _, batch: batch)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return parts.with_options(options)

    return strategy.distribute_datasets_from_function(dataset_fn)


_PATCHED = False


def patch_keras_for_multi_worker() -> None:
    """Lets `model.fit` run under `MultiWorkerMirroredStrategy` (Keras 3.15, TF 2.21).

    keras-team/keras#20585 (open): Keras's TensorFlow trainer (1) builds the model from the
    first batch by `strategy.reduce("MEAN", batch)`, which fails under a multi-worker strategy
    ("Attempt to convert a value (PerReplica...)") and (2) reduces the step's scalar logs with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars. This replaces both: the
    model is built from this replica's own part of the batch (the parts have one shape, see
    `split_rows`), and a scalar log is averaged over all replicas (`axis=None`). Tested with
    the versions above; applied once, only when a multi-worker strategy is created.
    """
    global _PATCHED
    if _PATCHED:
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if not tf_trainer._collective_all_reduce_multi_worker(strategy) or reduction not in (
            "auto",
            "mean",
        ):
            return original_reduce(values, strategy, reduction)

        def mean(value):
            return strategy.reduce("MEAN", value, axis=None)

        return keras.tree.map_structure(mean, values)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = keras.tree.map_structure(
                    lambda x: (
                        self.distribute_strategy.experimental_local_results(x)[0]
                        if isinstance(x, tf.distribute.DistributedValues)
                        else x
                    ),
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _PATCHED = True
