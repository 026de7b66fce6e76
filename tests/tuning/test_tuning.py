"""keras-tuner searches: a tiny search finishes, resumes without redoing a trial, and ranks an
absurd learning rate last; the cross-family space; the distributed mode with real workers."""

import json
import os
import subprocess
import sys
import time

import keras_tuner
import pytest

from keras_s2s.checks import check_config
from keras_s2s.cli.main import main
from keras_s2s.config import load_pipeline
from keras_s2s.errors import ConfigError
from keras_s2s.models import MODELS
from keras_s2s.tuning import PipelineHyperModel, check_space, objective_name, tune
from tests.pipeline_files import addition_pipeline

SPACE = '[search.space]\n"training.learning_rate" = [1e-6, 0.01]\n"model.hidden_dim" = [16, 32]\n'


def tiny_pipeline(tmp_path, search="", space=SPACE):
    return addition_pipeline(
        tmp_path, 50, 3,
        sections='[model]\ntype = "seq2seq"\nembedding_dim = 8\nhidden_dim = 16\ncell = "gru"\n'
        "[training]\nepochs = 2\nbatch_tokens = 256\n"
        f'[search]\nobjective = "val_loss"\nmax_trials = 3\n{search}{space}',
    )  # fmt: skip


def test_a_tiny_search_finishes_resumes_and_ranks_the_absurd_learning_rate_last(
    tmp_path, capsys, monkeypatch
):
    pipeline, directory = tiny_pipeline(tmp_path), tmp_path / "search"
    argv = ["tune", str(pipeline), "--directory", str(directory)]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["trials"] == 3 and result["objective"] == "val_loss"
    assert any(line.startswith("Best trial") for line in out)
    # keras-tuner's progress display: each trial as it starts and ends.
    assert sum(line.startswith("Search: Running Trial #") for line in out) == 3
    assert sum(line.startswith("Trial ") and "Complete [" in line for line in out) == 3
    trials = [json.loads(p.read_text()) for p in directory.glob("tiny/trial_*/trial.json")]
    scores = {t["hyperparameters"]["values"]["training.learning_rate"]: t["score"] for t in trials}
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)
    # The validation loss: a learning rate of 1e-6 leaves the model where it started.
    assert max(scores.values()) > min(scores.values()) + 0.3
    worst = max(trials, key=lambda t: t["score"])
    assert worst["hyperparameters"]["values"]["training.learning_rate"] == 1e-6
    assert result["best_hyperparameters"]["training.learning_rate"] == 0.01
    # The best trial's pipeline file is one `keras-s2s train` takes as is.
    best = load_pipeline(result["best_config"])
    check_config(best)
    assert best["training"]["learning_rate"] == 0.01
    assert best["model"]["hidden_dim"] == result["best_hyperparameters"]["model.hidden_dim"]

    # Run again in the same directory: the search resumes and trains no trial again.
    fits = []
    fit = PipelineHyperModel.fit
    monkeypatch.setattr(PipelineHyperModel, "fit", lambda *a, **k: fits.append(1) or fit(*a, **k))
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fits == [] and again["best_trial"] == result["best_trial"]


def test_the_default_objective_is_free_running_decoding(tmp_path):
    config = load_pipeline(str(tiny_pipeline(tmp_path)))
    config["search"]["objective"] = ""
    assert objective_name(config) == "validation_exact_match"  # Characters: whole answers.
    config["data"]["tokenizer"] = "sentencepiece"
    assert objective_name(config) == "validation_bleu"
    hypermodel = PipelineHyperModel(config)
    assert hypermodel.config["training"]["score_split"] == "validation"
    # A SentencePiece trial runs (keras-tuner's clear_session before each trial destroys the
    # tokenizer's TensorFlow resource; the trial renews it) and is scored by validation BLEU.
    config["search"].update(epochs=1, max_trials=1)
    result = tune(config, directory=tmp_path / "search", data=hypermodel.data, verbose=0)
    assert result["objective"] == "validation_bleu" and 0.0 <= result["best_score"] <= 100.0


def test_the_cross_family_space_sets_each_family_only_its_own_keys(tmp_path):
    space = (
        '[search.space]\n"model.type" = ["seq2seq", "transformer"]\n'
        '"model.hidden_dim" = [32]\n"model.num_heads" = [2]\n"model.decoder" = ["luong"]\n'
    )
    config = load_pipeline(str(tiny_pipeline(tmp_path, space=space)))
    hypermodel = PipelineHyperModel(config)
    for family in ("seq2seq", "transformer"):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("model.type", family)
        trial = hypermodel.trial_config(hp)
        check_config(trial)  # Only keys the family takes.
        assert trial["model"]["type"] == family and trial["model"]["hidden_dim"] == 32
        assert ("num_heads" in trial["model"]) == (family == "transformer")
        assert ("decoder" in trial["model"]) == ("cell" in trial["model"]) == (family == "seq2seq")
    # Each family's default space names only its own arguments.
    for family in ("seq2seq", "transformer"):
        config["model"] = {"type": family}
        config["search"]["space"] = {}
        PipelineHyperModel(config)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_a_search_over_each_familys_default_space_runs_through_the_cli(family, tmp_path, capsys):
    """No `[search.space]`: the family's `search_space()` (its booleans included: keras-tuner's
    `Choice` turns `[False, True]` into ints, which the config check refuses)."""
    pipeline = addition_pipeline(
        tmp_path, 20, 2, validation=20,
        sections=f'[model]\ntype = "{family}"\n[training]\nbatch_tokens = 512\n'
        '[search]\nobjective = "val_loss"\n',
    )  # fmt: skip
    directory = tmp_path / "search"
    # One trial: what the test checks is the space and the types of the values it draws (the
    # search over several trials is tested above, test-time budget).
    argv = ["tune", str(pipeline), "--max-trials", "1", "--epochs", "1", "--directory"]
    assert main([*argv, str(directory)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["trials"] == 1
    trials = [json.loads(p.read_text()) for p in directory.glob("tiny/trial_*/trial.json")]
    assert len(trials) == 1 and all(t["status"] == "COMPLETED" for t in trials)
    space = MODELS[family].search_space()
    booleans = [k for k, spec in space.items() if isinstance(spec, list) and spec[0] is False]
    assert booleans  # Each family's default space has a boolean argument.
    best = load_pipeline(result["best_config"])
    check_config(best)
    for name in booleans:
        for trial in trials:
            assert isinstance(trial["hyperparameters"]["values"][f"model.{name}"], bool)
        assert isinstance(best["model"][name], bool)


@pytest.mark.parametrize(
    "space, message",
    [
        ({"data.vocabulary_size": [100]}, "only 'model.\\*' and 'training.\\*'"),
        ({"model.num_heads": [2]}, "no searched model type \\(seq2seq\\) has an argument"),
        ({"training.learning_rate": {"min": 1.0}}, "a range is \\{min, max\\}"),
        ({"training.learning_rate": {"min": 1.0, "max": 0.1}}, "min must be below max"),
        ({"model.type": ["rnn"]}, "list of model types"),
    ],
)
def test_bad_search_spaces_name_the_entry(space, message, tmp_path):
    config = load_pipeline(str(tiny_pipeline(tmp_path)))
    with pytest.raises(ConfigError, match=message):
        check_space(space, config)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_distributed_search_runs_every_trial_once(tmp_path):
    """keras-tuner's own chief/worker mode: one chief (the oracle) and two workers on
    127.0.0.1, bounded in time and all killed on failure; 4 trials, each run exactly once."""
    pipeline = tiny_pipeline(tmp_path, space=SPACE + '"model.cell" = ["gru", "lstm"]\n')
    port = str(_free_port())
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {
            **os.environ,
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": port,
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        command = [sys.executable, "-m", "keras_s2s.cli.main", "tune", str(pipeline)]
        command += ["--max-trials", "4", "--directory", str(tmp_path / "search")]
        processes[tuner_id] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if tuner_id == "chief":
            time.sleep(3)  # The oracle server starts first.
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=420)
    finally:
        for process in processes.values():
            process.kill()
    for tuner_id, process in processes.items():
        assert process.returncode == 0, (tuner_id, outputs[tuner_id][1][-3000:])
    last = {t: json.loads(out.strip().splitlines()[-1]) for t, (out, _) in outputs.items()}
    assert last["chief"]["trials"] == 4
    assert last["tuner0"]["trials_run"] + last["tuner1"]["trials_run"] == 4
    files = (tmp_path / "search").glob("tiny/trial_*/trial.json")
    trials = [json.loads(p.read_text()) for p in files]
    assert len(trials) == 4 and all(t["status"] == "COMPLETED" for t in trials)
