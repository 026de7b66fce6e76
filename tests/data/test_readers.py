import gzip

import pytest

from keras_s2s.config import DEFAULTS, merge
from keras_s2s.data import read_dlfs2, read_parallel_text, read_tsv
from keras_s2s.data.describe import describe_data
from keras_s2s.data.splits import as_strings, load_splits
from keras_s2s.errors import ConfigError, DataError


def write(path, text: bytes):
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return str(path)


def test_parallel_text_plain_and_gzip(tmp_path):
    src = write(tmp_path / "a.en.gz", b"a cat\nthe dog\n")
    tgt = write(tmp_path / "a.de", b"eine Katze\nder Hund\n")
    assert as_strings(read_parallel_text(src, tgt)) == (
        ["a cat", "the dog"],
        ["eine Katze", "der Hund"],
    )


def test_tsv_and_dlfs2(tmp_path):
    tsv = write(tmp_path / "x.tsv", b"1+1\t2\n10+5\t15\r\n")
    assert as_strings(read_tsv(tsv)) == (["1+1", "10+5"], ["2", "15"])
    dl = write(tmp_path / "add.txt", b"16+75  _91  \n52+607 _659 \n")
    assert as_strings(read_dlfs2(dl)) == (["16+75", "52+607"], ["91", "659"])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="File not found: .*nope.txt"):
        read_tsv(tmp_path / "nope.txt")


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="File is empty: .*empty.tsv"):
        read_tsv(write(tmp_path / "empty.tsv", b"\n"))


def test_line_counts_differ(tmp_path):
    src = write(tmp_path / "s.txt", b"a\nb\nc\n")
    tgt = write(tmp_path / "t.txt", b"x\ny\n")
    with pytest.raises(DataError, match=r"s.txt has 3 lines, .*t.txt has 2 lines"):
        read_parallel_text(src, tgt)


def test_line_without_separator(tmp_path):
    path = write(tmp_path / "d.txt", b"1+1_2\n3+4 7\n")
    with pytest.raises(DataError, match=r"Line 2 of .*d.txt has no separator '_'"):
        read_dlfs2(path)


def test_invalid_utf8(tmp_path):
    path = write(tmp_path / "bad.tsv.gz", b"ok\tfine\nbad \xff\tx\n")
    with pytest.raises(DataError, match=r"Invalid UTF-8 in .*bad.tsv.gz, line 2"):
        read_tsv(path)


def test_holdout_splits_from_one_file(tmp_path):
    lines = "".join(f"{i}+{i}_{2 * i}\n" for i in range(100)).encode()
    path = write(tmp_path / "add.txt", lines)
    data = merge(
        DEFAULTS["data"],
        {"source": "dlfs2", "train": [path], "test_size": 10, "validation_size": 5},
    )
    splits = {k: as_strings(v) for k, v in load_splits(data).items()}
    assert [len(splits[s][0]) for s in ("train", "validation", "test")] == [85, 5, 10]
    assert not set(splits["train"][0]) & set(splits["test"][0])
    again = {k: as_strings(v) for k, v in load_splits(data).items()}
    assert again == splits
    with pytest.raises(ConfigError, match="No validation data"):
        load_splits({**data, "validation_size": 0})


def test_real_dlfs2_and_multi30k_files(shared_data):
    sources, targets = as_strings(read_dlfs2(shared_data / "dlfs2" / "date.txt"))
    assert (
        len(sources) == 50000 and sources[0] == "september 27, 1994" and targets[0] == "1994-09-27"
    )
    m30k = shared_data / "multi30k"
    sources, targets = as_strings(read_parallel_text(m30k / "val.en.gz", m30k / "val.de.gz"))
    assert len(sources) == len(targets) == 1014


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_byte_order_mark_is_dropped(tmp_path, suffix):
    src = write(tmp_path / f"s.txt{suffix}", BOM + b"ab\ncd\n")
    tgt = write(tmp_path / f"t.txt{suffix}", BOM + b"x\ny\n")
    assert as_strings(read_parallel_text(src, tgt)) == (["ab", "cd"], ["x", "y"])
    tsv = write(tmp_path / f"x.tsv{suffix}", BOM + b"1+1\t2\n")
    assert as_strings(read_tsv(tsv)) == (["1+1"], ["2"])
    dl = write(tmp_path / f"d.txt{suffix}", BOM + b"1+1_2 \n")
    assert as_strings(read_dlfs2(dl)) == (["1+1"], ["2"])
    with pytest.raises(DataError, match="File is empty: .*bom-only"):
        read_tsv(write(tmp_path / f"bom-only{suffix}", BOM + b"\n"))


def test_tsv_line_needs_exactly_two_columns(tmp_path):
    path = write(tmp_path / "x.tsv", b"1+1\t2\n2+2\t4\textra\n")
    with pytest.raises(DataError, match=r"Line 2 of .*x.tsv has 3 columns separated by '\\t'"):
        read_tsv(path)
    with pytest.raises(DataError, match=r"Line 1 of .*y.tsv has no separator '\\t'"):
        read_tsv(write(tmp_path / "y.tsv", b"1+1 2\n"))
    # DLFS2 still splits at the first separator.
    dl = write(tmp_path / "d.txt", b"a_b_c\n")
    assert as_strings(read_dlfs2(dl)) == (["a"], ["b_c"])


def test_empty_pairs_are_skipped(tmp_path):
    src = write(tmp_path / "s.txt", b"a\n\nb\n  \nc\n")
    tgt = write(tmp_path / "t.txt", b"x\ny\n\nz\nw\n")
    assert as_strings(read_parallel_text(src, tgt)) == (["a", "c"], ["x", "w"])
    tsv = write(tmp_path / "x.tsv", b"a\tx\n\tb\nc\t\n \t \n\nd\te\n")
    assert as_strings(read_tsv(tsv)) == (["a", "d"], ["x", "e"])
    dl = write(tmp_path / "d.txt", b"1+1_2\n    _4\n3+3_  \n   \n5+5_10\n")
    assert as_strings(read_dlfs2(dl)) == (["1+1", "5+5"], ["2", "10"])


def test_a_file_of_empty_pairs_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"Every pair in .*e.tsv has an empty source or target"):
        read_tsv(write(tmp_path / "e.tsv", b"a\t\n\tb\n"))
    src = write(tmp_path / "s.txt", b"a\n\n")
    tgt = write(tmp_path / "t.txt", b"\nb\n")
    with pytest.raises(DataError, match=r"Every pair in .*s.txt and .*t.txt has an empty"):
        read_parallel_text(src, tgt)


def test_load_splits_reports_skipped_pairs(tmp_path):
    train = write(
        tmp_path / "train.tsv", "".join(f"{i}\t{i}\n" for i in range(30)).encode() + b"a\t\n\tb\n\n"
    )
    validation = write(tmp_path / "val.tsv", b"1\t1\n \t2\n")
    data = merge(
        DEFAULTS["data"],
        {"source": "tsv", "train": [train], "validation": [validation], "test_size": 5},
    )
    skipped = {}
    splits = load_splits(data, skipped=skipped)
    assert skipped == {"train": 3, "validation": 1, "test": 0}
    assert [len(as_strings(splits[s])[0]) for s in ("train", "validation", "test")] == [25, 1, 5]
    skipped = {"stale": 9}
    load_splits(data, splits=("validation",), skipped=skipped)
    assert skipped == {"stale": 9, "validation": 1}


def test_describe_data_reports_skipped_pairs(tmp_path):
    train = write(
        tmp_path / "train.txt", "".join(f"{i}_{i}\n" for i in range(20)).encode() + b"_7\n"
    )
    config = merge(
        DEFAULTS,
        {"name": "t", "data": {"source": "dlfs2", "train": [train], "validation_size": 4}},
    )
    out = describe_data(config)
    assert out["train"]["skipped_empty"] == 1 and out["validation"]["skipped_empty"] == 0
    assert out["examples"] == {"train": 16, "validation": 4}
