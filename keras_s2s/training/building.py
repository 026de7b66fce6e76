"""Building and compiling a pipeline's model: the family its `[model]` section names, the
masked loss and metric, the optimizer its `[training]` section describes."""

from __future__ import annotations

import hashlib
import random

import keras
import numpy as np

from keras_s2s.checks import check_model_config
from keras_s2s.errors import ConfigError
from keras_s2s.training.losses import MaskedSparseCategoricalCrossentropy
from keras_s2s.training.metrics import MaskedAccuracy
from keras_s2s.training.optimizers import make_optimizer, training_settings


def build_model(
    model_config: dict,
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    precision: str = "float32",
    pad_id: int = 0,
):
    """Builds the model a pipeline's `model` section describes (`type` and constructor
    arguments) for vocabularies whose padding id is `pad_id`. With the data's max lengths, the
    model family completes its arguments from them (e.g. the static lengths of an unrolled
    RNN, see `EncoderDecoder.adapt_to_data`).
    `precision` (`training.precision`) is the model's dtype policy: "float32",
    "mixed_float16" or "mixed_bfloat16" (variables float32, computation in 16 bits, logits and
    softmax in float32; Keras's `compile` adds loss scaling for float16).
    """
    cls, needs = check_model_config(model_config, max_source_length, max_target_length)
    dtype = None if precision == "float32" else precision
    try:
        return cls(
            source_vocabulary_size=source_vocabulary_size,
            target_vocabulary_size=target_vocabulary_size,
            pad_id=pad_id,
            dtype=dtype,
            **needs.arguments,
        )
    except (ValueError, TypeError) as e:
        raise ConfigError(f"Invalid model config: {e}") from None


def compile_model(
    model: keras.Model, training: dict, total_updates: int | None = None
) -> keras.Model:
    """Compiles with `make_optimizer(training)` (Adam: learning rate schedule, betas, epsilon,
    global-norm clipping; with loss scaling under `training.precision = "mixed_float16"`), the
    masked loss with `training.label_smoothing` and masked token accuracy (both leave out the
    model's `pad_id`). Keys left out of `training` take their defaults. `total_updates`: the
    run's length in updates, for a schedule that decays to its end (`make_optimizer`)."""
    training = training_settings(training)
    optimizer = make_optimizer(training, total_updates)
    if training["precision"] == "mixed_float16":
        # Loss scaling against float16 underflow (Keras adds it only when the model's own
        # policy is float16; a functional model's stays float32 when its layers' is not).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=MaskedSparseCategoricalCrossentropy(
            label_smoothing=training["label_smoothing"], pad_id=model.pad_id
        ),
        metrics=[MaskedAccuracy(pad_id=model.pad_id)],
        jit_compile=training["jit_compile"],
        steps_per_execution=training["steps_per_execution"],
    )
    return model


def reseed(seed: int) -> None:
    """Re-seeds what a model's initial weights and dropout seeds are drawn from (Python's
    generator, through Keras's default seeds, and NumPy's), as `keras.utils.set_random_seed`
    does, but without its `tf.random.set_seed`: that clears TensorFlow's kernel caches, which
    destroys the SentencePiece tokenizers' resources that built datasets still use."""
    random.seed(seed)
    np.random.seed(seed)


def build_compiled_model(config: dict, data, total_updates: int | None = None) -> keras.Model:
    """`config`'s model for the vocabularies of `data` (a `PreparedData`), compiled with its
    `[training]` settings and built, optimizer included (`build_variables`; call it under a
    strategy's scope; `total_updates` as for `compile_model`). The initial weights depend on
    `training.seed` only, not on what ran before (e.g. TFDS preparing a dataset the first time
    a run reads it draws random numbers)."""
    reseed(config["training"]["seed"])
    source, target = data.source_tokenizer, data.target_tokenizer
    if source.pad_id != target.pad_id:
        raise ConfigError(
            f"The source and target tokenizers pad with different ids ({source.pad_id} and "
            f"{target.pad_id}); a model pads both sides with one id"
        )
    max_source_length = config["data"]["max_source_length"]
    max_target_length = config["data"]["max_target_length"]
    model = build_model(
        config["model"],
        data.source_tokenizer.vocabulary_size,
        data.target_tokenizer.vocabulary_size,
        max_source_length,
        max_target_length,
        config["training"]["precision"],
        pad_id=target.pad_id,
    )
    compile_model(model, config["training"], total_updates)
    _, needs = check_model_config(config["model"], max_source_length, max_target_length)
    lengths = (max_source_length, max_target_length + 1) if needs.fixed_lengths else (2, 2)
    build_variables(model, *lengths)
    return model


def build_variables(model: keras.Model, source_length: int = 2, target_length: int = 2) -> None:
    """Creates a compiled model's variables before `fit`: its weights (one call on a batch of
    the given lengths: static-length families need theirs) and its optimizer's. `fit` would
    create the optimizer's while tracing the training step, and TensorFlow traces a function
    that creates variables twice: the second trace is a third of a small run's time."""
    model(
        {
            "encoder_token_ids": keras.ops.ones([1, source_length], "int32"),
            "decoder_token_ids": keras.ops.ones([1, target_length], "int32"),
        }
    )
    model.optimizer.build(model.trainable_variables)


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 of the model's weights (their bytes, in order): equal on two processes exactly
    when their weights are equal, e.g. the workers of a multi-worker run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()
