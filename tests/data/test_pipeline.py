import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.data import (
    count_batch_shapes,
    count_too_long,
    make_dataset,
    prepare_examples,
    teacher_forcing,
)
from keras_s2s.tokenizers import BOS_ID, EOS_ID, CharTokenizer


def pairs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    sources, targets = [], []
    for _ in range(n):
        word = "".join(rng.choice(list("abcdefgh"), size=rng.integers(1, 30)))
        sources.append(word)
        targets.append(word[::-1][: rng.integers(1, 20)])
    return tf.data.Dataset.from_tensor_slices((sources, targets)), sources, targets


def batches_of(ds, tok, **options):
    """`make_dataset` with this file's usual lengths (32/20) and a 256-token budget."""
    settings = dict(max_source_length=32, max_target_length=20, batch_tokens=256)
    return make_dataset(ds, tok, tok, **{**settings, **options})


def test_teacher_forcing_shifts_the_target():
    ds, sources, targets = pairs(3)
    tok = CharTokenizer.build(sources + targets)
    features, labels = next(iter(prepare_examples(ds, tok, tok).apply(teacher_forcing())))
    target = tok.tokenize(tf.constant([targets[0]])).to_list()[0]
    assert features["decoder_token_ids"].numpy().tolist() == [BOS_ID] + target
    assert labels.numpy().tolist() == target + [EOS_ID]
    assert (
        features["encoder_token_ids"].numpy().tolist()
        == tok.tokenize(tf.constant([sources[0]])).to_list()[0]
    )


def test_filter_counts_what_it_drops():
    ds, sources, targets = pairs()
    tok = CharTokenizer.build(sources + targets)
    kept, dropped = count_too_long(prepare_examples(ds, tok, tok), 20, 10)
    expected = sum(len(s) <= 20 and len(t) <= 10 for s, t in zip(sources, targets, strict=True))
    assert (kept, dropped) == (expected, len(sources) - expected)
    batches = make_dataset(
        ds, tok, tok, max_source_length=20, max_target_length=10, batch_tokens=256
    )
    real_rows = sum(int(np.sum(labels.numpy()[:, 0] != 0)) for _, labels in batches)
    assert real_rows == expected


def test_buckets_are_bounded_and_respect_the_token_budget():
    ds, sources, targets = pairs(2000)
    tok = CharTokenizer.build(sources + targets)
    # At most: (a bucket's full batches, its last partial one) x 4 source widths (8 to 32) x 3
    # decoder widths (8 to 24, for 21 positions).
    num_shapes = 2 * 4 * 3
    batches = batches_of(ds, tok, bucket_width=8, shuffle_buffer=500, seed=3)
    shapes, rows = set(), 0
    for features, labels in batches.concatenate(batches):  # two epochs
        enc, dec = features["encoder_token_ids"].shape, features["decoder_token_ids"].shape
        assert enc[0] == dec[0] == labels.shape[0] and dec[1] == labels.shape[1]
        assert enc[1] % 8 == 0 and dec[1] % 8 == 0
        assert enc[0] * max(enc[1], dec[1]) <= 256
        shapes.add((enc, dec))
        rows += int(np.sum(labels.numpy()[:, 0] != 0))
    assert len(shapes) <= num_shapes
    assert rows == 2 * 2000  # nothing dropped
    full = batches_of(ds, tok, bucket_width=8, pad_batch_to_full=True)
    full_shapes = {(f["encoder_token_ids"].shape, l.shape) for f, l in full}  # noqa: E741
    assert len(full_shapes) <= num_shapes // 2
    assert sum(int(np.sum(l.numpy()[:, 0] != 0)) for _, l in full) == 2000  # noqa: E741


def test_buckets_key_on_the_longer_side_so_few_batches_are_partial():
    ds, sources, targets = pairs(2000)
    tok = CharTokenizer.build(sources + targets)
    partial = 0
    for features, labels in batches_of(ds, tok, bucket_width=4, shuffle_buffer=2000, seed=0):
        enc, dec = features["encoder_token_ids"].shape, labels.shape
        # Each side pads to its own longest example, rounded up to the width.
        for ids in (features["encoder_token_ids"].numpy(), labels.numpy()):
            real = int(np.max(np.sum(ids != 0, axis=1)))
            assert ids.shape[1] - 4 < real <= ids.shape[1]
        partial += enc[0] < 256 // max(enc[1], dec[1])
    # At most one partial batch per bucket of the longer side (32 / 4 = 8 buckets); a bucket
    # per (source, target) pair of lengths would leave up to 8 x 6 = 48.
    assert partial <= 8


def test_batch_shuffle_permutes_the_batches_of_an_epoch():
    ds, sources, targets = pairs(2000)
    tok = CharTokenizer.build(sources + targets)

    def epoch(**options):
        batches = batches_of(ds, tok, bucket_width=4, **options)
        return [(f["encoder_token_ids"].shape[1], l.numpy().tolist()) for f, l in batches]  # noqa: E741

    plain, shuffled = epoch(), epoch(batch_shuffle_buffer=1000, seed=0)
    assert sorted(map(str, plain)) == sorted(map(str, shuffled))

    def partial_positions(batches):
        return [
            i
            for i, (s, labels) in enumerate(batches)
            if len(labels) < 256 // max(s, len(labels[0]))
        ]

    # Buckets release their last batches when the examples run out: all at the end, unless
    # the batches are shuffled.
    at_end = partial_positions(plain)
    assert len(at_end) >= 3 and at_end == list(range(len(plain) - len(at_end), len(plain)))
    assert partial_positions(shuffled) != at_end


def test_pipeline_is_deterministic_under_a_seed():
    ds, sources, targets = pairs(600)
    tok = CharTokenizer.build(sources + targets)

    def epochs(seed):
        batches = batches_of(ds, tok, shuffle_buffer=600, seed=seed)
        return [[l.numpy().tolist() for _, l in batches] for _ in range(2)]  # noqa: E741

    a, b, c = epochs(1), epochs(1), epochs(2)
    assert a == b
    assert a[0] != a[1]  # reshuffled each epoch
    assert a != c


def test_bucketing_wastes_less_padding_than_plain_batching():
    ds, sources, targets = pairs(2000)
    tok = CharTokenizer.build(sources + targets)

    def padding_fraction(batches):
        real = total = 0
        for features, labels in batches:
            for x in (features["encoder_token_ids"], labels):
                real += int(np.sum(x.numpy() != 0))
                total += x.numpy().size
        return 1 - real / total

    bucketed = batches_of(ds, tok, batch_tokens=512, bucket_width=4, shuffle_buffer=2000, seed=0)
    plain = (
        prepare_examples(ds, tok, tok)
        .shuffle(2000, seed=0)
        .apply(teacher_forcing())
        .padded_batch(16, padding_values=0)  # each batch padded to its longest
    )
    assert padding_fraction(bucketed) < padding_fraction(plain)


def test_fixed_lengths_and_fixed_rows():
    ds, sources, targets = pairs(300)
    tok = CharTokenizer.build(sources + targets)
    fixed = list(batches_of(ds, tok, fixed_lengths=True, batch_size=64))
    shapes = {(f["encoder_token_ids"].shape, f["decoder_token_ids"].shape) for f, _ in fixed}
    assert {s[1:] for pair in shapes for s in pair} == {(32,), (21,)}
    assert [f["encoder_token_ids"].shape[0] for f, _ in fixed[:-1]] == [64] * (len(fixed) - 1)
    # Fixed rows, still bucketed by length: every full batch holds 64 examples.
    rows = [labels.shape[0] for _, labels in batches_of(ds, tok, batch_size=64)]
    assert max(rows) == 64 and sum(rows) == sum(
        len(s) <= 32 and len(t) <= 20 for s, t in zip(sources, targets, strict=True)
    )


def test_count_batch_shapes_sees_the_last_partial_batch():
    # 20 examples in one bucket (source 5 -> 8, decoder 4 -> 8) of 64 // 8 = 8 rows.
    sources, targets = ["abcde"] * 20, ["abc"] * 20
    ds = tf.data.Dataset.from_tensor_slices((sources, targets))
    tok = CharTokenizer.build(sources + targets)
    settings = dict(max_source_length=8, max_target_length=6, batch_tokens=64)
    shapes = count_batch_shapes(make_dataset(ds, tok, tok, **settings))
    assert shapes == {((8, 8), (8, 8)): 2, ((4, 8), (4, 8)): 1}  # Nothing dropped: 8 + 8 + 4.
    full = count_batch_shapes(make_dataset(ds, tok, tok, pad_batch_to_full=True, **settings))
    assert full == {((8, 8), (8, 8)): 3}


class _OtherIds(CharTokenizer):
    """Characters with other special ids: pad 3, bos 1, eos 0 (unknown 2)."""

    pad_id, unk_id, bos_id, eos_id = 3, 2, 1, 0


@pytest.mark.parametrize("options", [{}, {"pad_batch_to_full": True}, {"fixed_lengths": True}])
def test_batches_take_the_special_ids_from_the_tokenizers(options):
    ds, sources, targets = pairs(200)
    tok = _OtherIds.build(sources + targets)
    target_of = dict(zip(sources, targets, strict=True))
    rows = 0
    for features, labels in batches_of(ds, tok, **options):
        encoder = features["encoder_token_ids"].numpy()
        decoder, labels = features["decoder_token_ids"].numpy(), labels.numpy()
        for enc, dec, lab in zip(encoder, decoder, labels, strict=True):
            n, m = int(np.sum(lab != 3)), int(np.sum(enc != 3))  # tokens before the padding
            assert set(enc[m:]) <= {3} and set(dec[n:]) <= {3} and set(lab[n:]) <= {3}
            if n == 0:  # an all-padding row (`pad_batch_to_full`)
                assert m == 0
                continue
            rows += 1
            source = tok.detokenize(tf.constant([enc[:m]])).numpy()[0].decode()
            target = tok.tokenize(tf.constant([target_of[source]])).to_list()[0]
            assert dec[:n].tolist() == [1, *target] and lab[:n].tolist() == [*target, 0]
    assert rows == sum(len(s) <= 32 and len(t) <= 20 for s, t in zip(sources, targets, strict=True))
