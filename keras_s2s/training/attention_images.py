"""A callback that writes attention heatmaps to TensorBoard after each epoch."""

from __future__ import annotations

import io
import os

import tensorflow as tf

from keras_s2s.evaluation.plots import plot_attention
from keras_s2s.tokenizers import Tokenizer
from keras_s2s.training.translating_callback import TranslatingCallback


class AttentionImages(TranslatingCallback):
    """Greedy-translates `sources` with the model as it is after each `every`-th epoch and
    writes each one's attention over the source (target tokens on y, source tokens on x) as a
    TensorBoard image `attention/<i>` at step = epoch, into `log_dir`.

    For a model that reports attention (`model.has_attention`: the attention RNNs, and the
    Transformer's last-layer cross-attention averaged over heads); for any other it writes
    nothing. `keras-s2s train` adds it with the first `training.attention_images` sources of
    the validation split (else of the training split) into the run's `logs/attention`.

    Example:
    ```python
    images = keras_s2s.training.AttentionImages(
        ["september 27, 1994"], tokenizer, tokenizer, max_source_length=40,
        max_target_length=10, log_dir="logs/attention")
    model.fit(train, epochs=3, shuffle=False, callbacks=[images])
    ```
    """

    def __init__(
        self,
        sources: list[str],
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        max_source_length: int,
        max_target_length: int,
        log_dir: str | os.PathLike,
        every: int = 1,
    ):
        super().__init__(source_tokenizer, target_tokenizer, max_source_length, max_target_length)
        self.sources = list(sources)
        self.log_dir, self.every = os.fspath(log_dir), every
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or not self.sources or not self.model.has_attention:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for index, text in enumerate(self.sources):
                source, target, weights = self.translator.attention(text)
                png = io.BytesIO()
                plot_attention(source, target, weights, png, title=f"epoch {epoch + 1}: {text}")
                image = tf.image.decode_png(png.getvalue(), channels=3)[None]
                tf.summary.image(f"attention/{index}", image, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
