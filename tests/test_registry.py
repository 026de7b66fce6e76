"""Registries: names known without importing what they name, a decorator for a user's own
code, installed plugins through entry points, and the config and the components reading them."""

import subprocess
import sys
import textwrap

import pytest

from keras_s2s.registry import TOKENIZERS, Registry


def run_python(code: str, path=None) -> str:
    env = None
    if path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_a_registry_lists_builtins_registered_objects_and_refuses_clashes():
    import fractions
    import numbers

    builtins = {"fraction": "fractions:Fraction"}
    registry = Registry("number type", "keras_s2s.test_numbers", builtins, base="numbers:Number")
    assert list(registry) == ["fraction"] and "fraction" in registry

    @registry.register("mine")
    class Mine(numbers.Number):
        pass

    assert list(registry) == ["fraction", "mine"] and registry["mine"] is Mine
    assert registry["fraction"] is fractions.Fraction
    with pytest.raises(ValueError, match="already registered as 'mine'"):
        registry.register("mine")(int)
    with pytest.raises(ValueError, match="already registered as 'fraction': fractions:Fraction"):
        registry.register("fraction")(int)
    with pytest.raises(TypeError, match="`numbers.Number` subclasses .* as a number type"):
        registry.register("text")(str)
    with pytest.raises(ValueError, match="non-empty string"):
        registry.register("")
    with pytest.raises(KeyError):
        registry["other"]
    assert "text" not in registry


def test_tokenizer_names_are_known_without_tensorflow():
    names = run_python(
        """
        import sys
        from keras_s2s.config import DEFAULTS, validate
        from keras_s2s.registry import TOKENIZERS
        validate(DEFAULTS)
        print(list(TOKENIZERS), "tensorflow" in sys.modules)
        """
    )
    assert names == "['char', 'sentencepiece'] False"


def test_a_registered_tokenizer_is_what_a_pipeline_names(tmp_path):
    """A user's own tokenizer class, registered: the config accepts its name, vocabularies
    are built with it, its files load by suffix, a search takes its objective."""
    out = run_python(
        """
        import json
        import keras_s2s
        from keras_s2s.config import DEFAULTS, apply_overrides
        from keras_s2s.data import build_tokenizers
        from keras_s2s.tokenizers import CharTokenizer, load_tokenizer, register
        from keras_s2s.tuning import objective_name

        @register("upper_chars")
        class UpperChars(CharTokenizer):
            asset_suffix = ".upper.txt"
            search_objective = "validation_chrf"

            @classmethod
            def from_texts(cls, texts, data):
                return cls.build([t.upper() for t in texts])

        config = apply_overrides(DEFAULTS, {"data.tokenizer": "upper_chars"})
        source, _ = build_tokenizers(config["data"], ["abc"], ["de"])
        path = f"{sys.argv[1]}/v{UpperChars.asset_suffix}"
        open(path, "wb").write(source.asset_bytes())
        print(json.dumps([type(source).__name__, source.vocabulary[4:],
                          type(load_tokenizer(path)).__name__, objective_name(config)]))
        """.replace("sys.argv[1]", repr(str(tmp_path))).replace("import json", "import json, sys")
    )
    assert out == '["UpperChars", ["A", "B", "C", "D", "E"], "UpperChars", "validation_chrf"]'


def test_a_bad_tokenizer_name_and_class_are_refused():
    from keras_s2s.config import DEFAULTS, apply_overrides
    from keras_s2s.errors import ConfigError

    with pytest.raises(ConfigError, match="'data.tokenizer'.*char, sentencepiece"):
        apply_overrides(DEFAULTS, {"data.tokenizer": "bpe"})
    with pytest.raises(TypeError, match="Tokenizer` subclasses can be registered as a tokenizer"):
        TOKENIZERS.register("not_a_tokenizer")(dict)
    assert "not_a_tokenizer" not in TOKENIZERS


def test_an_installed_plugin_is_found_through_its_entry_point(tmp_path):
    """A package installed with an entry point in the `keras_s2s.tokenizers` group: the
    registry lists it without importing it, and loads it on first use."""
    (tmp_path / "toy_plugin.py").write_text(
        "from keras_s2s.tokenizers import CharTokenizer\n"
        "print('imported', flush=True)\n"
        "class ToyTokenizer(CharTokenizer):\n"
        "    asset_suffix = '.toy.txt'\n"
    )
    info = tmp_path / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[keras_s2s.tokenizers]\ntoy = toy_plugin:ToyTokenizer\n"
    )
    out = run_python(
        """
        import sys
        from keras_s2s.registry import TOKENIZERS
        names = list(TOKENIZERS)
        before = "toy_plugin" in sys.modules
        print(names, before, TOKENIZERS["toy"].__name__)
        """,
        path=tmp_path,
    )
    assert out == "['char', 'sentencepiece', 'toy'] False ToyTokenizer"


def test_a_family_plugin_without_the_decoding_contract_is_refused_on_lookup(tmp_path, monkeypatch):
    """An entry loaded by name (a plugin's entry point, a built-in) is checked as the decorator
    checks: a family must implement `encode` and `decode_step`."""
    from keras_s2s.registry import MODELS, Registry

    (tmp_path / "empty_family.py").write_text(
        "from keras_s2s.models import EncoderDecoder\nclass Empty(EncoderDecoder):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # MODELS's own settings, with the plugin's entry point as its one entry.
    families = Registry(
        MODELS.kind, "tests.no_group", {"empty": "empty_family:Empty"}, MODELS.base, MODELS.check
    )
    with pytest.raises(TypeError, match=r"^Empty does not implement encode, decode_step of the"):
        families["empty"]


def test_a_registered_tuner_is_what_a_search_names(tmp_path):
    """The config and the command line take a registered tuner's name; `make_tuner` makes it."""
    from keras_s2s.config import apply_overrides, load_pipeline
    from keras_s2s.registry import TUNERS
    from keras_s2s.tuning import PipelineHyperModel, make_tuner
    from keras_s2s.tuning.tuners import random_search

    made = []

    @TUNERS.register("test_counting_random")
    def counting(max_trials, epochs, **common):
        made.append((max_trials, epochs))
        return random_search(max_trials, epochs, **common)

    try:
        config = apply_overrides(
            load_pipeline("addition_seq2seq"),
            {"search.tuner": "test_counting_random", "search.epochs": 2},
        )
        tuner = make_tuner(PipelineHyperModel(config), "test_counting_random", 3, tmp_path)
        assert made == [(3, 2)] and tuner.oracle.max_trials == 3
    finally:
        TUNERS.unregister("test_counting_random")
    from keras_s2s.cli.main import build_parser

    _, commands = build_parser()
    tuner = next(a for a in commands["tune"]._actions if a.dest == "tuner")
    assert tuner.choices == ["random", "hyperband", "bayesian"]


def test_a_registered_data_source_is_what_a_pipeline_reads(tmp_path):
    """A user's own file source (JSON lines), registered: the config accepts its name and
    the splits come from it, held-out validation included."""
    lines = [f'{{"src": "s{i}", "tgt": "t{i}"}}' for i in range(10)] + ['{"src": "", "tgt": "x"}']
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    out = run_python(
        f"""
        import json
        from keras_s2s.config import DEFAULTS, apply_overrides
        from keras_s2s.data import FileSource, as_strings, load_splits, register_source
        from keras_s2s.data.readers import read_lines

        @register_source("jsonl")
        class JsonLines(FileSource):
            def read_files(self, files):
                rows = [json.loads(line) for line in read_lines(files[0])]
                return [r["src"] for r in rows], [r["tgt"] for r in rows]

        config = apply_overrides(DEFAULTS, {{
            "data.source": "jsonl", "data.train": [{str(tmp_path / "train.jsonl")!r}],
            "data.validation_size": 3, "data.test_size": 0,
        }})
        skipped = {{}}
        splits = load_splits(config["data"], splits=("train", "validation"), skipped=skipped)
        train, validation = as_strings(splits["train"]), as_strings(splits["validation"])
        print(json.dumps([len(train[0]), len(validation[0]), skipped["train"],
                          sorted(train[0] + validation[0])[:2]]))
        """
    )
    assert out == '[7, 3, 1, ["s0", "s1"]]'


def test_a_registered_export_format_is_written_with_the_others(tmp_path):
    """A user's own format, registered: `export` checks its option with the others' before
    writing anything, writes it into its own versioned folder beside the SavedModel's, and the
    command line offers it."""
    import json

    from keras_s2s.config import load_pipeline
    from keras_s2s.errors import ExportError
    from keras_s2s.export import EXPORTERS, Exporter, export, register
    from keras_s2s.training import train
    from tests.pipeline_files import addition_pipeline

    @register("test_examples_json")
    class ExamplesJson(Exporter):
        folder_suffix = "-examples"

        def check(self, options, selected):
            if not isinstance(options.get("examples", []), list):
                raise ExportError("examples must be a list")
            return options

        def write(self, translator, run, directory, options, info, step):
            step("examples")
            texts = options.get("examples", [])
            (directory / "examples.json").write_text(
                json.dumps({"info": info, "translations": translator.translate(texts)})
            )

    try:
        pipeline = addition_pipeline(tmp_path, 20, 3, "[training]\nepochs = 1\n")
        config = load_pipeline(str(pipeline))
        train(config, tmp_path / "run", verbose=0)
        with pytest.raises(ExportError, match="examples must be a list"):
            export(tmp_path / "run", formats=("savedmodel",), examples="1+1",
                   output_root=tmp_path / "out")  # fmt: skip
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
        paths = export(
            tmp_path / "run", formats=("savedmodel", "test_examples_json"),
            output_root=tmp_path / "out", name="tiny", examples=["1+1", "2+3"],
        )  # fmt: skip
        assert paths["test_examples_json"] == tmp_path / "out" / "tiny-examples" / "1"
        written = json.loads((paths["test_examples_json"] / "examples.json").read_text())
        assert len(written["translations"]) == 2 and written["info"]["version"] == 1
        assert (paths["savedmodel"] / "saved_model.pb").is_file()
        from keras_s2s.cli.main import build_parser

        _, commands = build_parser()
        formats = next(a for a in commands["export"]._actions if a.dest == "format")
        assert "test_examples_json" in formats.choices
    finally:
        EXPORTERS.unregister("test_examples_json")
