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
from tests.pipeline_files import addition_pipeline

HERE = Path(__file__).parent


# The Luong Seq2Seq in the slow run only (its mirrored path is the Transformer's: the same
# masked loss, batches and trainer; the default run's budget).
@pytest.mark.parametrize(
    "families", [["transformer", "transformer:2"], pytest.param(["luong"], marks=pytest.mark.slow)]
)
def test_mirrored_trains_as_the_default_strategy_on_the_same_global_batches(families):
    """Two logical CPU devices (their own process: they must exist before TensorFlow runs an
    op). A Transformer or a bidirectional Luong Seq2Seq trains 6 steps on token-bucketed global
    batches of 11 rows (one half gets an all-padding row) whose halves hold different numbers
    of real tokens: the losses and weights equal the default strategy's. Clipping is off (Keras
    clips per replica). Without the masked loss's global token count, the weights differed by
    3e-3 here. `transformer:2` does the same with `training.accumulation_steps = 2` (3
    updates of two batches each, `AccumulatingAdam`'s cross-replica update; Keras's own
    accumulation fails under `mirrored`)."""
    result = subprocess.run(
        [sys.executable, str(HERE / "strategy_equality.py"), *families],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["family"] for r in runs] == families
    for run in runs:
        assert run["replicas"] == 2 and run["auto"] == "_DefaultDistributionStrategy"
        assert run["updates"] == (3 if run["family"].endswith(":2") else 6)
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


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_worker_processes_train_identical_weights_and_only_the_chief_writes(tmp_path):
    """Two real `keras-s2s train --strategy multi_worker` processes on 127.0.0.1 (TF_CONFIG),
    bounded in time and both killed on failure: they end with identical weights, and only the
    chief (worker 0) writes the run directory. With `training.accumulation_steps = 2`
    (`AccumulatingAdam`'s cross-replica update over a collective all-reduce; Keras's own
    accumulation fails under multi-worker strategies)."""
    addition_pipeline(
        tmp_path, 60, 3,
        sections='[model]\ntype = "seq2seq"\nembedding_dim = 8\nhidden_dim = 16\n'
        "[training]\nepochs = 2\nbatch_tokens = 256\nglobal_clipnorm = 0.0\n"
        "accumulation_steps = 2\n"
        'score_split = "validation"\nmonitor = "validation_exact_match"\n',
    )  # fmt: skip
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    run_dir = tmp_path / "run"
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, "-m", "keras_s2s.cli.main", "train", "tiny.toml"]
        command += ["--strategy", "multi_worker", "--output-dir", str(run_dir)]
        processes.append(
            subprocess.Popen(
                command,
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=240))
    finally:
        for process in processes:
            process.kill()
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert summaries[0]["weights_sha256"] == summaries[1]["weights_sha256"]
    assert summaries[0]["epochs"] == summaries[1]["epochs"] == 2
    assert summaries[0]["run_dir"] == str(run_dir)
    assert summaries[1]["run_dir"] != str(run_dir)  # Worker 1 wrote into a temporary directory.
    assert not Path(summaries[1]["run_dir"]).exists()
    assert (run_dir / "model.keras").is_file() and (run_dir / "logs").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["addition.txt", "run", "tiny.toml"]
