"""Trains one small model for a few steps under the default strategy and under `mirrored` on
two logical CPU devices, on the same token-bucketed global batches; prints a JSON line with
the largest differences of the losses and weights. Run in its own process (logical devices
must be configured before TensorFlow runs an op): `python strategy_equality.py FAMILY...`,
where `FAMILY:N` trains with `training.accumulation_steps = N`.
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_s2s.data.pipeline import make_dataset  # noqa: E402
from keras_s2s.models import Seq2Seq, Transformer  # noqa: E402
from keras_s2s.tokenizers import CharTokenizer  # noqa: E402
from keras_s2s.training import compile_model, distribute_batches, make_strategy  # noqa: E402

STEPS = 6
FAMILIES = {
    "transformer": lambda v: Transformer(
        source_vocabulary_size=v,
        target_vocabulary_size=v,
        hidden_dim=32,
        intermediate_dim=64,
        num_heads=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dropout=0.0,
    ),  # fmt: skip
    "luong": lambda v: Seq2Seq(
        source_vocabulary_size=v,
        target_vocabulary_size=v,
        embedding_dim=16,
        hidden_dim=32,
        bidirectional=True,
        decoder="luong",
    ),  # fmt: skip
}


def batches():
    """Global batches whose halves hold different numbers of real tokens (random lengths,
    odd row counts: one half gets an all-padding row), of one shape (one bucket: one trace)."""
    rng = np.random.default_rng(0)
    letters = "abcdefghij"
    pairs = []
    for _ in range(400):
        n = int(rng.integers(1, 20))
        source = "".join(rng.choice(list(letters), n))
        pairs.append((source, source[::-1][: int(rng.integers(1, n + 1))]))
    tokenizer = CharTokenizer.build(p[0] for p in pairs)
    dataset = tf.data.Dataset.from_tensor_slices(([p[0] for p in pairs], [p[1] for p in pairs]))
    ds = make_dataset(
        dataset, tokenizer, tokenizer, max_source_length=24, max_target_length=24,
        batch_tokens=275, bucket_width=25, shuffle_buffer=400, seed=1,
    )  # fmt: skip
    ds = ds.take(STEPS).cache()
    for _ in ds:  # Fill the cache: every later pass reads these same batches.
        pass
    return tokenizer.vocabulary_size, ds


class _StepLosses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))  # The running mean over the epoch's steps.


def train(strategy, family, vocabulary_size, dataset, initial, accumulation):
    with strategy.scope():
        model = FAMILIES[family](vocabulary_size)
        model(next(iter(dataset))[0])
        model.set_weights(initial)
        settings = {"learning_rate": 1e-3, "global_clipnorm": 0.0, "adam_epsilon": 1e-4}
        compile_model(model, {**settings, "accumulation_steps": accumulation})
    losses = _StepLosses()
    model.fit(
        distribute_batches(strategy, dataset.repeat()),
        epochs=1, steps_per_epoch=STEPS, callbacks=[losses], verbose=0,
    )  # fmt: skip
    return np.array(losses.losses), model.get_weights(), int(model.optimizer.iterations.numpy())


def main(name, mirrored):
    family, _, accumulation = name.partition(":")
    accumulation = int(accumulation or 1)
    vocabulary_size, dataset = batches()
    keras.utils.set_random_seed(0)
    initial = FAMILIES[family](vocabulary_size)
    features, _ = next(iter(dataset))
    initial(features)
    initial = initial.get_weights()
    default_losses, default_weights, _ = train(
        make_strategy("default"), family, vocabulary_size, dataset, initial, accumulation
    )
    mirrored_losses, mirrored_weights, mirrored_updates = train(
        mirrored, family, vocabulary_size, dataset, initial, accumulation
    )
    halves = []
    for _, labels in dataset:
        real = np.asarray(labels) != 0
        first = (len(real) + 1) // 2
        halves.append([len(real), int(real[:first].sum()), int(real[first:].sum())])
    print(
        json.dumps(
            {
                "family": name,
                "updates": mirrored_updates,
                "replicas": mirrored.num_replicas_in_sync,
                # No GPU here: "auto" is the default strategy (logical CPU devices only).
                "auto": type(make_strategy("auto")).__name__,
                "rows_and_real_tokens_per_half": halves,
                "default_losses": default_losses.tolist(),
                "mirrored_losses": mirrored_losses.tolist(),
                "loss_difference": float(np.max(np.abs(default_losses - mirrored_losses))),
                "weight_difference": max(
                    float(np.max(np.abs(a - b)))
                    for a, b in zip(default_weights, mirrored_weights, strict=True)
                ),
                "weight_change": max(
                    float(np.max(np.abs(a - b)))
                    for a, b in zip(default_weights, initial, strict=True)
                ),
            }
        )
    )


if __name__ == "__main__":
    # One strategy for all: a second MirroredStrategy in the process reuses collective keys.
    mirrored = make_strategy("mirrored")
    for name in sys.argv[1:]:
        main(name, mirrored)
