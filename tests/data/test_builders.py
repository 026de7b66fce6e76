import datetime
import random

import pytest
import tensorflow_datasets as tfds

from keras_s2s.data.builders import Addition, DateNormalization, GeneratedTaskConfig
from keras_s2s.data.builders.addition import sample_addition_example
from keras_s2s.data.builders.date_normalization import NUM_FORMATS, _formats
from keras_s2s.data.splits import as_strings, load_tfds_split

TINY = dict(train_size=300, validation_size=40, test_size=40)


def _splits(builder):
    builder.download_and_prepare()
    return {
        s: as_strings(builder.as_dataset(split=s, as_supervised=True))
        for s in ("train", "validation", "test")
    }


@pytest.mark.parametrize("cls", [DateNormalization, Addition])
def test_generated_splits_are_sized_disjoint_and_deterministic(cls, tmp_path):
    config = GeneratedTaskConfig(name="tiny", seed=7, max_digits=2, **TINY)
    a = _splits(cls(config=config, data_dir=str(tmp_path / "a")))
    b = _splits(cls(config=config, data_dir=str(tmp_path / "b")))
    assert {s: len(v[0]) for s, v in a.items()} == {"train": 300, "validation": 40, "test": 40}
    sources = {s: set(v[0]) for s, v in a.items()}
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    assert all(len(sources[s]) == len(a[s][0]) for s in a)  # unique within a split too
    assert {s: sorted(zip(*v, strict=True)) for s, v in a.items()} == {
        s: sorted(zip(*v, strict=True)) for s, v in b.items()
    }
    other = _splits(
        cls(config=GeneratedTaskConfig(name="tiny2", seed=8, **TINY), data_dir=str(tmp_path / "c"))
    )
    assert sorted(other["train"][0]) != sorted(a["train"][0])


def test_date_formats_are_many_and_map_to_iso():
    assert NUM_FORMATS >= 12
    day = datetime.date(1994, 9, 27)
    formats = _formats(day)
    assert len(set(formats)) == len(formats)
    for expected in ("september 27, 1994", "27/09/94", "Sep 27 1994", "tuesday, 27 september 1994"):
        assert expected in formats
    # No human string maps to two different dates (day-first numeric formats only).
    seen = {}
    start = datetime.date(1950, 1, 1)
    for offset in range(0, 36500, 7):
        d = start + datetime.timedelta(days=offset)
        for text in _formats(d):
            assert seen.setdefault(text, d) == d


def test_addition_examples_are_correct_sums():
    rng = random.Random(0)
    for _ in range(200):
        source, target = sample_addition_example(rng, max_digits=3)
        a, b = source.split("+")
        assert int(a) + int(b) == int(target) and len(a) <= 3 and len(b) <= 3


def test_builders_load_by_name_with_tfds_load(tfds_dir):
    ds = tfds.load("date_normalization/small", split="test", as_supervised=True, data_dir=tfds_dir)
    sources, targets = as_strings(ds)
    assert len(sources) == 500
    assert all(len(t) == 10 and t[4] == "-" for t in targets)
    assert (
        len(as_strings(load_tfds_split("addition", "two_digits", "validation", tfds_dir))[0]) == 500
    )


def test_generating_a_task_says_so_and_mentions_no_download(tmp_path, capfd):
    config = GeneratedTaskConfig(name="tiny", seed=7, **TINY)
    builder = Addition(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare()
    out, err = capfd.readouterr()
    assert "Downloading" not in out + err and "download:" not in out + err
    assert (
        f"keras-s2s: generating the built-in task addition/tiny once (300 / 40 / 40 train / "
        f"validation / test examples, nothing downloaded) into {builder.data_dir}"
    ) in err
    assert "keras-s2s: addition/tiny is ready; later runs reuse it" in err
    builder.download_and_prepare()  # Prepared already: nothing is said.
    assert capfd.readouterr() == ("", "")
