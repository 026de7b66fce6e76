import math

import keras
from keras import ops


def _check_positive_ints(**values) -> None:
    """Raises `ValueError` naming the first argument that is not a positive int."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


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
        _check_positive_ints(
            model_dim=model_dim, warmup_steps=warmup_steps, steps_per_update=steps_per_update
        )
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


@keras.saving.register_keras_serializable(package="keras_s2s")
class WarmupCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to a peak, then a half cosine down to zero.

        lr(n) = peak * n / warmup_steps                                   for n <= warmup_steps
        lr(n) = peak * (1 + cos(pi * min(1, (n - warmup_steps) / decay_steps))) / 2   after

    at update n = 1, 2, ... (counted as `InverseSquareRootSchedule` counts them): the rate
    reaches `peak` at update `warmup_steps`, half of it `decay_steps / 2` updates later, and 0
    at update `warmup_steps + decay_steps` (and after). A run that knows its length ends at a
    rate of zero, which is what a short budget of epochs wants (Loshchilov and Hutter's cosine
    annealing without restarts). Keras's `CosineDecay(0.0, decay_steps, warmup_target=peak,
    warmup_steps=...)` has the same shape but counts the steps already taken, so it gives the
    first update a rate of 0, and it knows nothing of gradient accumulation.

    Args:
        peak: the highest rate, > 0.
        warmup_steps: the update at which the rate peaks; a positive int.
        decay_steps: updates from the peak to zero; a positive int.
        steps_per_update: optimizer steps per update (gradient accumulation over N batches).

    Example:

    >>> schedule = keras_s2s.training.WarmupCosineSchedule(2e-3, warmup_steps=400,
    ...                                                     decay_steps=2000)
    >>> optimizer = keras.optimizers.Adam(schedule, beta_2=0.98, epsilon=1e-9)

    References:
        Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
        ICLR 2017.
    """

    def __init__(self, peak, warmup_steps, decay_steps, steps_per_update=1):
        _check_positive_ints(
            warmup_steps=warmup_steps, decay_steps=decay_steps, steps_per_update=steps_per_update
        )
        if not peak > 0:
            raise ValueError(f"`peak` must be > 0. Received: peak={peak!r}")
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps
        self.steps_per_update = steps_per_update

    def __call__(self, step):
        n = ops.cast(ops.floor_divide(step, self.steps_per_update), "float32") + 1.0
        warmup = n / float(self.warmup_steps)
        progress = ops.clip((n - float(self.warmup_steps)) / float(self.decay_steps), 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.peak * ops.where(n <= float(self.warmup_steps), warmup, cosine)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            **({"steps_per_update": self.steps_per_update} if self.steps_per_update > 1 else {}),
        }
