"""A pipeline's data made ready for `fit`: what `train` and keras-tuner trials share."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_s2s.data.pipeline import count_too_long, make_dataset, prepare_examples
from keras_s2s.data.sources import SPLITS, data_source
from keras_s2s.data.splits import as_strings
from keras_s2s.data.vocabulary import build_tokenizers
from keras_s2s.errors import ConfigError
from keras_s2s.training.distribution import distribute_batches


@dataclasses.dataclass
class PreparedData:
    """The splits a pipeline trains with and its tokenizers.

    Attributes:
        data: the config's `data` section.
        splits: `{split: tf.data.Dataset of (source, target) strings}`: train, validation (if
            any) and the `score_split` asked for.
        source_tokenizer, target_tokenizer: built from the training split (or given).
        kept, dropped: training examples within the max lengths, and longer ones.
        skipped: `{split: empty examples skipped}`.
    """

    data: dict
    splits: dict
    source_tokenizer: object
    target_tokenizer: object
    kept: int
    dropped: int
    skipped: dict

    @classmethod
    def load(cls, config: dict, tokenizers=None) -> PreparedData:
        """Reads the splits `config` trains with and builds its tokenizers (unless given as
        `(source, target)`, e.g. a resumed run's own). The test split's files are read too
        (a `DataError` names a missing or malformed one) though training does not use them:
        a command that evaluates after training must not find out only then."""
        data, training = config["data"], config["training"]
        score_split = training["score_split"]
        source = data_source(data["source"])
        available = source.available_splits(data)
        wanted = {"train", score_split} | ({"validation"} if "validation" in available else set())
        # A source of files is read whole, in one pass: its test file too.
        read = tuple(s for s in SPLITS if s in wanted or (source.has_files and s in available))
        skipped = {}
        splits = source.load_splits(data, read, skipped)
        splits = {s: dataset for s, dataset in splits.items() if s in wanted}
        train_sources, train_targets = as_strings(splits["train"])
        if not train_sources:
            raise ConfigError("The training split is empty")
        source, target = tokenizers or build_tokenizers(data, train_sources, train_targets)
        max_source, max_target = data["max_source_length"], data["max_target_length"]
        kept, dropped = count_too_long(
            prepare_examples(splits["train"], source, target), max_source, max_target
        )
        if kept == 0:
            raise ConfigError(
                f"Every training example is longer than data.max_source_length={max_source} or "
                f"data.max_target_length={max_target}"
            )
        skipped = {split: skipped.get(split, 0) for split in splits}
        return cls(data, splits, source, target, kept, dropped, skipped)

    def renewed(self) -> PreparedData:
        """The same data with its tokenizers' TensorFlow resources made again
        (`Tokenizer.renewed`), e.g. after `keras.backend.clear_session()`."""
        source = self.source_tokenizer.renewed()
        shared = self.target_tokenizer is self.source_tokenizer
        target = source if shared else self.target_tokenizer.renewed()
        return dataclasses.replace(self, source_tokenizer=source, target_tokenizer=target)

    def dataset(
        self, split: str, training: dict, fixed_lengths: bool = False, shuffle: bool = False
    ) -> tf.data.Dataset:
        """One pass of `split` as model batches, under `training`'s batch settings and seed
        (`shuffle`: the training order, examples and batches shuffled)."""
        data = self.data
        return make_dataset(
            self.splits[split],
            self.source_tokenizer,
            self.target_tokenizer,
            max_source_length=data["max_source_length"],
            max_target_length=data["max_target_length"],
            batch_tokens=training["batch_tokens"],
            bucket_width=data["bucket_width"],
            shuffle_buffer=data["shuffle_buffer"] if shuffle else 0,
            batch_shuffle_buffer=data["batch_shuffle_buffer"] if shuffle else 0,
            seed=training["seed"],
            batch_size=training["batch_size"],
            fixed_lengths=fixed_lengths,
        )

    def fit_inputs(
        self, training: dict, fixed_lengths: bool = False, strategy=None, skip_epochs: int = 0
    ) -> dict:
        """`model.fit`'s data arguments: the training order from epoch `skip_epochs` on (a
        resumed run sees the batches the uninterrupted one would have), the validation split
        if any, each distributed over `strategy`'s replicas (`distribute_batches`).

        An epoch's batch count depends only on the example lengths (each bucket ends with one
        partial batch), so one pass counts it; fit then reads one endless iterator instead of
        tearing one down each epoch, which stalls (tf.data discards a half-read cache). The
        validation split repeats too, `validation_steps` (its batch count) batches an epoch;
        Keras's `evaluate` starts a new iterator over it each epoch all the same (`reset`).
        """
        strategy = strategy or tf.distribute.get_strategy()
        train = self.dataset("train", training, fixed_lengths, shuffle=True)
        steps = count_batches(train)
        inputs = {
            "x": distribute_batches(strategy, train.repeat().skip(skip_epochs * steps)),
            "steps_per_epoch": steps,
            "shuffle": False,  # The tf.data pipeline shuffles, under the config's seed.
        }
        if "validation" in self.splits:
            validation = self.dataset("validation", training, fixed_lengths)
            inputs["validation_data"] = distribute_batches(strategy, validation.repeat())
            inputs["validation_steps"] = count_batches(validation)
        return inputs


def count_batches(dataset: tf.data.Dataset) -> int:
    """The number of elements of one pass of `dataset`."""
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
