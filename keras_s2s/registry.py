"""Registries: each kind of component (tokenizers, tuners, ...) chosen by name in a config or
on the command line, from one place that lists them.

A registry is a read-only mapping `name -> object`. It is filled three ways:

- built-ins, named as `"module:attribute"` strings: their names are known (to the config
  checks and the command line's choices) without importing the modules that define them;
- `registry.register(name)`, a decorator for a user's own code;
- installed plugins: the entry points of the registry's group (`[project.entry-points.
  "keras_s2s.tokenizers"]` in a plugin's `pyproject.toml`: `name = "module:attribute"`), so
  the command line sees them too.

An entry is imported the first time it is looked up.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterator, Mapping
from typing import Any


def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    for part in filter(None, attribute.split(".")):
        value = getattr(value, part)
    return value


class Registry(Mapping):
    """Names -> objects of one kind (see the module).

    Args:
        kind: what an entry is, for messages ("tokenizer").
        group: the entry point group of installed plugins ("keras_s2s.tokenizers").
        builtins: `{name: "module:attribute"}`, imported on first lookup.
        base: `"module:attribute"` of the class every entry must subclass (imported when the
            first entry is registered or loaded); `TypeError` for any other object.
        check: `"module:attribute"` of a function `(obj, name)` run on every entry after the
            base check, however it was registered (decorator or plugin entry point); it raises
            `TypeError` for an entry that does not meet the kind's contract.
    """

    def __init__(
        self,
        kind: str,
        group: str,
        builtins: dict[str, str] | None = None,
        base: str | None = None,
        check: str | None = None,
    ):
        self.kind, self.group, self.base, self.check = kind, group, base, check
        #: The names of the built-in entries.
        self.builtins = tuple(builtins or {})
        self._targets = dict(builtins or {})
        self._objects: dict[str, Any] = {}
        self._plugins_read = False

    def _check(self, obj, name: str) -> None:
        if self.base is not None:
            base = _load(self.base)
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise TypeError(
                    f"Only `{base.__module__}.{base.__qualname__}` subclasses can be registered "
                    f"as a {self.kind}. Received: {obj!r} for name {name!r}"
                )
        if self.check is not None:
            _load(self.check)(obj, name)

    def _read_plugins(self) -> None:
        if self._plugins_read:
            return
        self._plugins_read = True
        for entry in importlib.metadata.entry_points(group=self.group):
            if entry.name not in self._targets and entry.name not in self._objects:
                self._targets[entry.name] = entry.value

    def register(self, name: str):
        """Decorator: registers the decorated object under `name`. Raises `ValueError` if
        `name` is not a non-empty string or is taken."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind}'s name must be a non-empty string. Received: {name!r}")

        def decorator(obj):
            # A plugin module may both register its object and name it in an entry point.
            target = f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"
            named_here = name in self._targets and self._targets[name] == target
            if name in self._objects or (name in self._targets and not named_here):
                taken = self._objects.get(name, self._targets.get(name))
                if not isinstance(taken, str):
                    taken = f"{taken.__module__}:{taken.__qualname__}"
                raise ValueError(
                    f"A {self.kind} is already registered as {name!r}: {taken}. Choose another "
                    f"name for {getattr(obj, '__qualname__', obj)!r}."
                )
            self._check(obj, name)
            self._objects[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Removes an entry `register` added (e.g. to register it again in a notebook);
        `KeyError` for any other name."""
        if name in self.builtins or name not in self._objects:
            raise KeyError(f"{name!r} was not registered with {self.kind} register()")
        del self._objects[name]

    def __getitem__(self, name: str):
        if name not in self._objects:
            self._read_plugins()
            if name not in self._targets:
                raise KeyError(name)
            obj = _load(self._targets[name])
            if name not in self._objects:  # (Importing it may have registered it.)
                self._check(obj, name)
                self._objects[name] = obj
        return self._objects[name]

    def __iter__(self) -> Iterator[str]:
        self._read_plugins()
        return iter(dict.fromkeys([*self._targets, *self._objects]))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __contains__(self, name) -> bool:
        self._read_plugins()
        return name in self._targets or name in self._objects

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self)})"


#: `data.tokenizer` name -> `keras_s2s.tokenizers.Tokenizer` subclass.
TOKENIZERS = Registry(
    "tokenizer",
    "keras_s2s.tokenizers",
    {
        "char": "keras_s2s.tokenizers.char_tokenizer:CharTokenizer",
        "sentencepiece": "keras_s2s.tokenizers.sentencepiece_tokenizer:SentencePieceTokenizer",
    },
    base="keras_s2s.tokenizers.tokenizer:Tokenizer",
)

#: `search.tuner` name -> `(max_trials, epochs, **common) -> keras_tuner.Tuner` (see
#: `keras_s2s.tuning.tuners`).
TUNERS = Registry(
    "tuner",
    "keras_s2s.tuners",
    {
        "random": "keras_s2s.tuning.tuners:random_search",
        "hyperband": "keras_s2s.tuning.tuners:hyperband",
        "bayesian": "keras_s2s.tuning.tuners:bayesian_optimization",
    },
)

#: `data.source` name -> `keras_s2s.data.sources.DataSource` subclass.
DATA_SOURCES = Registry(
    "data source",
    "keras_s2s.data_sources",
    {
        "tfds": "keras_s2s.data.sources:TFDSSource",
        "text": "keras_s2s.data.sources:TextSource",
        "tsv": "keras_s2s.data.sources:TSVSource",
        "dlfs2": "keras_s2s.data.sources:DLFS2Source",
    },
    base="keras_s2s.data.sources:DataSource",
)

#: Export format name -> `keras_s2s.export.exporter.Exporter` subclass.
EXPORTERS = Registry(
    "export format",
    "keras_s2s.exporters",
    {
        "savedmodel": "keras_s2s.export.savedmodel:SavedModelExporter",
        "tflite": "keras_s2s.export.tflite:TFLiteExporter",
        "ctranslate2": "keras_s2s.export.ctranslate2:CTranslate2Exporter",
    },
    base="keras_s2s.export.exporter:Exporter",
)

#: `model.type` name -> `(model, specs, source_tokens, target_tokens, positions) ->
#: ctranslate2.specs.TransformerSpec` (`specs`: the `ctranslate2.specs` module): how a model
#: family converts to CTranslate2 (see `keras_s2s.export.ctranslate2`); a family without one
#: does not convert.
CTRANSLATE2_CONVERTERS = Registry(
    "CTranslate2 converter",
    "keras_s2s.ctranslate2_converters",
    {"transformer": "keras_s2s.models.transformer.ctranslate2:transformer_spec"},
)

#: `model.type` name -> `keras_s2s.models.EncoderDecoder` subclass that implements the decoding
#: contract (`encode` and `decode_step`).
MODELS = Registry(
    "model family",
    "keras_s2s.families",
    {
        "seq2seq": "keras_s2s.models.seq2seq.seq2seq:Seq2Seq",
        "transformer": "keras_s2s.models.transformer.transformer:Transformer",
    },
    base="keras_s2s.models.base:EncoderDecoder",
    check="keras_s2s.models.base:check_family",
)
