import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from keras_s2s.errors import ConfigError
from keras_s2s.training import distribute_batches, is_chief, make_strategy
from keras_s2s.training.distribution import split_rows

HERE = Path(__file__).parent


def test_mirrored_trains_as_the_default_strategy_on_the_same_global_batches():
    """Two logical CPU devices (its own process: they must exist before TensorFlow runs an
    op). A Transformer and a bidirectional Luong Seq2Seq train 6 steps on token-bucketed
    global batches of 11 rows (one half gets an all-padding row) whose halves hold different
    numbers of real tokens: the losses and weights equal the default strategy's. Clipping is
    off (Keras clips per replica). Without the masked loss's global token count, the weights
    differed by 3e-3 here."""
    result = subprocess.run(
        [sys.executable, str(HERE / "strategy_equality.py"), "transformer", "luong"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["family"] for r in runs] == ["transformer", "luong"]
    for run in runs:
        assert run["replicas"] == 2 and run["auto"] == "_DefaultDistributionStrategy"
        halves = run["rows_and_real_tokens_per_half"]
        assert any(rows % 2 for rows, _, _ in halves)
        assert sum(first != second for _, first, second in halves) >= len(halves) // 2, halves
        assert run["weight_change"] > 1e-3  # It trained.
        assert run["loss_difference"] < 1e-5, run
        assert run["weight_difference"] < 1e-5, run


def test_split_rows_pads_to_equal_parts_in_order():
    labels = tf.constant([[1, 2, 0], [3, 0, 0], [4, 5, 6]])
    batch = ({"encoder_token_ids": labels, "decoder_token_ids": labels}, labels)
    parts = list(tf.data.Dataset.from_tensors(batch).apply(split_rows(2)))
    assert len(parts) == 2
    assert parts[0][1].numpy().tolist() == [[1, 2, 0], [3, 0, 0]]
    assert parts[1][1].numpy().tolist() == [[4, 5, 6], [0, 0, 0]]


def test_one_replica_strategies_read_the_dataset_as_it_is():
    dataset = tf.data.Dataset.range(3)
    assert distribute_batches(make_strategy("default"), dataset) is dataset
    assert distribute_batches(make_strategy("one_device"), dataset) is dataset
    assert is_chief(make_strategy("default"))


def test_strategy_errors_name_the_problem(monkeypatch):
    with pytest.raises(ConfigError, match="Unknown strategy 'tpu'.*multi_worker"):
        make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        make_strategy("multi_worker")
