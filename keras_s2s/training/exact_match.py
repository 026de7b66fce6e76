"""A callback that measures whole-sequence exact match by free-running decoding."""

from __future__ import annotations

from keras_s2s.checks import score_names
from keras_s2s.evaluation.scores import score_translations
from keras_s2s.tokenizers import Tokenizer
from keras_s2s.training.translating_callback import TranslatingCallback
from keras_s2s.translator import DECODING_BATCH_SIZE


class ExactMatch(TranslatingCallback):
    """Greedy-decodes `sources` at the end of every `every`-th epoch and of the last one, and
    logs the exact match, sacreBLEU and chrF.

    Decoding is free running (from bos, the model's own outputs fed back), and the detokenized
    strings are compared with `references` whole: the honest figure, unlike teacher-forced token
    accuracy. The exact match is added to the epoch logs as `name`, and BLEU and chrF (0-100,
    `keras_s2s.evaluation.score_translations`) as `name` with `exact_match` replaced by `bleu`
    and `chrf` (so `ModelCheckpoint` or `EarlyStopping` can monitor them); the exact match is
    kept in `self.history`, all three in `self.scores`.

    Example:
    ```python
    callback = keras_s2s.training.ExactMatch(
        test_sources, test_targets, tokenizer, tokenizer, max_source_length=40,
        max_target_length=10)
    model.fit(train, epochs=3, shuffle=False, callbacks=[callback])
    ```
    """

    def __init__(
        self,
        sources: list[str],
        references: list[str],
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        max_source_length: int,
        max_target_length: int,
        every: int = 1,
        name: str = "exact_match",
        batch_size: int = DECODING_BATCH_SIZE,
    ):
        super().__init__(source_tokenizer, target_tokenizer, max_source_length, max_target_length)
        self.sources, self.references = list(sources), list(references)
        self.every, self.name, self.batch_size = every, name, batch_size
        self.scores: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == (self.params or {}).get("epochs")
        if (epoch + 1) % self.every and not last:
            return
        scores = self.score()
        self.scores.append(scores)
        if logs is not None:
            for score, key in score_names(self.name).items():
                logs[key] = scores[score]

    @property
    def history(self) -> list[float]:
        """The exact match of each scored epoch."""
        return [scores["exact_match"] for scores in self.scores]

    def score(self) -> dict:
        """Greedy-decodes the sources with the model as it is now; `score_translations`'s dict."""
        hypotheses = self.translator.translate(self.sources, batch_size=self.batch_size)
        return score_translations(hypotheses, self.references)
