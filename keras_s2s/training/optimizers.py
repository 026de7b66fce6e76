"""The optimizer a pipeline's `[training]` section describes."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_s2s.config import DEFAULTS, merge, validate
from keras_s2s.errors import ConfigError
from keras_s2s.training.schedules import InverseSquareRootSchedule, WarmupCosineSchedule


def training_settings(training: dict) -> dict:
    """`training` (a whole `[training]` section or only some of its keys) merged over the
    defaults and validated: an unknown key or a bad value is a `ConfigError` naming it."""
    config = merge(DEFAULTS, {"training": training})
    validate(config, origin="the training settings")
    return config["training"]


def make_optimizer(training: dict, total_updates: int | None = None) -> keras.optimizers.Optimizer:
    """Adam as the `[training]` keys say: learning rate and its schedule, betas, epsilon and
    global-norm clipping; with `accumulation_steps` N > 1, one update per N batches with the
    mean of their gradients (an `AccumulatingAdam`: Keras's `gradient_accumulation_steps`,
    also under mirrored and multi-worker strategies; the clipping applies to that mean, and the
    schedule counts updates); with `ema` m > 0, a moving average of the
    weights of momentum m (Keras's `use_ema`; `EMAWeights` puts it in the model).

    Keys left out take their defaults (`keras_s2s.config.DEFAULTS["training"]`), which are
    Keras's Adam defaults with `global_clipnorm = 5.0`. With
    `learning_rate_schedule = "inverse_sqrt"` the rate is an `InverseSquareRootSchedule` of
    `schedule_dim` and `warmup_steps` whose `scale` is `learning_rate`; with `"cosine"` a
    `WarmupCosineSchedule` peaking at `learning_rate` after `warmup_steps` and reaching 0
    `decay_steps` updates later (`decay_steps = 0`: at update `total_updates`, the run's
    length, which the trainer passes; without it a `ConfigError`).

    Example:

    >>> optimizer = keras_s2s.training.make_optimizer({
    ...     "learning_rate_schedule": "inverse_sqrt", "learning_rate": 1.0,
    ...     "schedule_dim": 512, "warmup_steps": 4000,
    ...     "adam_beta_2": 0.98, "adam_epsilon": 1e-9,
    ... })
    """
    settings = training_settings(training)
    learning_rate, accumulation = settings["learning_rate"], settings["accumulation_steps"]
    if settings["learning_rate_schedule"] == "inverse_sqrt":
        learning_rate = InverseSquareRootSchedule(
            settings["schedule_dim"], settings["warmup_steps"], scale=learning_rate,
            steps_per_update=accumulation,
        )  # fmt: skip
    elif settings["learning_rate_schedule"] == "cosine":
        learning_rate = WarmupCosineSchedule(
            learning_rate, settings["warmup_steps"], _decay_steps(settings, total_updates),
            steps_per_update=accumulation,
        )  # fmt: skip
    adam = AccumulatingAdam if accumulation > 1 else keras.optimizers.Adam
    return adam(
        learning_rate,
        beta_1=settings["adam_beta_1"],
        beta_2=settings["adam_beta_2"],
        epsilon=settings["adam_epsilon"],
        global_clipnorm=settings["global_clipnorm"] or None,
        gradient_accumulation_steps=accumulation if accumulation > 1 else None,
        use_ema=settings["ema"] > 0,
        ema_momentum=settings["ema"] or 0.99,
    )


def needs_run_length(training: dict) -> bool:
    """Whether `make_optimizer(training)` needs `total_updates` (a schedule that decays to
    the run's last update)."""
    settings = training_settings(training)
    return settings["learning_rate_schedule"] == "cosine" and not settings["decay_steps"]


def run_updates(training: dict, batches_per_epoch: int, epochs: int | None = None) -> int:
    """The updates of a run of `epochs` (default `training.epochs`) epochs of
    `batches_per_epoch` batches: one per `training.accumulation_steps` batches."""
    settings = training_settings(training)
    return (epochs or settings["epochs"]) * batches_per_epoch // settings["accumulation_steps"]


def _decay_steps(settings: dict, total_updates: int | None) -> int:
    """`training.decay_steps`, or (0) the updates from the warm-up's end to the run's last."""
    if settings["decay_steps"]:
        return settings["decay_steps"]
    if total_updates is None:
        raise ConfigError(
            'training.learning_rate_schedule = "cosine" with training.decay_steps = 0 decays '
            "to the run's last update, which is not known here: set training.decay_steps"
        )
    if total_updates <= settings["warmup_steps"]:
        raise ConfigError(
            f"training.warmup_steps ({settings['warmup_steps']}) leaves no update of the "
            f"run's {total_updates} for the cosine decay (training.decay_steps = 0): lower "
            "training.warmup_steps or set training.decay_steps"
        )
    return total_updates - settings["warmup_steps"]


@keras.saving.register_keras_serializable(package="keras_s2s")
class AccumulatingAdam(keras.optimizers.Adam):
    """Keras's Adam with `gradient_accumulation_steps`, runnable under every `tf.distribute`
    strategy: one update per N batches with the mean of their gradients.

    Keras's own accumulation all-reduces the gradients and updates the mirrored variables
    inside a `tf.cond` taken in each replica, which the mirrored and multi-worker strategies
    refuse (`merge_call` inside control flow). Here each batch's gradients are all-reduced
    first, unconditionally; the mean of the accumulated ones is clipped (global norm, after
    the all-reduce, so every replica clips the same global gradient); then one cross-replica
    call updates each variable on each device, where the condition is local: an Adam update
    with the mean and a reset of the accumulator at every N-th batch, else an addition to the
    accumulator. Under the default and one-device strategies this is the same arithmetic as
    Keras's accumulation. `weight_decay` and `ema_overwrite_frequency` are not supported with
    it (both update variables inside their own conditions).

    Example:

    >>> optimizer = keras_s2s.training.AccumulatingAdam(1e-3, gradient_accumulation_steps=4)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.gradient_accumulation_steps:
            raise ValueError("AccumulatingAdam needs gradient_accumulation_steps >= 2")
        if self.weight_decay is not None or self.ema_overwrite_frequency:
            raise ValueError(
                "AccumulatingAdam does not support weight_decay or ema_overwrite_frequency"
            )

    def _backend_apply_gradients(self, grads, trainable_variables):
        steps = self.gradient_accumulation_steps
        accumulators = [
            self._accumulated_gradients[self._get_variable_index(v)] for v in trainable_variables
        ]
        variables = [v.value for v in trainable_variables]
        pairs = list(zip(grads, variables, strict=True))
        reduced = [g for g, _ in self._all_reduce_sum_gradients(pairs)]
        means = [
            (tf.convert_to_tensor(g) + a.value) / steps
            for g, a in zip(reduced, accumulators, strict=True)
        ]
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_accumulate,
            self._distribution_strategy,
            variables,
            reduced,
            self._clip_gradients(means),
            [a.value for a in accumulators],
            (self._iterations + 1) % steps == 0,
            self.learning_rate,
        )
        if self.use_ema:
            self._update_model_variables_moving_average(self._trainable_variables)

    def _distributed_accumulate(
        self, distribution, variables, grads, means, accumulators, is_update, learning_rate
    ):
        """On each device: Adam with the clipped mean and a reset accumulator at an update
        step, else the batch's gradient added to the accumulator."""

        def step(variable, grad, mean, accumulator, is_update, learning_rate):
            def update():
                self.update_step(mean, variable, learning_rate)
                self.assign(accumulator, tf.zeros_like(accumulator))

            tf.cond(is_update, update, lambda: self.assign_add(accumulator, grad))

        for variable, grad, mean, accumulator in zip(
            variables, grads, means, accumulators, strict=True
        ):
            distribution.extended.update(
                variable, step, args=(grad, mean, accumulator, is_update, learning_rate),
                group=False,
            )  # fmt: skip
