"""The contract every keras-s2s layer and model passes (after keras-hub's TestCase helpers)."""

from __future__ import annotations

import contextlib
import warnings

import keras
import numpy as np
import tensorflow as tf


def _keyword_inputs(layer_or_model, inputs) -> bool:
    """A layer's dict inputs are keyword arguments (`layer(**inputs)`, as keras-hub's
    `run_layer_test`); a `keras.Model` takes its named inputs as one dict."""
    return isinstance(inputs, dict) and not isinstance(layer_or_model, keras.Model)


def _call(layer_or_model, inputs, **kwargs):
    if _keyword_inputs(layer_or_model, inputs):
        return layer_or_model(**inputs, **kwargs)
    return layer_or_model(inputs, **kwargs)


def _flat_numpy(outputs) -> list:
    """A layer's outputs (a tensor, or a nest of them: tuples, lists, dicts) as numpy arrays."""
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(outputs)]


def _input(value, name=None):
    return keras.Input(shape=value.shape[1:], dtype=str(value.dtype), name=name)


def _as_model(layer_or_model, inputs):
    """A functional model around a layer; inputs may be nested (e.g. a list of RNN states)."""
    if isinstance(layer_or_model, keras.Model):
        return layer_or_model
    if isinstance(inputs, dict):
        symbolic = {
            k: _input(v, k) if hasattr(v, "shape") else keras.tree.map_structure(_input, v)
            for k, v in inputs.items()
        }
    else:
        symbolic = _input(inputs)
    return keras.Model(symbolic, _call(layer_or_model, symbolic))


@contextlib.contextmanager
def no_unbuilt_state_warning():
    """Fails if Keras warns that `build()` marked a layer built while one of its sublayers was
    not ("... it looks like it has unbuilt state", `Layer.build` in keras/src/layers/layer.py).
    Other warnings are issued again, unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if "unbuilt state" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    unbuilt = [str(w.message) for w in caught if "unbuilt state" in str(w.message)]
    assert not unbuilt, unbuilt


def assert_sublayers_built(layer):
    """Keras's `Layer.build` warns of "unbuilt state" when it marks a layer built while one of
    its tracked sublayers is not. It warns only on the first instance of a `keras.Model` subclass
    in a process (later ones inherit `Functional.build`), so tests check the condition itself."""
    unbuilt = [sublayer.name for sublayer in layer._layers if not sublayer.built]
    assert not unbuilt, f"{layer.name} is built but not its sublayers {unbuilt}"


@no_unbuilt_state_warning()  # a context manager decorates each call
def run_contract(
    cls,
    init_kwargs: dict,
    inputs,
    tmp_path,
    train_labels=None,
    loss=None,
    expected_output_shape=None,
    mixed_precision=False,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_mixed_precision_dtype=None,
):
    """Checks a layer or model class:

    - `inputs` is an array, or a dict: a layer's keyword arguments (`layer(**inputs)`), a
      model's named inputs (`model(inputs)`);
    - every sublayer is built once the object is (constructed functional model, clone, restored
      model), so Keras has no "unbuilt state" to warn about; and no such warning is issued;
    - with `expected_num_trainable_weights` / `expected_num_non_trainable_weights`, the numbers
      of weights once built;
    - `get_config()` returns exactly the constructor arguments and `from_config` rebuilds it;
    - eager and symbolic calls agree on the output shape;
    - `.keras` save/load gives equal outputs;
    - with `train_labels`, one training step runs with `jit_compile=True` (asserting that Keras
      kept it on: `"auto"` silently turns it off on CPU);
    - with `mixed_precision`, a `mixed_float16` instance has float32 variables and gives finite
      outputs close to float32 ones, of dtype `expected_mixed_precision_dtype` (default: the
      float16 compute dtype for a layer; a model passes what its outputs are, e.g. float32
      logits).
    """
    obj = cls(**init_kwargs)
    eager = _flat_numpy(_call(obj, inputs))
    if expected_output_shape is not None:  # of the first output
        assert tuple(eager[0].shape) == tuple(expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(obj.trainable_weights) == expected_num_trainable_weights, [
            w.path for w in obj.trainable_weights
        ]
    if expected_num_non_trainable_weights is not None:
        assert len(obj.non_trainable_weights) == expected_num_non_trainable_weights, [
            w.path for w in obj.non_trainable_weights
        ]

    # Config round trip: the config holds every constructor argument, and rebuilds an equal one.
    config = obj.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == value, f"get_config()[{key!r}] = {config[key]!r} != {value!r}"
    clone = cls.from_config(config)
    assert clone.get_config() == config
    assert_sublayers_built(obj)
    if clone.built:  # A model is built when constructed, a layer when first called.
        assert_sublayers_built(clone)

    # Symbolic call: same output shape as eager (batch dim unknown).
    symbolic = keras.tree.map_structure(
        lambda v: keras.KerasTensor(v.shape, dtype=str(v.dtype)), inputs
    )
    if _keyword_inputs(obj, inputs):
        out_spec = obj.compute_output_spec(**symbolic)
    else:
        out_spec = obj.compute_output_spec(symbolic)
    specs = keras.tree.flatten(out_spec)
    assert [tuple(t.shape) for t in specs] == [tuple(t.shape) for t in eager]

    # .keras save/load, equal outputs.
    model = _as_model(obj, inputs)
    path = str(tmp_path / f"{cls.__name__}.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert_sublayers_built(restored)
    for got, want in zip(_flat_numpy(_call(restored, inputs)), eager, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    if train_labels is not None:
        trainable = _as_model(cls(**init_kwargs), inputs)
        trainable.compile(optimizer="adam", loss=loss, jit_compile=True)
        assert trainable.jit_compile is True
        dataset = tf.data.Dataset.from_tensors((inputs, train_labels))
        history = trainable.fit(dataset, epochs=1, shuffle=False, verbose=0)
        assert np.isfinite(history.history["loss"][0])

    if mixed_precision:
        half = cls(**init_kwargs, dtype="mixed_float16")
        if not half.built:  # A layer creates its weights on its first call.
            _call(half, inputs)
        half.set_weights(obj.get_weights())
        assert all(v.dtype == "float32" for v in half.weights)
        outputs = keras.tree.flatten(_call(half, inputs))
        expected_dtype = expected_mixed_precision_dtype
        if expected_dtype is None and not isinstance(half, keras.Model):
            expected_dtype = "float16"
        if expected_dtype is not None:  # of the first output
            dtype = keras.backend.standardize_dtype(outputs[0].dtype)
            assert dtype == expected_dtype, dtype
        for out, want in zip(outputs, eager, strict=True):
            if not keras.backend.is_float_dtype(out.dtype):
                continue
            out = keras.ops.convert_to_numpy(out).astype("float32")
            assert np.all(np.isfinite(out))
            np.testing.assert_allclose(out, want, atol=2e-2)
    return obj
