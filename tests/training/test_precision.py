"""Speed options: mixed precision (float16 with loss scaling, bfloat16) and XLA for every
family: one training step runs and its loss is finite."""

import keras
import numpy as np
import pytest

from keras_s2s.training import compile_model
from keras_s2s.training.building import build_model

FAMILIES = {
    "peeky-gru": {"type": "seq2seq", "cell": "gru", "decoder": "peeky"},
    "bahdanau-lstm": {"type": "seq2seq", "decoder": "bahdanau"},
    "luong-bidirectional": {"type": "seq2seq", "decoder": "luong", "bidirectional": True},
    "transformer": {
        "type": "transformer",
        "hidden_dim": 16,
        "intermediate_dim": 32,
        "num_heads": 2,
        "num_encoder_layers": 1,
        "num_decoder_layers": 1,
    },  # fmt: skip
}


def batch(rows=4, source=7, target=5, vocabulary=11):
    rng = np.random.default_rng(0)
    labels = rng.integers(1, vocabulary, (rows, target)).astype("int32")
    labels[:, -2:] = 0  # Padding, masked out.
    return (
        {
            "encoder_token_ids": rng.integers(1, vocabulary, (rows, source)).astype("int32"),
            "decoder_token_ids": labels,
        },
        labels,
    )


OPTIONS = [
    ("mixed_float16", False),
    ("mixed_bfloat16", False),
    ("float32", True),
    ("mixed_float16", True),
    ("mixed_bfloat16", True),
]
# In the default run every family trains a step under each policy and with XLA, with what
# tests/models runs (the model contracts' jit-compiled steps, the Transformer's mixed_float16
# step, tests/models/test_conformance.py's mixed_bfloat16 step per family), and each 16-bit
# policy runs with XLA (on the family XLA compiles fastest); the other combinations are slow
# (XLA compiles the Transformer's step for 10 s or more).
DEFAULT = {
    ("peeky-gru", "mixed_float16", True),
    ("peeky-gru", "mixed_bfloat16", True),
    ("bahdanau-lstm", "float32", True),
    ("bahdanau-lstm", "mixed_float16", False),
    ("luong-bidirectional", "mixed_bfloat16", False),
    ("luong-bidirectional", "mixed_float16", False),
}


@pytest.mark.parametrize(
    "family, precision, jit",
    [
        (f, p, j) if (f, p, j) in DEFAULT else pytest.param(f, p, j, marks=pytest.mark.slow)
        for f in FAMILIES
        for p, j in OPTIONS
    ],
)
def test_one_step_of_every_family_under_each_speed_option(family, precision, jit):
    model_config = dict(FAMILIES[family])
    if model_config["type"] == "seq2seq":
        model_config.update(embedding_dim=8, hidden_dim=16)
    model = build_model(model_config, 11, 11, precision=precision)
    compile_model(model, {"jit_compile": jit, "learning_rate": 1e-3, "precision": precision})
    assert {layer.dtype_policy.name for layer in model.layers} >= {precision}
    assert model.jit_compile is jit  # jit_compile="auto" would be off on CPU: asked for.
    if precision == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    features, labels = batch()
    logs = model.train_on_batch(features, labels, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0
    logits = model(features)  # In float32 whatever the policy.
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
