"""Input pipeline throughput and padding on Multi30k (29k pairs, SentencePiece), run by hand.

    python benchmarks/pipeline_throughput.py [--data ../shared/data/multi30k]
        [--out benchmarks/pipeline_throughput.md]

Reports, for the pipeline alone (no model): sentences/s and tokens/s of a first (uncached,
tokenizing) epoch and of a cached epoch, and the padding fraction (padding / all positions of
the encoder ids and labels) with length buckets of several widths versus plain batches padded
to their longest example in random order. Writes the whole Markdown file through
benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tensorflow as tf
from _results import Results

from keras_s2s.data import (
    as_strings,
    make_dataset,
    prepare_examples,
    read_parallel_text,
    teacher_forcing,
)
from keras_s2s.data.pipeline import filter_by_length
from keras_s2s.tokenizers import PAD_ID, SentencePieceTokenizer

HERE = Path(__file__).resolve().parent


def epoch_figures(dataset) -> dict:
    start = time.perf_counter()
    sentences = tokens = positions = batches = 0
    shapes = set()
    for features, labels in dataset:
        enc, lab = features["encoder_token_ids"].numpy(), labels.numpy()
        real_rows = lab[:, 0] != 0
        sentences += int(real_rows.sum())
        real = int((enc != 0).sum() + (lab != 0).sum())
        tokens += real
        positions += enc.size + lab.size
        batches += 1
        shapes.add((enc.shape, lab.shape))
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "sentences_per_s": round(sentences / seconds),
        "tokens_per_s": round(tokens / seconds),
        "sentences": sentences,
        "batches": batches,
        "shapes": len(shapes),
        "padding_fraction": round(1 - tokens / positions, 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared/data/multi30k"))
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--out", default="benchmarks/pipeline_throughput.md")
    args = parser.parse_args()
    header = Results()
    data = Path(args.data)
    pairs = read_parallel_text(data / "train.en.gz", data / "train.de.gz")
    sources, targets = as_strings(pairs)

    start = time.perf_counter()
    tokenizer = SentencePieceTokenizer.train(
        sources + targets, vocabulary_size=args.vocabulary_size
    )
    spm_seconds = time.perf_counter() - start
    lengths = dict(max_source_length=64, max_target_length=64)

    results = {"pairs": len(sources), "sentencepiece_train_seconds": round(spm_seconds, 2)}
    results["vocabulary_size"] = tokenizer.vocabulary_size
    for width in (4, 8, 16):
        ds = make_dataset(
            pairs,
            tokenizer,
            tokenizer,
            **lengths,
            batch_tokens=args.batch_tokens,
            bucket_width=width,
            shuffle_buffer=len(sources),
            seed=1,
        )
        results[f"buckets_width_{width}"] = {
            "first_epoch": epoch_figures(ds),
            "cached_epoch": epoch_figures(ds),
        }

    # Baseline: random order, each batch padded to its longest example, same mean batch rows.
    rows = results["buckets_width_8"]["first_epoch"]["sentences"]
    rows //= results["buckets_width_8"]["first_epoch"]["batches"]
    plain = (
        prepare_examples(pairs, tokenizer, tokenizer)
        .apply(filter_by_length(**lengths))
        .cache()
        .shuffle(len(sources), seed=1)
        .apply(teacher_forcing())
        .padded_batch(max(rows, 1), padding_values=PAD_ID)  # each batch to its longest
        .prefetch(tf.data.AUTOTUNE)
    )
    results["plain_batches_random_order"] = {
        "rows": rows,
        "first_epoch": epoch_figures(plain),
        "cached_epoch": epoch_figures(plain),
    }
    target_tokens = sum(len(t) for t in tokenizer.tokenize(tf.constant(targets)).to_list()) + len(
        targets
    )  # + eos per label sequence
    results["target_tokens_per_epoch"] = int(target_tokens)
    print(
        f"Multi30k train: {len(sources)} pairs; SentencePiece {tokenizer.vocabulary_size} "
        f"trained in {spm_seconds:.1f} s; batch_tokens {args.batch_tokens}"
    )
    print(
        f"{'batching':<28}{'sent/s 1st':>11}{'tok/s 1st':>11}{'sent/s cached':>14}"
        f"{'tok/s cached':>13}{'shapes':>8}{'padding':>9}"
    )
    for name, r in results.items():
        if isinstance(r, dict) and "first_epoch" in r:
            f, c = r["first_epoch"], r["cached_epoch"]
            print(
                f"{name:<28}{f['sentences_per_s']:>11}{f['tokens_per_s']:>11}"
                f"{c['sentences_per_s']:>14}{c['tokens_per_s']:>13}{c['shapes']:>8}"
                f"{c['padding_fraction']:>9.1%}"
            )
    names = {
        "buckets_width_4": "buckets, `bucket_width` 4",
        "buckets_width_8": "buckets, `bucket_width` 8",
        "buckets_width_16": "buckets, `bucket_width` 16",
        "plain_batches_random_order": "no buckets, random order, padded to the batch's longest",
    }
    lines = [
        "# Input pipeline alone on Multi30k train",
        "",
        f"{len(sources):,} pairs (English -> German files), a shared SentencePiece vocabulary "
        f"of {tokenizer.vocabulary_size:,} trained in {spm_seconds:.1f} s, "
        f"{args.batch_tokens:,}-token batches, no model. Padding: the share of padding among "
        "all encoder-id and label positions.",
        "",
        "| batching | sentences/s (1st epoch, tokenizing) | tokens/s (1st) "
        "| sentences/s (cached) | tokens/s (cached) | batch shapes | padding |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, name in names.items():
        f, c = results[key]["first_epoch"], results[key]["cached_epoch"]
        lines.append(
            f"| {name} | {f['sentences_per_s']:,} | {f['tokens_per_s']:,} "
            f"| {c['sentences_per_s']:,} | {c['tokens_per_s']:,} | {c['shapes']} "
            f"| {100 * c['padding_fraction']:.1f}% |"
        )
    print(header.write(args.out, lines))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
