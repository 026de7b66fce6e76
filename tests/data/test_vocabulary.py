import pytest
import tensorflow as tf

from keras_s2s.config import DEFAULTS, merge
from keras_s2s.data import build_tokenizers
from keras_s2s.errors import ConfigError
from keras_s2s.run_directory import RunDirectory
from keras_s2s.tokenizers import CharTokenizer, SentencePieceTokenizer

SOURCES = ["a small dog runs", "two cats sleep", "the big dog sleeps"] * 30
TARGETS = ["ein kleiner Hund rennt", "zwei Katzen schlafen", "der große Hund schläft"] * 30


def test_shared_vocabulary_is_one_tokenizer_built_from_both_sides():
    data = merge(DEFAULTS["data"], {"tokenizer": "char"})
    source, target = build_tokenizers(data, SOURCES, TARGETS)
    assert source is target
    assert "ß" in source.vocabulary and "p" in source.vocabulary  # target-only, source-only


def test_separate_vocabularies_round_trip_through_a_run_directory(tmp_path):
    data = merge(
        DEFAULTS["data"],
        {"tokenizer": "sentencepiece", "shared_vocabulary": False, "vocabulary_size": 40},
    )
    source, target = build_tokenizers(data, SOURCES, TARGETS)
    assert source is not target
    assert isinstance(source, SentencePieceTokenizer)
    run = RunDirectory(tmp_path)
    run.create({"name": "t"})
    run.write_metadata(run.save_tokenizers(source, target))
    assert {p.name for p in tmp_path.iterdir()} >= {"source.spm.model", "target.spm.model"}
    source2, target2 = run.load_tokenizers()
    text = tf.constant(["zwei Katzen schlafen"])
    assert target2.tokenize(text).to_list() == target.tokenize(text).to_list()
    assert source2.fingerprint() == source.fingerprint() != target2.fingerprint()


def test_users_own_vocabulary_files(tmp_path):
    mine = CharTokenizer.build(SOURCES + TARGETS)
    path = mine.save(tmp_path / "mine.chars.txt")
    data = merge(DEFAULTS["data"], {"vocabulary": path})
    source, target = build_tokenizers(data, ["zzz"], ["qqq"])
    assert source.vocabulary == mine.vocabulary and source is target
    with pytest.raises(ConfigError, match="shared_vocabulary is true"):
        build_tokenizers({**data, "target_vocabulary": path}, SOURCES, TARGETS)
