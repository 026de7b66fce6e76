import pytest

from keras_s2s.config import (
    DEFAULTS,
    apply_overrides,
    available_pipelines,
    load_pipeline,
    parse_override,
)
from keras_s2s.errors import ConfigError
from keras_s2s.training import build_model


def test_named_pipelines_load_and_validate():
    names = available_pipelines()
    assert {"date_seq2seq", "addition_seq2seq"} <= set(names)
    for name in names:
        config = load_pipeline(name)
        assert config["name"] == name
        data = config["data"]
        model = build_model(
            config["model"], 40, 40, data["max_source_length"], data["max_target_length"]
        )
        assert model.count_params() > 0


def test_unknown_pipeline_lists_the_known_ones():
    with pytest.raises(ConfigError, match="Unknown pipeline 'nope'. Available: .*date_seq2seq"):
        load_pipeline("nope")


def test_unknown_key_and_invalid_values_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nepochz = 3\n")
    with pytest.raises(ConfigError, match=r"Unknown config key 'training.epochz' in .*bad.toml"):
        load_pipeline(str(bad))
    bad.write_text('[training]\nepochs = "ten"\n')
    with pytest.raises(ConfigError, match=r"'training.epochs' .*'ten' \(expected int\)"):
        load_pipeline(str(bad))
    bad.write_text("[training]\nepochs = 0\n")
    with pytest.raises(ConfigError, match=r"'training.epochs' .*0 \(must be > 0\)"):
        load_pipeline(str(bad))
    bad.write_text('[data]\ntokenizer = "bpe"\n')
    with pytest.raises(ConfigError, match=r"'data.tokenizer' .*'bpe' \(choose from char"):
        load_pipeline(str(bad))
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="Cannot parse pipeline file"):
        load_pipeline(str(bad))


def test_a_renamed_key_is_read_under_its_new_name_with_a_warning(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text('[training]\nexact_match_split = "validation"\n')
    with pytest.warns(FutureWarning, match=r"'training.exact_match_split' in .*old.toml is now "):
        config = load_pipeline(str(old))
    assert config["training"]["score_split"] == "validation"
    assert "exact_match_split" not in config["training"]
    with pytest.warns(FutureWarning, match="in the overrides is now 'training.score_split'"):
        updated = apply_overrides(config, {"training.exact_match_split": "test"})
    assert updated["training"]["score_split"] == "test"
    old.write_text('[training]\nexact_match_split = "test"\nscore_split = "test"\n')
    with pytest.raises(ConfigError, match="both given in .*old.toml: 'exact_match_split' is "):
        load_pipeline(str(old))


def test_overrides():
    config = load_pipeline("date_seq2seq")
    assert parse_override("training.epochs=3") == ("training.epochs", 3)
    assert parse_override("data.name=addition") == ("data.name", "addition")
    updated = apply_overrides(config, dict([parse_override("training.learning_rate=0.01")]))
    assert updated["training"]["learning_rate"] == 0.01
    assert config["training"]["learning_rate"] != 0.01  # the original is untouched
    with pytest.raises(ConfigError, match="Unknown config section 'trainin'"):
        apply_overrides(config, {"trainin.epochs": 1})


def test_model_keys_are_checked_against_the_constructor():
    with pytest.raises(ConfigError, match="Unknown config key 'model.hiden_dim'"):
        build_model({**DEFAULTS["model"], "hiden_dim": 3}, 10, 10)
    with pytest.raises(ConfigError, match="Unknown model type 'rnnlm'"):
        build_model({"type": "rnnlm"}, 10, 10)
    with pytest.raises(ConfigError, match="cell='xyz'"):
        build_model({"type": "seq2seq", "cell": "xyz"}, 10, 10)


def test_unlogged_monitor_fails_before_training(tmp_path):
    from keras_s2s.training import train

    config = apply_overrides(load_pipeline("date_seq2seq"), {"training.monitor": "val_bleu"})
    with pytest.raises(ConfigError, match="training.monitor='val_bleu' is not logged"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", available_pipelines())
def test_every_named_pipeline_passes_the_whole_config_check(name):
    """No named pipeline chooses its model on the test split or has a bad model key."""
    from keras_s2s.checks import check_config

    config = load_pipeline(name)
    monitor = check_config(config).monitor
    assert not monitor.startswith("test_")
    if config["training"]["score_split"] == "test":
        assert config["training"]["checkpoint"] == "last"


def test_optimizer_schedule_and_smoothing_keys(tmp_path):
    """The Transformer's settings load from a pipeline file; a bad value is named."""
    assert DEFAULTS["training"]["learning_rate_schedule"] == "constant"
    defaults = DEFAULTS["training"]
    assert (defaults["adam_beta_1"], defaults["adam_beta_2"]) == (0.9, 0.999)
    assert defaults["adam_epsilon"] == 1e-7  # Keras's default
    assert defaults["label_smoothing"] == 0.0
    good = tmp_path / "transformer.toml"
    good.write_text(
        "[training]\n"
        'learning_rate_schedule = "inverse_sqrt"\nlearning_rate = 1\nwarmup_steps = 4000\n'
        "schedule_dim = 512\nadam_beta_2 = 0.98\nadam_epsilon = 1e-9\nlabel_smoothing = 0.1\n"
    )
    training = load_pipeline(str(good))["training"]
    assert (training["adam_beta_2"], training["adam_epsilon"]) == (0.98, 1e-9)
    bad = tmp_path / "bad.toml"
    for line, message in [
        (
            'learning_rate_schedule = "noam"',
            r"'training.learning_rate_schedule' .*'noam' "
            r"\(choose from constant, inverse_sqrt, cosine\)",
        ),
        ("warmup_steps = 0", r"'training.warmup_steps' .*0 \(must be > 0\)"),
        ("warmup_steps = 4000.0", r"'training.warmup_steps' .*4000.0 \(expected int\)"),
        ("schedule_dim = -512", r"'training.schedule_dim' .*-512 \(must be > 0\)"),
        ("adam_beta_1 = 1.0", r"'training.adam_beta_1' .*1.0 \(must be in \[0, 1\)\)"),
        ("adam_beta_2 = -0.5", r"'training.adam_beta_2' .*-0.5 \(must be in \[0, 1\)\)"),
        ("adam_epsilon = 0.0", r"'training.adam_epsilon' .*0.0 \(must be > 0\)"),
        ('adam_epsilon = "1e-9"', r"'training.adam_epsilon' .*'1e-9' \(expected float\)"),
        ("label_smoothing = 1", r"'training.label_smoothing' .*1 \(must be in \[0, 1\)\)"),
    ]:
        bad.write_text(f"[training]\n{line}\n")
        with pytest.raises(ConfigError, match=rf"Invalid value for {message}"):
            load_pipeline(str(bad))
