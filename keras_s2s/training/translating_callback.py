"""The base of the callbacks that decode with the model being trained."""

from __future__ import annotations

import keras

from keras_s2s.tokenizers import Tokenizer
from keras_s2s.translator import Translator


class TranslatingCallback(keras.callbacks.Callback):
    """A callback with a `translator`: a `keras_s2s.Translator` of the model being trained
    (its weights as they are when it decodes) and the given tokenizers and lengths."""

    def __init__(
        self,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        max_source_length: int,
        max_target_length: int,
    ):
        super().__init__()
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.max_source_length, self.max_target_length = max_source_length, max_target_length
        self._translator = None

    @property
    def translator(self):
        if self._translator is None or self._translator.model is not self.model:
            self._translator = Translator(
                self.model,
                self.source_tokenizer,
                self.target_tokenizer,
                self.max_source_length,
                self.max_target_length,
            )
        return self._translator
