"""What the generated (offline) TFDS tasks share: the config and disjoint split generation."""

from __future__ import annotations

import abc
import dataclasses
import random
import sys
from collections.abc import Callable

import tensorflow_datasets as tfds


@dataclasses.dataclass
class GeneratedTaskConfig(tfds.core.BuilderConfig):
    """Sizes and seed of a generated task.

    They live in the BuilderConfig because TFDS caches prepared data per name/config/version: a
    seed or size kept elsewhere would silently be ignored. Give a new `name` to new values.
    """

    train_size: int = 50_000
    validation_size: int = 5_000
    test_size: int = 5_000
    seed: int = 0
    # Task-specific knob (used by `addition`: the largest number of digits of an operand).
    max_digits: int = 3


def generate_unique_splits(
    config: GeneratedTaskConfig, sample: Callable[[random.Random], tuple[str, str]]
) -> dict[str, list[tuple[str, str]]]:
    """Draws unique source strings and cuts them into train/validation/test.

    Splits are disjoint by source string because every source is drawn once overall.
    """
    sizes = {
        "train": config.train_size,
        "validation": config.validation_size,
        "test": config.test_size,
    }
    total = sum(sizes.values())
    rng = random.Random(config.seed)
    seen: set[str] = set()
    examples: list[tuple[str, str]] = []
    attempts = 0
    while len(examples) < total:
        attempts += 1
        if attempts > 50 * total + 1000:
            raise ValueError(
                f"Cannot draw {total} distinct examples for config '{config.name}': "
                "the task has too few distinct sources for these sizes."
            )
        source, target = sample(rng)
        if source not in seen:
            seen.add(source)
            examples.append((source, target))
    # Rare sources (e.g. "3+4": few distinct strings) are used up by the first draws; shuffling
    # before cutting gives every split the same distribution.
    rng.shuffle(examples)
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = examples[start : start + size]
        start += size
    return out


class GeneratedTask(tfds.core.GeneratorBasedBuilder):
    """Base of the generated tasks: `(source, target)` text pairs drawn by `sample`.

    Abstract, so TFDS does not register it as a dataset of its own.
    """

    @abc.abstractmethod
    def sample(self, rng: random.Random) -> tuple[str, str]:
        """Draws one `(source, target)` pair for this builder's config."""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {"source": tfds.features.Text(), "target": tfds.features.Text()}
            ),
            supervised_keys=("source", "target"),
        )

    # TFDS announces preparing a dataset as "Downloading and preparing dataset Unknown size
    # (download: Unknown size, ...)", though these tasks download nothing: say what happens.
    def _log_download_bytes(self) -> None:
        config = self.builder_config
        print(
            f"keras-s2s: generating the built-in task {self.name}/{config.name} once "
            f"({config.train_size:,} / {config.validation_size:,} / {config.test_size:,} "
            f"train / validation / test examples, nothing downloaded) into {self.data_dir}",
            file=sys.stderr,
            flush=True,
        )

    def _log_download_done(self) -> None:
        print(
            f"keras-s2s: {self.name}/{self.builder_config.name} is ready; later runs reuse it",
            file=sys.stderr,
            flush=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated locally: nothing to download.
        splits = generate_unique_splits(self.builder_config, self.sample)
        return {name: self._generate_examples(examples) for name, examples in splits.items()}

    def _generate_examples(self, examples):
        for index, (source, target) in enumerate(examples):
            yield index, {"source": source, "target": target}
