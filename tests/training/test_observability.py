"""TensorBoard logs of a run: losses, metrics, the learning rate, attention images."""

from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_s2s.config import load_pipeline
from keras_s2s.training import InverseSquareRootSchedule, train
from tests.pipeline_files import addition_pipeline


def events(folder: Path) -> dict[str, dict[int, np.ndarray]]:
    """`{tag: {step: value}}` of every summary in the event files under `folder`."""
    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = tf.make_ndarray(value.tensor)
    return found


def test_logs_hold_the_learning_rate_and_an_attention_image_per_epoch(tmp_path):
    pipeline = addition_pipeline(
        tmp_path, 20, 1, validation=40,
        sections='[model]\ntype = "seq2seq"\nembedding_dim = 16\nhidden_dim = 32\n'
        'decoder = "luong"\nattention_score = "dot"\n'
        '[training]\nepochs = 3\nbatch_tokens = 256\nattention_images = 2\n'
        'learning_rate_schedule = "inverse_sqrt"\nwarmup_steps = 4\nschedule_dim = 32\n',
    )  # fmt: skip
    summary = train(load_pipeline(pipeline), tmp_path / "run", verbose=0)
    logs = tmp_path / "run" / "logs"

    scalars = events(logs / "train")
    assert sorted(scalars["epoch_loss"]) == [0, 1, 2]
    # The schedule's value at the end of each epoch: the optimizer's rate, as TensorBoard got it.
    steps = sorted(scalars["epoch_learning_rate"])
    assert steps == [0, 1, 2]
    rates = [float(scalars["epoch_learning_rate"][s]) for s in steps]
    assert rates[0] > rates[1] > rates[2] > 0  # past warm-up: decaying as n^-0.5
    # Logged after epoch e: the rate Keras gives the next update, schedule(iterations).
    schedule = InverseSquareRootSchedule(32, warmup_steps=4, scale=1e-3)
    want = [float(schedule(epoch * summary["steps_per_epoch"])) for epoch in (1, 2, 3)]
    np.testing.assert_allclose(rates, want, rtol=1e-5)
    assert sorted(events(logs / "validation")["epoch_loss"]) == [0, 1, 2]

    images = events(logs / "attention")
    assert sorted(images) == ["attention/0", "attention/1"]
    for tag in images:
        assert sorted(images[tag]) == [0, 1, 2]
        width, height, png = images[tag][2]  # tf.summary.image: [width, height, *encoded]
        image = tf.io.decode_png(png).numpy()
        assert image.shape == (int(height), int(width), 3) and image.std() > 0
