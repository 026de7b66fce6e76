"""`addition`: sums of two numbers ("16+75" to "91"), as in chapter 7 of DLFS2."""

from __future__ import annotations

import random

import tensorflow_datasets as tfds

from keras_s2s.data.builders.generated import GeneratedTask, GeneratedTaskConfig


def sample_addition_example(rng: random.Random, max_digits: int = 3) -> tuple[str, str]:
    """Returns one ("a+b", "a+b's value") pair; each operand has 1..max_digits digits."""

    def number() -> int:
        digits = rng.randint(1, max_digits)
        return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)

    a, b = number(), number()
    return f"{a}+{b}", str(a + b)


class Addition(GeneratedTask):
    """Additions of two non-negative integers with up to `max_digits` digits each.

    Generated offline and deterministically from the config's seed; the splits are disjoint by
    source string.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Shuffle the distinct examples before cutting the splits.",
    }
    BUILDER_CONFIGS = [
        GeneratedTaskConfig(name="default", description="Operands up to 3 digits, 50k/5k/5k."),
        GeneratedTaskConfig(
            name="two_digits",
            train_size=6000,
            validation_size=500,
            test_size=500,
            max_digits=2,
            description="Operands up to 2 digits, 6k/500/500: a small task for quick tests.",
        ),
    ]

    def sample(self, rng: random.Random) -> tuple[str, str]:
        return sample_addition_example(rng, max_digits=self.builder_config.max_digits)
