"""Weight averaging on Multi30k: the moving average (`training.ema`) against the trained weights
and checkpoint averaging, on one training run, run by hand.

    python benchmarks/multi30k_ema.py [--epochs 8] [--ema 0.995] [--average 5] [--seed 42]
        [--out benchmarks/multi30k_ema.md]

Trains the multi30k_transformer_de_en recipe for `--epochs` epochs (the recipe's settings and
the pipeline's data; `training.ema = --ema`) with the library's own pieces (`PreparedData`,
`build_compiled_model`, `EMAWeights`), keeping at every epoch's end both the trained weights and
their moving average. Then each epoch's trained weights and average, and the mean of the last
`--average` epochs' trained weights (checkpoint averaging, `training.average_last_epochs`) and
of their averages, greedy-decode the validation split (sacreBLEU). Nothing here reads the test
split: this chooses between the averages on validation.

Writes the whole Markdown file through benchmarks/_results.py and prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
from _results import Results

from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.data import as_strings
from keras_s2s.evaluation.scores import score_translations
from keras_s2s.training import CheckpointAverage, EMAWeights, PreparedData
from keras_s2s.training.building import build_compiled_model
from keras_s2s.translator import Translator

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = "multi30k_transformer_de_en"


class Keep(keras.callbacks.Callback):
    """A copy of the model's weights at each epoch's end, where it is placed."""

    def __init__(self):
        super().__init__()
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])


def mean(checkpoints):
    """The checkpoint average of `checkpoints` (lists of weights), as the trainer computes it."""
    averaging = CheckpointAverage(last=len(checkpoints))
    averaging.checkpoints.extend(checkpoints)
    return averaging.average()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--average", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "multi30k_ema.md"))
    args = parser.parse_args()
    results = Results()
    config = apply_overrides(
        load_pipeline(PIPELINE),
        {
            "training.epochs": args.epochs, "training.seed": args.seed, "training.ema": args.ema,
            "training.score_split": "", "training.monitor": "val_loss",
        },
    )  # fmt: skip
    keras.utils.set_random_seed(args.seed)
    data = PreparedData.load(config)
    model = build_compiled_model(config, data)
    inputs = data.fit_inputs(config["training"])
    trained, averaged, ema = Keep(), Keep(), EMAWeights()
    start = time.perf_counter()
    history = model.fit(
        **inputs, epochs=args.epochs, verbose=2, callbacks=[trained, ema, averaged, ema.restore]
    )
    train_seconds = time.perf_counter() - start

    sources, references = as_strings(data.splits["validation"])
    lengths = config["data"]["max_source_length"], config["data"]["max_target_length"]
    translator = Translator(model, data.source_tokenizer, data.target_tokenizer, *lengths)

    def bleu(weights):
        model.set_weights(weights)
        return score_translations(translator.translate(sources), references)["bleu"]

    rows = []
    for epoch in range(args.epochs):
        row = {
            "epoch": epoch + 1,
            "val_loss": history.history["val_loss"][epoch],
            "trained": bleu(trained.weights[epoch]),
            "ema": bleu(averaged.weights[epoch]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    last = slice(args.epochs - args.average, args.epochs)
    averages = {
        "trained": bleu(mean(trained.weights[last])),
        "ema": bleu(mean(averaged.weights[last])),
    }
    figures = {"rows": rows, "averages": averages, "train_seconds": train_seconds}

    signature = score_translations(["a"], ["a"])["bleu_signature"]
    first = args.epochs - args.average + 1
    lines = [
        "# Weight averaging on Multi30k (de -> en): moving average against checkpoint averaging",
        "",
        f"One run of `{PIPELINE}` for {args.epochs} epochs (seed {args.seed}; the recipe's "
        f"settings, `training.ema = {args.ema}`; {train_seconds / 60:.1f} minutes of `fit`). "
        "At each epoch's end the trained weights and their moving average (Keras's `use_ema`, "
        "put in the model by `keras_s2s.training.EMAWeights`) were kept; each then decoded "
        f"the validation split ({len(sources)} sentences) greedily; sacreBLEU ({signature}). "
        "`val_loss` is what `fit` logged: the moving average's (EMAWeights swaps it in for "
        "validation). The test split was not read.",
        "",
        "| epoch | val_loss (average) | BLEU trained weights | BLEU moving average |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['epoch']} | {r['val_loss']:.4f} | {r['trained']:.2f} | {r['ema']:.2f} |"
        for r in rows
    ]
    lines += [
        "",
        f"Checkpoint averaging (the mean of epochs {first}-{args.epochs}, "
        f"`training.average_last_epochs = {args.average}`): of the trained weights "
        f"**{averages['trained']:.2f}**, of the moving averages **{averages['ema']:.2f}**; the "
        f"last epoch alone: trained {rows[-1]['trained']:.2f}, moving average "
        f"{rows[-1]['ema']:.2f}.",
    ]
    results.write(args.out, lines)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
