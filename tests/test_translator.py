import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_s2s
from keras_s2s.models import Seq2Seq
from keras_s2s.run_directory import RunDirectory
from keras_s2s.tokenizers import CharTokenizer

TEXTS = ["12+34", "7+8", "99+1", ""]


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory):
    """A run directory holding a small (untrained) Bahdanau attention model."""
    path = tmp_path_factory.mktemp("runs") / "attention"
    tokenizer = CharTokenizer.build(["0123456789+"])
    model = Seq2Seq(
        tokenizer.vocabulary_size, tokenizer.vocabulary_size, embedding_dim=8, hidden_dim=16,
        decoder="bahdanau", reverse_source=True,
    )  # fmt: skip
    run = RunDirectory(path)
    run.create({"name": "attention"})
    run.write_metadata(
        {
            "max_source_length": 8,
            "max_target_length": 5,
            **run.save_tokenizers(tokenizer, tokenizer),
        }
    )
    model.save(run.model_path)
    return path


def test_beam_and_nbest_through_the_translator(attention_run):
    translator = keras_s2s.Translator.from_run_directory(attention_run)
    greedy = translator.translate(TEXTS)
    assert translator.translate(TEXTS, beam_size=1) == greedy
    nbest = translator.translate_nbest(TEXTS, beam_size=3, num_results=3, length_penalty=0.6)
    assert [len(h) for h in nbest] == [3, 3, 3, 3]
    for hypotheses in nbest:
        scores = [score for _, score in hypotheses]
        assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="num_results must be between 1 and the beam size 2"):
        translator.translate_nbest(TEXTS, beam_size=2, num_results=3)


def test_attention_weights_of_one_translation(attention_run):
    translator = keras_s2s.Translator.from_run_directory(attention_run)
    source, target, weights = translator.attention("12+34")
    assert source == ["1", "2", "+", "3", "4"]
    assert weights.shape == (len(target), 5)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_translate_command_with_beam_nbest_and_attention_plot(attention_run, tmp_path):
    png = tmp_path / "attention.png"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_s2s.cli.main", "translate", str(attention_run),
         "12+34", "5+5", "--beam", "3", "--nbest", "2", "--plot-attention", str(png)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(" ||| ")[0] for line in lines[:-1]] == ["0", "0", "1", "1"]
    assert all(len(line.split(" ||| ")) == 3 for line in lines[:-1])
    figures = json.loads(lines[-1])
    assert figures["beam"] == 3 and figures["nbest"] == 2
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_translate_command_rejects_bad_beam_options(attention_run, capsys):
    from keras_s2s.cli.main import main

    assert main(["translate", str(attention_run), "1+1", "--beam", "2", "--nbest", "3"]) == 2
    assert "--nbest must be between 1 and --beam" in capsys.readouterr().err
