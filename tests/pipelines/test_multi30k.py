"""A small Multi30k run end to end with the SentencePiece tokenizer: the named pipeline's
recipe on the first 2,000 training pairs with a tiny Transformer (under a minute on 2 cores):
train (the loss falls), evaluate (sacreBLEU on detokenized text against the raw references),
translate, export (the SavedModel translates raw German strings as Keras does)."""

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from keras_s2s import Translator
from keras_s2s.config import apply_overrides, load_pipeline
from keras_s2s.evaluation import evaluate_run
from keras_s2s.export import export
from keras_s2s.run_directory import RunDirectory
from keras_s2s.training import train

MULTI30K = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"
GERMAN = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau mit einem Hut."]


def _subset(tmp_path, split, count):
    """The first `count` pairs of a Multi30k split, as gzip files (the pipeline's format)."""
    paths = []
    for language in ("de", "en"):
        with gzip.open(MULTI30K / f"{split}.{language}.gz", "rt", encoding="utf-8") as f:
            lines = [next(f) for _ in range(count)]
        path = tmp_path / f"{split}.{language}.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.writelines(lines)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    if not MULTI30K.is_dir():
        pytest.skip(f"Multi30k is not beside the repository ({MULTI30K})")
    tmp_path = tmp_path_factory.mktemp("multi30k")
    config = apply_overrides(
        load_pipeline("multi30k_transformer_de_en"),
        {
            "data.train": _subset(tmp_path, "train", 2000),
            "data.validation": _subset(tmp_path, "val", 100),
            "data.test": _subset(tmp_path, "test_2016_flickr", 100),
            "data.vocabulary_size": 500,
            "model.hidden_dim": 64,
            "model.intermediate_dim": 128,
            "model.num_encoder_layers": 1,
            "model.num_decoder_layers": 1,
            "model.dropout": 0.1,
            "training.epochs": 3,
            "training.batch_tokens": 2048,
            "training.schedule_dim": 64,
            "training.warmup_steps": 20,
            "training.learning_rate": 0.5,
            "training.average_last_epochs": 2,
            "evaluation.batch_size": 100,
        },
    )
    run_dir = tmp_path / "run"
    summary = train(config, run_dir, verbose=0)
    return run_dir, summary


def test_small_multi30k_run_learns_and_scores_detokenized_text(small_run):
    run_dir, summary = small_run
    history = RunDirectory(run_dir).metadata()["history"]
    assert summary["epochs"] == 3 and summary["averaged_epochs"] == [2, 3]
    # The loss falls, well below the uniform guess's log(500) = 6.2.
    losses = history["loss"]
    assert losses[-1] < losses[0] - 0.5 and losses[-1] < math.log(500) - 1.0, losses
    assert history["val_loss"][-1] < history["val_loss"][0], history["val_loss"]
    assert all(0.0 <= b <= 100.0 for b in history["validation_bleu"])
    translator = Translator.from_run_directory(run_dir)
    figures = evaluate_run(run_dir, split="test", translator=translator)
    assert figures["examples"] == 100
    # BLEU is sacreBLEU's on the detokenized output against the raw (cased) references.
    with gzip.open(Path(run_dir).parent / "test_2016_flickr.de.gz", "rt") as f:
        sources = f.read().splitlines()
    with gzip.open(Path(run_dir).parent / "test_2016_flickr.en.gz", "rt") as f:
        references = f.read().splitlines()
    hypotheses = translator.translate(sources)
    assert not any("▁" in h for h in hypotheses)  # SentencePiece's word marks are gone.
    assert sum(h != h.strip() for h in hypotheses) == 0
    want = sacrebleu.corpus_bleu(hypotheses, [references])
    assert figures["bleu"] == pytest.approx(want.score, abs=1e-9)
    assert figures["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert any(h for h in hypotheses)


def test_exported_saved_model_translates_raw_german(small_run, tmp_path):
    run_dir, _ = small_run
    paths = export(run_dir, formats=("savedmodel",), output_root=tmp_path)
    loaded = tf.saved_model.load(str(paths["savedmodel"]))
    output = loaded.signatures["serving_default"](text=tf.constant(GERMAN))["translations"]
    exported = [t.decode("utf-8") for t in np.asarray(output).tolist()]
    assert exported == Translator.from_run_directory(run_dir).translate(GERMAN)
