import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.errors import DataError
from keras_s2s.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    CharTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
)

TEXTS = [
    "a man in a blue shirt is standing on a ladder",
    "two young girls are playing in the sand",
    "ein Mann mit einem blauen Hemd steht auf einer Leiter",
    "zwei junge Mädchen spielen im Sand",
    "the dog jumps über the fence",
] * 40


def round_trip(tokenizer, tmp_path, texts):
    ids = tokenizer.tokenize(tf.constant(texts))
    path = tmp_path / ("tok" + tokenizer.asset_suffix)
    tokenizer.save(path)
    reloaded = load_tokenizer(path)
    assert reloaded.fingerprint() == tokenizer.fingerprint()
    assert reloaded.vocabulary_size == tokenizer.vocabulary_size
    again = reloaded.tokenize(tf.constant(texts))
    assert ids.to_list() == again.to_list()
    assert [t.decode() for t in reloaded.detokenize(ids).numpy()] == texts
    return ids


def test_char_round_trip(tmp_path):
    tokenizer = CharTokenizer.build(TEXTS)
    ids = round_trip(tokenizer, tmp_path, ["a blue Mädchen", "über", ""])
    assert ids.row_lengths().numpy().tolist() == [14, 4, 0]
    assert min(ids.flat_values.numpy()) > EOS_ID  # no special ids inside text


def test_sentencepiece_round_trip(tmp_path):
    tokenizer = SentencePieceTokenizer.train(TEXTS, vocabulary_size=120)
    round_trip(tokenizer, tmp_path, ["a man is playing in the sand", "zwei Mädchen"])


def test_detokenize_stops_at_eos_and_drops_pad_and_bos():
    tokenizer = CharTokenizer.build(["abc"])
    a, b, c = (tokenizer.tokenize(tf.constant([ch])).flat_values.numpy()[0] for ch in "abc")
    ids = np.array([[BOS_ID, a, b, EOS_ID, c, PAD_ID], [c, c, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"ab", b"cc"]


def test_unknown_characters_map_to_unk():
    tokenizer = CharTokenizer.build(["abc"])
    assert tokenizer.tokenize(tf.constant(["az"])).to_list() == [[4, 1]]


def test_user_vocabulary_file(tmp_path):
    path = tmp_path / "chars.txt"
    path.write_text("a\nb\n \n", encoding="utf-8")
    tokenizer = CharTokenizer.load(path)
    assert tokenizer.vocabulary_size == 7  # 4 specials + 3 characters
    assert tokenizer.tokenize(tf.constant(["b a"])).to_list() == [[5, 6, 4]]
    bad = tmp_path / "bad.txt"
    bad.write_text("a\nbc\n", encoding="utf-8")
    with pytest.raises(DataError, match="Line 2 of vocabulary file .*bad.txt"):
        CharTokenizer.load(bad)


def test_sentencepiece_with_other_special_ids_is_refused(tmp_path):
    import io

    import sentencepiece as spm

    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS), model_writer=writer, vocab_size=50, minloglevel=2
    )
    with pytest.raises(DataError, match="pad_id=0, unk_id=1, bos_id=2, eos_id=3"):
        SentencePieceTokenizer(writer.getvalue())
