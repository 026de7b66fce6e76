"""Ensembles: several models that share the target vocabulary, decoded as one.

`Ensemble` answers the decoding contract (`encode`, `decode_step`, `constant_state_keys`; see
`keras_s2s.models.EncoderDecoder`) by running every model on the same tokens and averaging
their log-probabilities at each step; each model keeps its own state (under keys prefixed
with its index). Every strategy and processor of the loop, and `Translator`, take it as they
take one model. It knows the models only through that contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


class Ensemble:
    """The average of `models`' log-probabilities (Args: `models`, two or more models of any
    families with the same source and target vocabularies)."""

    has_attention = False

    def __init__(self, models: Sequence):
        models = list(models)
        if len(models) < 2:
            raise ValueError(f"An ensemble needs two or more models. Received: {len(models)}")
        sizes = {(m.source_vocabulary_size, m.target_vocabulary_size) for m in models}
        if len(sizes) > 1:
            raise ValueError(
                "The models of an ensemble must share their vocabularies. Received (source, "
                f"target) vocabulary sizes {sorted(sizes)}"
            )
        self.models = models
        self.pad_id = models[0].pad_id
        self.source_vocabulary_size, self.target_vocabulary_size = sizes.pop()
        self.constant_state_keys = tuple(
            f"{i}/{key}" for i, m in enumerate(models) for key in m.constant_state_keys
        )

    def _split(self, state) -> list[dict]:
        parts = [{} for _ in self.models]
        for key, value in state.items():
            index, _, name = key.partition("/")
            parts[int(index)][name] = value
        return parts

    @staticmethod
    def _join(states) -> dict:
        return {
            f"{i}/{key}": value for i, state in enumerate(states) for key, value in state.items()
        }

    def to_source_width(self, encoder_token_ids):
        """The source ids as the first model reads them (every model encodes its own way)."""
        return self.models[0].to_source_width(encoder_token_ids)

    def encode(self, encoder_token_ids, max_length=None) -> dict:
        return self._join([m.encode(encoder_token_ids, max_length) for m in self.models])

    def decode_step(self, token_ids, state, step=None):
        """The mean of the models' log-probabilities `[R, V]` and every model's new state."""
        log_probs, states = [], []
        for model, part in zip(self.models, self._split(state), strict=True):
            logits, new_state = model.decode_step(token_ids, part, step)
            log_probs.append(tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1))
            states.append(new_state)
        return tf.add_n(log_probs) / len(log_probs), self._join(states)

    def attention_weights(self, state):
        del state
        return None

    def __call__(self, inputs, training=False):
        """The training call (teacher forcing, for scoring): the mean log-probabilities
        `[B, T, V]`."""
        outputs = [
            tf.nn.log_softmax(tf.cast(m(inputs, training=training), tf.float32), axis=-1)
            for m in self.models
        ]
        return tf.add_n(outputs) / len(outputs)
