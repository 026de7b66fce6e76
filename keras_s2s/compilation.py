"""What the backend is compiling for, asked by layers that choose between static and dynamic
shapes (kept out of `keras_s2s.layers`, which uses Keras only)."""

import keras


def in_xla_context() -> bool:
    """True while tracing for XLA (`jit_compile=True`), where shapes must be static; True on
    backends other than TensorFlow too (JAX's jit needs static shapes)."""
    if keras.backend.backend() != "tensorflow":
        return True
    # Only under the TensorFlow backend (a layer must import Keras only).
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
