"""Which decoding controls convert to builtin-only TFLite (docs/python.md's table says so).

A small attention model, rebuilt with static shapes as the TFLite export rebuilds it, decoded
by the loop with each strategy and processor inside one function, converted with TFLite
builtins only: greedy search with a target prefix and the length and repetition controls
converts, and so does beam search; sampling does not (its stateless random number ops are not
builtins), nor does the constrained beam search (a strided slice outside the builtin set).
"""

import tempfile

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.decoding import (
    BanSequences,
    BeamSearch,
    ConstrainedBeamSearch,
    ForcePrefix,
    GreedySearch,
    LengthRatio,
    NoRepeatNgram,
    Sampling,
    decode,
)
from keras_s2s.errors import ExportError
from keras_s2s.export.tflite import _frozen, convert, static_model
from keras_s2s.models import Seq2Seq

V, S, L, PAD, EOS = 12, 6, 5, 0, 3


@pytest.fixture(scope="module")
def model():
    model = Seq2Seq(V, V, embedding_dim=4, hidden_dim=8, decoder="luong")
    ids = np.ones((1, 2), "int32")
    model({"encoder_token_ids": ids, "decoder_token_ids": ids})
    return static_model(model, S, L)


def converted(model, strategy, processors):
    """Converts the decoding of `model` with `strategy(extra)` and `processors(extra)`, where
    `extra` is an int32 `[B, 3]` input (prefixes, phrases, a seed)."""

    def fn(source_ids, extra):
        result = decode(
            model.decode_step, model.encode(source_ids, max_length=L), tf.shape(source_ids)[0],
            L, strategy(extra), processors(extra), eos_id=EOS, pad_id=PAD,
            constant_state_keys=model.constant_state_keys,
            source_lengths=tf.reduce_sum(tf.cast(source_ids != PAD, tf.int32), 1),
        )  # fmt: skip
        return {"token_ids": result.token_ids, "scores": result.scores}

    specs = [tf.TensorSpec([None, S], tf.int32), tf.TensorSpec([None, 3], tf.int32)]
    folder = tempfile.mkdtemp()
    tf.saved_model.save(tf.Module(), folder, signatures={"f": _frozen(tf.function(fn, specs))})
    return convert(folder, "float32", ("f",))


def test_greedy_with_prefix_and_controls_and_beam_search_convert(model):
    def controls(extra):
        return [ForcePrefix(extra, PAD), NoRepeatNgram(2), LengthRatio(EOS, 0.5, 2.0),
                BanSequences([[5, 6]])]  # fmt: skip

    assert converted(model, lambda extra: GreedySearch(), controls)[4:8] == b"TFL3"
    assert converted(model, lambda extra: BeamSearch(3, 0.6), lambda extra: [])[4:8] == b"TFL3"


@pytest.mark.parametrize(
    "strategy, op",
    [
        (lambda extra: Sampling(0.8, 4, 0.9, seed=extra[0, 0]), "StatelessRandomUniform"),
        (lambda extra: ConstrainedBeamSearch(3, tf.reshape(extra, [-1, 1, 3])), "StridedSlice"),
    ],
    ids=["sampling", "constrained_beam_search"],
)
def test_sampling_and_constrained_beam_search_need_ops_outside_the_builtins(model, strategy, op):
    with pytest.raises(ExportError, match=op):
        converted(model, strategy, lambda extra: [])
