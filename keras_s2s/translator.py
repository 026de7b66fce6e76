"""`Translator`: strings in, strings out, for a trained model."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_s2s.decoding import Sampling, beam_search, decode, greedy_search
from keras_s2s.decoding.strategies import check_num_results
from keras_s2s.run_directory import RunDirectory
from keras_s2s.tokenizers import Tokenizer

_NO_ATTENTION = "This model reports no attention weights over the source"


class Translator:
    """Translates batches of strings with a trained model and its tokenizers.

    Tokenization and detokenization run tensorflow-text ops; encoding and the decode loop (greedy
    or beam search) run in one `tf.function` per beam size and number of results. Sources
    longer than `max_source_length` tokens are truncated.

    Args:
        model: a model of any family (`keras_s2s.models.EncoderDecoder`: `encode`,
            `decode_step`, `constant_state_keys`, `attention_weights`).
        source_tokenizer: the source tokenizer the model was trained with.
        target_tokenizer: the target tokenizer the model was trained with.
        max_source_length: source tokens kept.
        max_target_length: target tokens generated at most (eos excluded).
        jit_compile: compile the decode functions with XLA.

    Example:
    ```python
    translator = keras_s2s.Translator.from_run_directory("runs/date_seq2seq")
    translator.translate(["september 27, 1994"])  # ["1994-09-27"]
    translator.translate_nbest(["27/09/94"], beam_size=4, num_results=2)
    # [[("1994-09-27", -0.0001), ("1994-09-21", -9.3)]]
    translator.sample(["27/09/94"], num_samples=3, temperature=1.5, seed=1)
    # [[("1994-09-27", -0.002), ("1994-09-27", -0.002), ("1994-09-29", -7.1)]]
    ```
    """

    def __init__(
        self,
        model,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        max_source_length: int,
        max_target_length: int,
        jit_compile: bool = False,
    ):
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.jit_compile = jit_compile
        self._functions = {}

    @classmethod
    def from_run_directory(
        cls,
        path: str | os.PathLike,
        allow_unfinished: bool = False,
        dtype: str | None = None,
        **kwargs,
    ) -> Translator:
        """The translator of a run directory (a run that did not finish needs
        `allow_unfinished=True`: its last checkpoint is used). The model computes under the
        dtype policy it was trained with unless `dtype` (e.g. "float32") says otherwise."""
        run = RunDirectory(path)
        model = run.load_model(allow_unfinished=allow_unfinished, dtype=dtype)
        source_tokenizer, target_tokenizer = run.load_tokenizers()
        return cls(
            model,
            source_tokenizer,
            target_tokenizer,
            max_source_length=run.entry("max_source_length"),
            max_target_length=run.entry("max_target_length"),
            **kwargs,
        )

    @property
    def has_attention(self) -> bool:
        """Whether the model reports attention weights over the source (`attention`)."""
        return self.model.has_attention

    def encode_sources(self, strings, return_truncated: bool = False):
        """Strings `[B]` -> source ids `[B, S]` (truncated, right-padded, S >= 1).

        With `return_truncated`, also returns which rows were longer than `max_source_length`.
        """
        tokens = self.source_tokenizer.tokenize(strings)
        ids = tokens[:, : self.max_source_length]
        width = tf.maximum(tf.cast(ids.bounding_shape(axis=1), tf.int32), 1)
        shape = tf.stack([tf.shape(strings, out_type=tf.int32)[0], width])
        dense = ids.to_tensor(default_value=self.source_tokenizer.pad_id, shape=shape)
        if return_truncated:
            return dense, tokens.row_lengths() > self.max_source_length
        return dense

    def _special_ids(self):
        t = self.target_tokenizer
        return {"bos_id": t.bos_id, "eos_id": t.eos_id, "pad_id": t.pad_id}

    def _decoding_options(self):
        return {**self._special_ids(), "constant_state_keys": self.model.constant_state_keys}

    def _function(self, key, fn):
        if key not in self._functions:
            # Batches differ in source width: trace once for any width, not once per width.
            self._functions[key] = tf.function(
                fn, jit_compile=self.jit_compile, reduce_retracing=True
            )
        return self._functions[key]

    def decode_ids(self, source_ids, beam_size: int = 1, num_results: int = 1, length_penalty=0.0):
        """Source ids `[B, S]` -> `(token_ids [B, N, T], scores [B, N])` (greedy when K = 1)."""

        def decode(source_ids, alpha):
            max_length = self.max_target_length + 1
            state = self.model.encode(source_ids, max_length=max_length)
            batch = tf.shape(source_ids)[0]
            if beam_size == 1:
                ids, scores = greedy_search(
                    self.model.decode_step, state, batch, max_length, **self._decoding_options()
                )
                return ids[:, None], scores[:, None]
            ids, scores, _ = beam_search(
                self.model.decode_step, state, batch, max_length, beam_size=beam_size,
                length_penalty_alpha=alpha, num_results=num_results, **self._decoding_options(),
            )  # fmt: skip
            return ids, scores

        fn = self._function(("ids", beam_size, num_results), decode)
        return fn(
            tf.convert_to_tensor(source_ids, tf.int32),
            tf.convert_to_tensor(length_penalty, tf.float32),
        )

    def decode_with_attention(self, source_ids):
        """Greedy decoding of an attention model, keeping the attention weights of each step.

        Returns `(token_ids [B, T], scores [B], weights [B, T, S])`.
        """
        if not self.has_attention:
            raise ValueError(_NO_ATTENTION)

        def decode(source_ids):
            max_length = self.max_target_length + 1
            state = self.model.encode(source_ids, max_length=max_length)
            return greedy_search(
                self.model.decode_step, state, tf.shape(source_ids)[0], max_length,
                collect=self.model.attention_weights, **self._decoding_options(),
            )  # fmt: skip

        return self._function(("attention",), decode)(tf.convert_to_tensor(source_ids, tf.int32))

    def _translate_batch(self, strings, beam_size, num_results, length_penalty):
        ids, scores = self.decode_ids(
            self.encode_sources(strings), beam_size, num_results, length_penalty
        )
        return self.detokenize_nbest(ids), scores

    def detokenize_nbest(self, ids) -> tf.Tensor:
        """Token ids `[B, N, T]` -> strings `[B, N]`."""
        batch, n = tf.shape(ids)[0], tf.shape(ids)[1]
        texts = self.target_tokenizer.detokenize(tf.reshape(ids, [batch * n, -1]))
        return tf.reshape(texts, [batch, n])

    def translate_nbest(
        self,
        texts: list[str],
        beam_size: int = 4,
        num_results: int = 1,
        length_penalty: float = 0.0,
        batch_size: int = 256,
        progress=None,
    ) -> list[list[tuple[str, float]]]:
        """Beam search: the `num_results` best `(translation, score)` pairs of each text, in
        the order of `texts` (translated in batches of similar lengths). `progress`, if given,
        is called with the number of texts of each batch done (e.g. a `tqdm` bar's `update`).

        Scores are log-probabilities divided by the GNMT length penalty with alpha =
        `length_penalty` (plain log-probabilities at 0). A beam of 1 is greedy search.
        """
        check_num_results(num_results, beam_size)

        def decode_batch(strings, number):
            del number
            return self._translate_batch(strings, beam_size, num_results, length_penalty)

        return self._in_batches(texts, decode_batch, batch_size, progress)

    def sample_ids(self, source_ids, num_samples=1, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        """Source ids `[B, S]` -> `(token_ids [B, N, T], log_probs [B, N])`: `num_samples`
        samples per source (`keras_s2s.decoding.Sampling`; one trace per setting, the seed
        is an input)."""
        checked = Sampling(temperature, top_k, top_p, num_samples=num_samples)

        def sample(source_ids, seed):
            strategy = Sampling(temperature, top_k, top_p, seed, num_samples)
            max_length = self.max_target_length + 1
            state = self.model.encode(source_ids, max_length=max_length)
            batch = tf.shape(source_ids)[0]
            result = decode(
                self.model.decode_step, state, batch, max_length, strategy,
                **self._decoding_options(),
            )  # fmt: skip
            return result.token_ids, result.log_probs

        key = ("sample", num_samples, checked.temperature, checked.top_k, checked.top_p)
        fn = self._function(key, sample)
        return fn(tf.convert_to_tensor(source_ids, tf.int32), tf.constant(seed, tf.int32))

    def sample(
        self,
        texts: list[str],
        num_samples: int = 1,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int = 256,
        progress=None,
    ) -> list[list[tuple[str, float]]]:
        """Random sampling (e.g. for back-translation): `num_samples` `(translation,
        log-probability)` pairs per text, in the order of `texts`, each token drawn from the
        model's distribution scaled by `temperature` and cut to the `top_k` most likely tokens
        (0: all) and to the smallest set whose probability reaches `top_p` (1.0: all).

        The same `seed`, texts and `batch_size` give the same samples; other seeds give
        others. Log-probabilities are the model's (before the temperature and the cuts).
        """
        Sampling(temperature, top_k, top_p, seed, num_samples)  # Checks the settings.

        def decode_batch(strings, number):
            # Each batch its own seed: batches drawing the same numbers would be correlated.
            batch_seed = (int(seed) * 1_000_003 + number) % (2**31 - 1)
            ids, scores = self.sample_ids(
                self.encode_sources(strings), num_samples, temperature, top_k, top_p, batch_seed
            )
            return self.detokenize_nbest(ids), scores

        return self._in_batches(texts, decode_batch, batch_size, progress)

    def _in_batches(self, texts, decode_batch, batch_size, progress):
        """`decode_batch(strings [b], batch number) -> (strings [b, N], scores [b, N])` over
        batches of similar lengths (less padding, and a batch's decoding ends sooner); the
        results go back to the order of `texts`."""
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results = [None] * len(texts)
        for number, start in enumerate(range(0, len(texts), batch_size)):
            indices = order[start : start + batch_size]
            chunk = tf.constant([texts[i] for i in indices], tf.string)
            strings, scores = decode_batch(chunk, number)
            rows = zip(indices, strings.numpy(), scores.numpy(), strict=True)
            for index, row_strings, row_scores in rows:
                results[index] = [
                    (s.decode("utf-8", errors="replace"), float(score))
                    for s, score in zip(row_strings, row_scores, strict=True)
                ]
            if progress is not None:
                progress(len(indices))
        return results

    def translate(self, texts: list[str], beam_size: int = 1, batch_size: int = 512) -> list[str]:
        """Translates a list of strings (greedy, or beam search with `beam_size` > 1)."""
        best = self.translate_nbest(texts, beam_size, 1, batch_size=batch_size)
        return [hypotheses[0][0] for hypotheses in best]

    def attention(self, text: str) -> tuple[list[str], list[str], np.ndarray]:
        """Greedy-translates one text of an attention model and returns its attention weights.

        Returns `(source_tokens, target_tokens, weights [len(target_tokens), len(source_tokens)])`
        where the target tokens include the final eos; row t is the attention while emitting
        target token t.
        """
        if not self.has_attention:
            raise ValueError(_NO_ATTENTION)

        source_ids = self.encode_sources(tf.constant([text]))
        ids, _, weights = self.decode_with_attention(source_ids)
        target = ids.numpy()[0].tolist()
        eos = self.target_tokenizer.eos_id
        length = target.index(eos) + 1 if eos in target else len(target)
        source = [t for t in source_ids.numpy()[0].tolist() if t != self.source_tokenizer.pad_id]
        return (
            [self.source_tokenizer.id_to_token(t) for t in source],
            [self.target_tokenizer.id_to_token(t) for t in target[:length]],
            weights.numpy()[0, :length, : len(source)],
        )
