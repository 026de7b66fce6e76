"""The optimizer and loss a pipeline's `[training]` keys describe: defaults unchanged, the
Transformer's settings, bad values refused, and a run trained with them that loads."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_s2s.cli.main import main
from keras_s2s.config import DEFAULTS, apply_overrides, load_pipeline
from keras_s2s.errors import ConfigError
from keras_s2s.models import Seq2Seq
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import (
    AccumulatingAdam,
    InverseSquareRootSchedule,
    MaskedSparseCategoricalCrossentropy,
    compile_model,
    make_optimizer,
    train,
)

TRANSFORMER = {
    "learning_rate_schedule": "inverse_sqrt",
    "learning_rate": 2.0,
    "schedule_dim": 64,
    "warmup_steps": 30,
    "adam_beta_1": 0.9,
    "adam_beta_2": 0.98,
    "adam_epsilon": 1e-9,
    "label_smoothing": 0.1,
}


def settings_of(optimizer):
    """The optimizer's config without its name (Keras numbers the names: adam, adam_1, ...)."""
    return {k: v for k, v in optimizer.get_config().items() if k != "name"}


def test_the_defaults_are_the_optimizer_of_before():
    """No existing pipeline changes: Keras's Adam at 1e-3 with global-norm clipping at 5."""
    before = settings_of(keras.optimizers.Adam(1e-3, global_clipnorm=5.0))
    assert settings_of(make_optimizer({})) == before
    assert settings_of(make_optimizer(DEFAULTS["training"])) == before
    assert make_optimizer({"global_clipnorm": 0.0}).global_clipnorm is None
    model = compile_model(Seq2Seq(12, 10, embedding_dim=8, hidden_dim=16), {})
    assert settings_of(model.optimizer) == before
    assert model.loss.label_smoothing == 0.0


def test_transformer_settings():
    optimizer = make_optimizer(TRANSFORMER)
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.98, 1e-9)
    assert optimizer.global_clipnorm == 5.0
    schedule = optimizer._learning_rate
    assert isinstance(schedule, InverseSquareRootSchedule)
    assert schedule.get_config() == {"model_dim": 64, "warmup_steps": 30, "scale": 2.0}
    # learning_rate is the scale: the peak is 2 / sqrt(64 * 30).
    assert float(schedule(29)) == pytest.approx(2.0 / np.sqrt(64 * 30), rel=1e-6)
    model = compile_model(Seq2Seq(12, 10, embedding_dim=8, hidden_dim=16), TRANSFORMER)
    assert isinstance(model.loss, MaskedSparseCategoricalCrossentropy)
    assert model.loss.label_smoothing == 0.1


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"adam_beta2": 0.98}, r"Unknown config key 'training.adam_beta2'"),
        (
            {"learning_rate_schedule": "noam"},
            r"'noam' \(choose from constant, inverse_sqrt, cosine\)",
        ),
        ({"label_smoothing": 1.0}, r"'training.label_smoothing' .*1.0 \(must be in \[0, 1\)\)"),
        ({"adam_epsilon": 0.0}, r"'training.adam_epsilon' .*0.0 \(must be > 0\)"),
    ],
)
def test_make_optimizer_refuses_bad_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_optimizer(settings)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "training.learning_rate_schedule=noam",
            "Invalid value for 'training.learning_rate_schedule' in overrides: 'noam' "
            "(choose from constant, inverse_sqrt, cosine)",
        ),
        (
            "training.warmup_steps=0",
            "Invalid value for 'training.warmup_steps' in overrides: 0 (must be > 0)",
        ),
        (
            "training.warmup_steps=40.5",
            "Invalid value for 'training.warmup_steps' in overrides: 40.5 (expected int)",
        ),
        (
            "training.adam_beta_2=1.0",
            "Invalid value for 'training.adam_beta_2' in overrides: 1.0 (must be in [0, 1))",
        ),
        (
            "training.label_smoothing=-0.1",
            "Invalid value for 'training.label_smoothing' in overrides: -0.1 (must be in [0, 1))",
        ),
    ],
)
def test_bad_values_from_the_command_line_exit_2(override, message, tmp_path, capsys):
    argv = ["train", "addition_seq2seq", "--set", override, "--output-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"keras-s2s: error: {message}"
    assert not (tmp_path / "r").exists()


LOAD = """
import json, sys
import keras
import keras_s2s.models, keras_s2s.training.losses, keras_s2s.training.metrics
import keras_s2s.training.schedules
from keras_s2s.run_directory import RunDirectory
model = keras.saving.load_model(RunDirectory(sys.argv[1]).model_path)  # compiled
o = model.optimizer
print(json.dumps({
    "schedule": type(o._learning_rate).__name__,
    "iterations": int(o.iterations),
    "learning_rate": float(o.learning_rate),
    "betas": [o.beta_1, o.beta_2, o.epsilon],
    "loss": type(model.loss).__name__,
    "label_smoothing": model.loss.label_smoothing,
}))
"""


# Slow (11 s): the small Multi30k test trains with both and reloads the run in the default run.
@pytest.mark.slow
def test_a_run_trained_with_the_schedule_and_smoothing_loads(tmp_path):
    """The run's model.keras loads in a fresh process that imports only the run directory
    module, with its schedule (at the step it reached), betas and smoothed loss."""
    lines = "".join(f"{a}+{b}_{a + b}\n" for a in range(30) for b in range(0, 30, 3))
    data_file = tmp_path / "addition.txt"
    data_file.write_text(lines)
    overrides = {f"training.{k}": v for k, v in TRANSFORMER.items()}
    config = apply_overrides(
        load_pipeline("addition_seq2seq"),
        {
            **overrides,
            "data.source": "dlfs2",
            "data.train": [str(data_file)],
            "data.test_size": 20,
            "training.epochs": 2,
            "training.checkpoint": "last",
            "model.hidden_dim": 16,
            "model.embedding_dim": 8,
        },
    )
    summary = train(config, tmp_path / "run", verbose=0)
    assert np.isfinite(summary["loss"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["training"] == {
        **config["training"]
    }
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["schedule"] == "InverseSquareRootSchedule"
    assert loaded["iterations"] > 0
    n = loaded["iterations"] + 1  # the next update's number
    expected = 2.0 * 64**-0.5 * min(n**-0.5, n * 30**-1.5)
    assert loaded["learning_rate"] == pytest.approx(expected, rel=1e-6)
    assert loaded["betas"] == [0.9, 0.98, 1e-9]
    assert loaded["loss"] == "MaskedSparseCategoricalCrossentropy"
    assert loaded["label_smoothing"] == 0.1
    assert RunDirectory(tmp_path / "run").metadata()["status"] == "finished"


def test_a_mixed_precision_step_with_the_transformer_settings():
    """float16 compute, float32 logits (the model casts them before the softmax): a
    jit-compiled training step's loss is finite and equals the loss of the logits the model
    produced."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = Seq2Seq(12, 10, embedding_dim=8, hidden_dim=16)
        compile_model(model, {**TRANSFORMER, "jit_compile": True})
        x = {
            "encoder_token_ids": np.array([[4, 5, 0]] * 4, "int32"),
            "decoder_token_ids": np.array([[2, 6, 7]] * 4, "int32"),
        }
        y = np.array([[6, 7, 3]] * 4, "int32")
        logits = model(x)
        assert model.compute_dtype == "float16" and logits.dtype == "float32"
        expected = float(MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)(y, logits))
        assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(
            expected, rel=1e-3
        )
        loss = model.train_on_batch(x, y, return_dict=True)["loss"]
        assert model.jit_compile is True and np.isfinite(loss)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_schedule_counts_updates_under_accumulation():
    """With N optimizer steps per update, the rate of step s is the plain rate of update
    s // N: the warm-up is `warmup_steps` updates long whatever N is."""
    plain = InverseSquareRootSchedule(64, warmup_steps=3)
    accumulated = InverseSquareRootSchedule(64, warmup_steps=3, steps_per_update=2)
    for step in range(8):
        assert float(accumulated(step)) == pytest.approx(float(plain(step // 2)))
    optimizer = make_optimizer({**TRANSFORMER, "accumulation_steps": 2})
    assert optimizer.gradient_accumulation_steps == 2
    assert optimizer._learning_rate.steps_per_update == 2
    assert make_optimizer({}).gradient_accumulation_steps is None


@pytest.mark.parametrize("strategy", ["default", "one_device"])
def test_accumulated_batches_update_as_one_batch_of_all_their_tokens(strategy):
    """`accumulation_steps = 2`: two batches of B examples (equal token counts: no padding)
    update the weights as one batch of 2B does, clipping included, to 1e-5."""
    from keras_s2s.training import make_strategy

    rng = np.random.default_rng(0)
    x = {
        "encoder_token_ids": rng.integers(4, 12, (8, 5)).astype("int32"),
        "decoder_token_ids": rng.integers(4, 10, (8, 4)).astype("int32"),
    }
    y = rng.integers(4, 10, (8, 4)).astype("int32")
    initial = Seq2Seq(12, 10, embedding_dim=8, hidden_dim=16).get_weights()
    settings = {"learning_rate": 0.05, "global_clipnorm": 0.5}  # clipping active

    def trained(accumulation, batch_size):
        with make_strategy(strategy).scope():
            model = Seq2Seq(12, 10, embedding_dim=8, hidden_dim=16)
            compile_model(model, {**settings, "accumulation_steps": accumulation})
        model.set_weights(initial)
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        return model

    accumulated, large = trained(2, 4), trained(1, 8)
    assert accumulated.optimizer.iterations.numpy() == large.optimizer.iterations.numpy() == 1
    moved = [np.abs(a - b).max() for a, b in zip(large.get_weights(), initial, strict=True)]
    assert max(moved) > 1e-3  # one real update
    for a, b in zip(accumulated.get_weights(), large.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    losses = [m.evaluate(x, y, batch_size=8, verbose=0)[0] for m in (accumulated, large)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_accumulating_adam_is_strict_and_serializable():
    """`make_optimizer` gives an `AccumulatingAdam` only with accumulation; it refuses what it
    cannot accumulate with, and a saved run's config gives it back."""
    optimizer = make_optimizer({"accumulation_steps": 3})
    assert type(optimizer) is AccumulatingAdam and type(make_optimizer({})) is keras.optimizers.Adam
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is AccumulatingAdam and again.gradient_accumulation_steps == 3
    with pytest.raises(ValueError, match="needs gradient_accumulation_steps"):
        AccumulatingAdam(1e-3)
    with pytest.raises(ValueError, match="weight_decay"):
        AccumulatingAdam(1e-3, gradient_accumulation_steps=2, weight_decay=0.1)
