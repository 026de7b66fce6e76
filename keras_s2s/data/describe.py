"""Figures about a pipeline's data: sizes, vocabularies, lengths, skipped and dropped examples."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_s2s.data.pipeline import prepare_examples
from keras_s2s.data.splits import as_strings, available_splits, load_splits
from keras_s2s.data.vocabulary import build_tokenizers


def _length_stats(lengths: np.ndarray) -> dict:
    if lengths.size == 0:
        return {"min": 0, "mean": 0.0, "p95": 0, "max": 0}
    return {
        "min": int(lengths.min()),
        "mean": round(float(lengths.mean()), 2),
        "p95": int(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
    }


def describe_data(config: dict) -> dict:
    """Describes the data of a merged pipeline config (tokenizers built as training would)."""
    data = config["data"]
    skipped = {}
    splits = load_splits(data, splits=available_splits(data), skipped=skipped)
    sources, targets = as_strings(splits["train"])
    source_tokenizer, target_tokenizer = build_tokenizers(data, sources, targets)
    out = {
        "pipeline": config["name"],
        "tokenizer": data["tokenizer"],
        "shared_vocabulary": source_tokenizer is target_tokenizer,
        "source_vocabulary_size": source_tokenizer.vocabulary_size,
        "target_vocabulary_size": target_tokenizer.vocabulary_size,
        "max_source_length": data["max_source_length"],
        "max_target_length": data["max_target_length"],
    }
    for split, dataset in splits.items():
        examples = prepare_examples(dataset, source_tokenizer, target_tokenizer)
        lengths = examples.map(lambda e: (tf.size(e["source"]), tf.size(e["target"]) - 2)).batch(
            8192
        )
        src, tgt = [], []
        for s, t in lengths.as_numpy_iterator():
            src.append(s)
            tgt.append(t)
        src = np.concatenate(src) if src else np.zeros([0], np.int32)
        tgt = np.concatenate(tgt) if tgt else np.zeros([0], np.int32)
        # The rule of `filter_by_length`, applied to the lengths already at hand.
        too_long = (src > data["max_source_length"]) | (tgt > data["max_target_length"])
        dropped = int(too_long.sum())
        out[split] = {
            "examples": int(src.size),
            "source_tokens": _length_stats(src),
            "target_tokens": _length_stats(tgt),
            "too_long": dropped,
            # Pairs with an empty source or target, skipped when the split's file was read.
            "skipped_empty": skipped[split],
        }
    out["examples"] = {split: out[split]["examples"] for split in splits}
    return out
