"""Validation decoding during training on a schedule (`training.score_every`,
`training.score_examples`): fewer epochs and examples decoded, the checkpoint still chosen on
the scored epochs."""

import pytest

from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.errors import ConfigError
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import PreparedData, trainer
from keras_s2s.training.callbacks import decoding_callback
from keras_s2s.training.exact_match import ExactMatch
from keras_s2s.training.optimizers import training_settings
from tests.pipeline_files import addition_pipeline

SECTIONS = (
    '[model]\ntype = "seq2seq"\nembedding_dim = 8\nhidden_dim = 16\n'
    '[training]\nepochs = 3\nbatch_tokens = 256\nlearning_rate = 0.01\nscore_split = "validation"\n'
    'monitor = "validation_chrf"\nscore_every = 2\nscore_examples = 20\n'
)


def test_every_second_epoch_and_the_last_are_scored_on_a_subset(tmp_path, monkeypatch):
    config = load_pipeline(str(addition_pipeline(tmp_path, 30, 3, SECTIONS, validation=60)))
    scored = []  # (epoch, number of sources) of each decoding
    score = ExactMatch.score

    def counting(self):
        scored.append(len(self.sources))
        return score(self)

    monkeypatch.setattr(ExactMatch, "score", counting)
    summary = trainer.train(config, tmp_path / "run", verbose=0)
    history = RunDirectory(tmp_path / "run").metadata()["history"]
    # Epoch 2 (every second) and 3 (the last); epoch 1 logs None, the other keys every epoch.
    assert history["validation_chrf"][0] is None
    assert all(v is not None for v in history["validation_chrf"][1:])
    assert len(history["loss"]) == 3 and None not in history["loss"]
    assert summary["best_epoch"] in (2, 3)
    assert summary["validation_chrf"] == max(history["validation_chrf"][1:])
    # Two decodings (epochs 2 and 3) of the first 20 validation sources.
    assert scored == [20, 20]


def test_all_examples_by_default(tmp_path):
    config = load_pipeline(str(addition_pipeline(tmp_path, 30, 3, SECTIONS, validation=60)))
    config = apply_overrides(config, {"training.score_examples": 0})
    data = PreparedData.load(config)
    callback = decoding_callback(data, training_settings(config["training"]))
    assert len(callback.sources) == 60 and callback.every == 2


@pytest.mark.parametrize("key, value", [("score_every", 0), ("score_examples", -1)])
def test_bad_schedules_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"training.{key}"):
        training_settings({key: value})
