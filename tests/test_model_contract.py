"""Outside `keras_s2s.models`, the package asks a model only what `EncoderDecoder` defines."""

import ast
from pathlib import Path

import pytest

from keras_s2s.models import MODELS
from keras_s2s.models.seq2seq import DECODERS

PACKAGE = Path(__file__).resolve().parents[1] / "keras_s2s"
# Everything that uses models without being one: trainer, Translator, evaluation, exporters,
# CLI, decoding, data, run directories, tuning.
OUTSIDE = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if path.relative_to(PACKAGE).parts[0] not in ("models", "layers", "pipelines")
)
# Also the names of the data's lengths in export metadata (`source_length` of a TFLite
# export): they are never passed to a model from outside (no module outside models/ reads or
# writes a model's config, see the second test).
DATA_NAMES = {"source_length", "target_length"}


def _family_words() -> set[str]:
    words = set(DECODERS)  # the Seq2Seq decoder kinds
    for cls in MODELS.values():
        words |= set(cls.config_arguments())
    return words - DATA_NAMES


def _code_names(path: Path):
    """`(line, name)` of every string constant (docstrings excluded), attribute name (except
    on `self`), keyword argument and imported name in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node.lineno, node.value
        elif isinstance(node, ast.Attribute):
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                yield node.lineno, node.attr
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.lineno, node.arg
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                yield node.lineno, alias.name


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_outside_models_names_a_family_argument_or_variant(path):
    family = _family_words()
    found = [(line, name) for line, name in _code_names(path) if name in family]
    assert not found, (
        f"{path.relative_to(PACKAGE)} names model-family arguments or decoder kinds "
        f"(line, name): {found}; ask the model through keras_s2s.models.EncoderDecoder instead"
    )
    # Nor does it read or rebuild a model's config (what injected constructor keys before).
    names = {name for _, name in _code_names(path)}
    family_classes = {cls.__name__ for cls in MODELS.values()}
    assert not names & ({"from_config"} | family_classes), names & family_classes
