"""Package-wide rules: imports, serialization registration, the README and CI commands."""

import ast
import inspect
import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_s2s
from keras_s2s import layers, models, training
from tests.test_docs import code_blocks, doc_pages

PACKAGE = Path(keras_s2s.__file__).parent
REPO = PACKAGE.parent


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


# The one private import: the documented, version-pinned workaround for keras-team/keras#20585
# (`fit` under MultiWorkerMirroredStrategy), which replaces two private trainer functions.
KERAS_SRC_ALLOWED = {
    (PACKAGE / "training" / "distribution.py", "keras.src.backend.tensorflow.trainer"),
    (PACKAGE / "training" / "distribution.py", "keras.src.backend.tensorflow"),
}


def test_no_tf_keras_and_no_keras_src_anywhere():
    for path in list(PACKAGE.rglob("*.py")) + list((REPO / "tests").rglob("*.py")):
        for name in imports_of(path):
            if (path, name) not in KERAS_SRC_ALLOWED:
                assert not name.startswith("keras.src"), f"{path} imports {name}"
            assert not name.startswith("tensorflow.keras"), f"{path} imports {name}"
            assert "tf.keras" not in name, f"{path} imports {name}"
        if path != Path(__file__):
            assert "tf.keras" not in path.read_text(encoding="utf-8"), f"{path} uses tf.keras"


@pytest.mark.parametrize("subpackage", ["layers", "models"])
def test_layers_and_models_use_keras_only(subpackage):
    for path in (PACKAGE / subpackage).rglob("*.py"):
        for name in imports_of(path):
            top = name.split(".")[0]
            allowed = top in {"keras", "keras_s2s"} or top in sys.stdlib_module_names
            assert allowed, f"{path} imports {name}"


def unit_of(module: str) -> str:
    """The subpackage or top-level module of `keras_s2s` a dotted name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "keras_s2s"


def test_no_import_cycle_between_subpackages():
    """Every import of the package, at module level or inside a function, between its
    subpackages and top-level modules: the graph has no cycle, so no import inside a function
    hides one (those are for start-up time only). The root package's lazy attributes
    (`keras_s2s.models`, `keras_s2s.Translator` on first use) are not imports of it."""

    def module_of(path):
        parts = ("keras_s2s", *path.relative_to(PACKAGE).with_suffix("").parts)
        return ".".join(parts).removesuffix(".__init__")

    units = {unit_of(module_of(path)) for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {unit: set() for unit in units}
    for path in PACKAGE.rglob("*.py"):
        source = unit_of(module_of(path))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if source == "keras_s2s" else ast.walk(tree)
        for node in nodes:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
                names += [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                target = unit_of(name)
                if name.startswith("keras_s2s") and target in units and target != source:
                    graph[source].add(target)
    assert {"training", "run_directory", "translator", "evaluation"} <= set(graph)

    def path_back(start, node, seen):
        for successor in sorted(graph[node]):
            if successor == start:
                return [node, start]
            if successor not in seen:
                seen.add(successor)
                rest = path_back(start, successor, seen)
                if rest:
                    return [node, *rest]
        return None

    cycles = [cycle for unit in sorted(graph) if (cycle := path_back(unit, unit, set()))]
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_function_in_training_exceeds_60_lines():
    """The trainer orchestrates; each step is a function a reader takes in at once."""
    long = []
    for path in (PACKAGE / "training").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []


def test_every_public_class_is_registered_for_serialization():
    from keras_s2s.models import seq2seq

    modules = (layers, models, seq2seq, training)
    classes = [getattr(m, n) for m in modules for n in m.__all__]
    serializable = (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric)
    classes = [c for c in classes if inspect.isclass(c) and issubclass(c, serializable)]
    assert len(classes) >= 4
    for cls in classes:
        name = keras.saving.get_registered_name(cls)
        assert name == f"keras_s2s>{cls.__name__}", cls
        assert keras.saving.get_registered_object(name) is cls


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    return [
        line.strip()
        for b in blocks
        for line in b.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_ci_runs_the_readme_test_command_verbatim():
    main_command, test_command = readme_commands()[:2]
    assert "keras-s2s run" in main_command
    assert "pytest" in test_command
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def teacher_forced_steps(translator, texts, translations):
    """Scores translations of `texts` with the Keras model of `translator`, teacher forced.

    Returns float64 `(chosen, best, second)` `[B, T]` (NaN after each hypothesis' end): the
    log-probability of each token of a translation (eos included unless it ran to the maximum
    length), the best and the second-best log-probability at that step (pad and bos excluded,
    as in decoding).
    """
    tokenizer = translator.target_tokenizer
    width = translator.max_target_length + 1
    rows, lengths = [], []
    for ids in tokenizer.tokenize(tf.constant(translations)).to_list():
        ids = ids + [tokenizer.eos_id] if len(ids) < width else ids
        rows.append(ids + [tokenizer.pad_id] * (width - len(ids)))
        lengths.append(len(ids))
    ids = np.array(rows, "int32")
    inputs = np.concatenate([np.full((len(ids), 1), tokenizer.bos_id), ids[:, :-1]], axis=1)
    inputs = inputs.astype("int32")
    sources = translator.encode_sources(tf.constant(texts)).numpy()
    logits = translator.model({"encoder_token_ids": sources, "decoder_token_ids": inputs})
    logits = np.asarray(logits).astype("float64")
    logits[..., [tokenizer.pad_id, tokenizer.bos_id]] = -1e9
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    chosen = np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]
    ordered = np.sort(log_probs, axis=-1)
    ended = np.arange(width)[None, :] >= np.array(lengths)[:, None]
    return tuple(np.where(ended, np.nan, a) for a in (chosen, ordered[..., -1], ordered[..., -2]))


def assert_greedy_translations_of(translator, texts, translations, scores):
    """Each translation is the greedy decoding of the Keras model (every token within 1e-3 of
    the step's best log-probability) and its score is the Keras log-probability. That holds
    whatever near-ties float rounding breaks; where Keras's own greedy choices are clear by more
    than 1e-3 at every step, it means the very same translations."""
    chosen, best, _ = teacher_forced_steps(translator, texts, translations)
    assert np.all(np.nan_to_num(chosen, nan=0.0) >= np.nan_to_num(best, nan=0.0) - 1e-3)
    np.testing.assert_allclose(scores, np.nansum(chosen, axis=1), atol=1e-3)
    keras_translations = translator.translate(texts)
    keras_chosen, keras_best, keras_second = teacher_forced_steps(
        translator, texts, keras_translations
    )
    np.testing.assert_allclose(keras_chosen, keras_best, atol=1e-4)  # Keras decodes greedily
    if np.nanmin(keras_best - keras_second) > 1e-3:
        assert list(translations) == keras_translations


# Pages whose snippets register components: run in their own process
# (tests/test_extending.py), not in this session's registries.
SEPARATE_PAGES = {REPO / "docs" / "extending.md"}


def doc_snippets() -> list[tuple[str, str]]:
    """(page, code) of every Python snippet of the README, then of the docs in the site's nav
    order; a snippet repeated verbatim (the README's quickstart is the docs') comes once."""
    snippets, seen = [], set()
    for page in doc_pages():
        if page in SEPARATE_PAGES:
            continue
        for code in code_blocks(page, ("python",)):
            if code not in seen:
                seen.add(code)
                snippets.append((str(page.relative_to(REPO)), code))
    return snippets


def test_doc_python_snippets_run_without_warnings(tmp_path, monkeypatch):
    """The Python snippets of the README and the docs run in order, in one session (each page
    continues the quickstart's fit script), emit no warning, and do what they say."""
    snippets = doc_snippets()
    pages = {page for page, _ in snippets}
    assert {"README.md", "docs/python.md", "docs/export.md", "docs/scale.md"} <= pages
    assert len(snippets) >= 11
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    fits = []  # the history of each model.fit call
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for page, snippet in snippets:
            exec(compile(snippet, page, "exec"), namespace)  # noqa: S102
            if "model.fit(" in snippet:
                fits.append(dict(namespace["model"].history.history))
                if len(fits) == 2:  # the ExactMatch fit: its weights, before later fits move them
                    scored_weights = namespace["model"].get_weights()
            if "score_translations(" in snippet:
                keras_translator = namespace["translator"]  # the model.fit script's model
    tokenizer, model = namespace["tokenizer"], namespace["model"]
    uniform_loss = math.log(tokenizer.vocabulary_size)  # the loss of guessing uniformly

    # The model.fit script learns to read the source. Guessing each next token from the
    # target's prefix alone, at best (counts on the training targets), scores 0.565 on the test
    # split; measured over 12 runs (oneDNN on/off, 1 or 2 threads) after the 6 epochs: token
    # accuracy 0.94-0.98, loss 0.02-0.05 of the uniform guess's; exact match after 5 epochs
    # 0.40-0.90, after 6 epochs 0.50-0.90.
    # The third fit is the StopOnSignal snippet's: no signal comes, so its one epoch ends.
    assert len(fits) == 3 and len(fits[2]["loss"]) == 1
    losses = [loss for fit in fits[:2] for loss in fit["loss"]]
    assert np.all(np.isfinite(losses + fits[2]["loss"]))
    assert losses[-1] < 0.2 * uniform_loss
    assert fits[1]["token_accuracy"][-1] > 0.85
    scores = namespace["scores"]
    assert 0.2 < scores["exact_match"] <= 1.0 and 0.0 <= scores["chrf"] <= 100.0
    examples = keras_translator.translate(["september 27, 1994", "27/09/94"])
    assert all(len(t) <= keras_translator.max_target_length + 1 for t in examples)
    # The ExactMatch callback scores the model honestly: free-running greedy decoding.
    test_sources, test_targets = namespace["test_sources"], namespace["test_targets"]
    model.set_weights(scored_weights)
    fresh = keras_s2s.Translator(model, tokenizer, tokenizer, 40, 10)
    hypotheses = fresh.translate(test_sources[:200])
    exact = np.mean([h == r for h, r in zip(hypotheses, test_targets[:200], strict=True)])
    assert namespace["callback"].history == [pytest.approx(exact, abs=1.01 / 200)]
    assert exact > 0.25
    (bleu_of_epoch,) = [s["bleu"] for s in namespace["callback"].scores]
    assert 0.0 <= bleu_of_epoch <= 100.0
    assert list(namespace["averaging"].epochs) == [2, 3]
    # The attention images: one PNG summary for the one epoch.
    (event_file,) = (tmp_path / "logs" / "attention").glob("events.out.tfevents.*")
    tags = [
        (value.tag, value.metadata.plugin_data.plugin_name)
        for event in tf.compat.v1.train.summary_iterator(str(event_file))
        for value in event.summary.value
    ]
    assert tags == [("attention/0", "images")]
    # The search snippet: one trial, scored by validation exact match, its pipeline file.
    search = namespace["search"]
    assert len(search["trials"]) == 1 and search["objective"] == "validation_exact_match"
    assert 0.0 <= search["best_score"] <= 1.0
    assert keras_s2s.config.load_pipeline(search["best_config"])["model"]["hidden_dim"] in (32, 64)
    # Scoring a user's own files: 2 lines, greedy and beam search agree on the format.
    figures = namespace["figures"]
    assert figures["examples"] == 2 and figures["beam_size"] == 4
    assert figures["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")

    # The pipeline trains one epoch into a finished run directory (deterministic: val loss
    # 0.54 of the uniform guess's, val token accuracy 0.22 with or without oneDNN, 1 or 2
    # threads).
    run = tmp_path / "runs" / "readme_example"
    assert (run / "model.keras").is_file()
    summary = namespace["summary"]
    assert summary["epochs"] == 1 and summary["train_examples"] == 5000
    assert summary["val_loss"] < 0.7 * uniform_loss and summary["val_token_accuracy"] > 0.1

    # Beam search and attention.
    translator = namespace["translator"]
    nbest = translator.translate_nbest(["27/09/94"], beam_size=4, num_results=2, length_penalty=0.6)
    assert len(nbest) == 1 and len(nbest[0]) == 2 and nbest[0][0][1] >= nbest[0][1][1]
    assert namespace["source_tokens"] == list("Sep 27 1994")
    weights = namespace["weights"]
    assert weights.shape == (len(namespace["target_tokens"]), len(namespace["source_tokens"]))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert (tmp_path / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The exported SavedModel and TFLite model translate like the Keras model they came from.
    result = namespace["result"]
    served = [t.decode("utf-8") for t in result["translations"].numpy()]
    assert result["truncated"].numpy().tolist() == [False, False, False]
    assert result["invalid_utf8"].numpy().tolist() == [False, False, True]
    texts = ["Sep 27 1994", "", "\ufffd"]  # invalid UTF-8 is read as U+FFFD
    assert_greedy_translations_of(translator, texts, served, result["scores"].numpy())
    from keras_s2s.export.tflite_runtime import TFLiteTranslator

    lite = TFLiteTranslator(namespace["paths"]["tflite"])
    lite_scores = lite.translate_ids(lite.encode_sources(texts)[0])["scores"]
    assert_greedy_translations_of(translator, texts, lite.translate(texts), lite_scores)
    served_nbest = [t.decode("utf-8") for t in namespace["nbest"]["translations"].numpy()[0]]
    served_scores = namespace["nbest"]["scores"].numpy()[0]
    assert len(set(served_nbest)) == 2 and served_scores[0] >= served_scores[1]
    chosen, _, _ = teacher_forced_steps(translator, ["Sep 27 1994"] * 2, served_nbest)
    lengths = np.sum(~np.isnan(chosen), axis=1)
    penalty = ((5.0 + lengths) / 6.0) ** 0.6
    np.testing.assert_allclose(served_scores, np.nansum(chosen, axis=1) / penalty, atol=1e-3)

    translated = [t.decode() for t in namespace["translated"]["translations"].numpy()]
    assert len(translated) == 2 and translated[0].startswith("1994-")
    assert not any("27" in t for t in translated)  # a banned word
    # Fine-tuning from the pipeline's run: the run it started from is recorded.
    tuned_meta = json.loads((tmp_path / "runs" / "readme_tuned" / "run.json").read_text())
    assert tuned_meta["init_from"] == str((tmp_path / "runs" / "readme_example").resolve())
    assert namespace["tuned"]["epochs"] == 1
    # The CTranslate2 export of a Transformer run, translated by the shipped wrapper.
    engine = namespace["engine"]
    assert (namespace["ct2_paths"]["ctranslate2"] / "ctranslate2_translator.py").is_file()
    (greedy,) = engine.translate(["Sep 27 1994"])
    (nbest,) = engine.translate_nbest(["Sep 27 1994"], beam_size=4)
    assert isinstance(greedy, str) and len(nbest) == 1 and nbest[0][1] <= 0.0
    constrained = namespace["constrained"]["translations"].numpy()
    assert constrained.shape == (2, 1) and constrained[0, 0].decode().startswith("1994-")
    assert namespace["sampled"]["translations"].shape == (3,)
    alignment = namespace["alignment"]
    assert len(alignment.pairs) == len(alignment.target_tokens)
    assert all(0 <= i < len(alignment.source_tokens) for i, _ in alignment.pairs)

    # No warnings: what a user who copies the snippets would see (Keras's "shuffle=True was
    # passed, but will be ignored" and "Your input ran out of data" among them, if a snippet
    # calls fit carelessly).
    # Deprecation notices of the stack's own modules are theirs, not the snippets'; Python
    # shows no ResourceWarning unless asked (keras_s2s/tokenizers/char_tokenizer.py's `load`
    # leaves its file to the garbage collector: a library fix, not the snippets').
    shown = [
        f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}"
        for w in caught
        if not (issubclass(w.category, DeprecationWarning) and "site-packages" in w.filename)
        and not issubclass(w.category, ResourceWarning)
    ]
    assert not shown, "\n".join(shown)


def test_imports_are_lazy():
    """`import keras_s2s.layers` (a fit script) loads no data or scoring dependencies, and
    `keras-s2s --help` loads no TensorFlow at all."""
    heavy = ["tensorflow_datasets", "tensorflow_text", "sentencepiece", "sacrebleu"]
    script = (
        "import sys, keras_s2s.layers, keras_s2s.training as t; t.MaskedAccuracy; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == "[]"
    script = (
        "import sys\nfrom keras_s2s.cli.main import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\nprint('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip().splitlines()[-1] == "False False"
