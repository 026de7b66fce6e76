"""Package-wide rules: imports, serialization registration, the README and CI commands."""

import ast
import inspect
import re
import sys
from pathlib import Path

import keras
import pytest

import keras_s2s
from keras_s2s import layers, models, training

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


def test_no_tf_keras_and_no_keras_src_anywhere():
    for path in list(PACKAGE.rglob("*.py")) + list((REPO / "tests").rglob("*.py")):
        for name in imports_of(path):
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


def test_every_public_class_is_registered_for_serialization():
    classes = [getattr(m, n) for m in (layers, models, training) for n in m.__all__]
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


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(snippets) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "runs" / "readme_example" / "model.keras").is_file()
    assert 0.0 <= namespace["scores"]["exact_match"] <= 1.0
