import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_s2s")
class InverseSquareRootSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The Transformer's learning rate: linear warm-up, then decay as the inverse square root.

        lr(n) = scale * model_dim^-0.5 * min(n^-0.5, n * warmup_steps^-1.5),  n = 1, 2, ...

    where n counts updates from 1. The rate rises linearly to its peak
    `scale * (model_dim * warmup_steps)^-0.5` at update n = `warmup_steps`, then falls as n^-0.5.

    Keras calls a schedule with `optimizer.iterations`, the number of updates already applied
    (0 for the first update), so `schedule(step)` is the rate of update n = step + 1: the first
    update gets `lr(1)`, not 0 (OpenNMT-tf's `NoamDecay` counts the same way).

    Args:
        model_dim: the model width d_model of the formula (`hidden_dim` in keras-hub's and
            keras-s2s's naming, 512 in the paper's base model); a positive int.
        warmup_steps: the update at which the rate peaks (4000 in the paper); a positive int.
        scale: a multiplier (1.0 in the paper; tensor2tensor and OpenNMT use 2.0).
        steps_per_update: optimizer steps per update: with gradient accumulation over N
            batches, Keras calls the schedule with the steps taken, N per update, and n is
            `step // N + 1`.

    Example:

    >>> schedule = keras_s2s.training.InverseSquareRootSchedule(512, warmup_steps=4000)
    >>> optimizer = keras.optimizers.Adam(schedule, beta_2=0.98, epsilon=1e-9)

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 5.3.
    """

    def __init__(self, model_dim, warmup_steps=4000, scale=1.0, steps_per_update=1):
        for name, value in (
            ("model_dim", model_dim), ("warmup_steps", warmup_steps),
            ("steps_per_update", steps_per_update),
        ):  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if not scale > 0:
            raise ValueError(f"`scale` must be > 0. Received: scale={scale!r}")
        self.model_dim = model_dim
        self.warmup_steps = warmup_steps
        self.scale = scale
        self.steps_per_update = steps_per_update

    def __call__(self, step):
        updates = ops.floor_divide(step, self.steps_per_update)
        n = ops.cast(updates, "float32") + 1.0
        warmup = float(self.warmup_steps)
        factor = ops.minimum(ops.rsqrt(n), n * warmup**-1.5)
        return (self.scale * float(self.model_dim) ** -0.5) * factor

    def get_config(self):
        return {
            "model_dim": self.model_dim,
            "warmup_steps": self.warmup_steps,
            "scale": self.scale,
            **({"steps_per_update": self.steps_per_update} if self.steps_per_update > 1 else {}),
        }
