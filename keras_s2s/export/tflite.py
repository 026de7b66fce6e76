"""TFLite export: builtin ops only, the greedy loop inside the model, ids in and ids out.

The trained model is rebuilt with static shapes (same weights, `EncoderDecoder.static_copy`:
e.g. unrolled RNNs), which is what lets its encoder convert to builtin ops with any batch size;
the greedy loop converts to a builtin WHILE over the model's fixed-size state. Three signatures:

- `translate`: `encoder_token_ids` int32 `[B, S]` -> `token_ids` int32 `[B, T]`, `scores`
  float32 `[B]`, `logits` float32 `[B, T, V]` (greedy; eos, then padding);
- `encode`: `encoder_token_ids` -> the decoding state, as flat named tensors;
- `decode_step`: `token_ids` int32 `[B]`, `step` int32 scalar (the position of `token_ids`, 0
  for bos) + the state -> `logits` `[B, V]` + the next state, so an app can run beam search
  (or anything else) itself.

Tokenization runs outside, in `tflite_translator.py` (shipped beside the model; it needs only
numpy, ai-edge-litert and, for SentencePiece vocabularies, sentencepiece).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

import keras_s2s
from keras_s2s.decoding import greedy_search
from keras_s2s.errors import ExportError
from keras_s2s.export.exporter import Exporter
from keras_s2s.export.layout import EXPORT_DTYPE, TFLITE_SUFFIX, copy_vocabularies
from keras_s2s.run_directory import RunDirectory

QUANTIZATIONS = ("float32", "float16", "int8")
#: The JSON file beside the `.tflite` files: lengths, vocabulary files, special ids.
TFLITE_INFO_FILE = "keras_s2s_tflite.json"
RUNTIME_FILE = "tflite_translator.py"


def static_model(model, source_length: int, target_length: int):
    """`model.static_copy(...)`: the same weights with static shapes; `ExportError` if the
    model cannot be rebuilt so."""
    try:
        return model.static_copy(source_length, target_length)
    except (TypeError, ValueError) as e:
        name = type(model).__name__
        raise ExportError(f"{name} cannot be rebuilt with static lengths: {e}") from None


def _flat(state) -> dict:
    """A decoding state (nested dicts/lists) -> `{"rnn_0_1": tensor, ...}`."""
    flat = {}

    def visit(prefix, value):
        if isinstance(value, dict):
            for key in sorted(value):  # tf.nest's order for dicts
                visit(f"{prefix}_{key}" if prefix else key, value[key])
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                visit(f"{prefix}_{i}", item)
        else:
            flat[prefix] = value

    visit("", state)
    return flat


class _Module(tf.Module):
    """The model's TFLite signatures. `special_ids`: the target tokenizer's `{"pad", "bos",
    "eos"}` ids."""

    def __init__(self, model, source_length: int, max_length: int, special_ids: dict):
        super().__init__()
        self.model = model
        self.special_ids = special_ids
        self.source_length = source_length
        self.max_length = max_length
        ids = tf.TensorSpec([None, source_length], tf.int32, name="encoder_token_ids")
        self.translate = tf.function(self._translate, input_signature=[ids], autograph=False)
        self.encode = tf.function(self._encode, input_signature=[ids], autograph=False)
        example = model.encode(tf.zeros([1, source_length], tf.int32), max_length=max_length)
        self._structure = example
        state_specs = {
            key: tf.TensorSpec([None, *value.shape[1:]], value.dtype, name=key)
            for key, value in _flat(example).items()
        }
        token_spec = tf.TensorSpec([None], tf.int32, name="token_ids")
        step_spec = tf.TensorSpec([], tf.int32, name="step")
        self.decode_step = tf.function(
            self._decode_step, input_signature=[token_spec, step_spec, state_specs], autograph=False
        )

    def _translate(self, encoder_token_ids):
        state = self.model.encode(encoder_token_ids, max_length=self.max_length)
        batch = tf.shape(encoder_token_ids)[0]
        vocabulary = self.model.target_vocabulary_size
        state["logits"] = tf.zeros([batch, vocabulary], tf.float32)

        def step(tokens, state, index):
            logits, new_state = self.model.decode_step(tokens, state, index)
            new_state["logits"] = tf.cast(logits, tf.float32)
            return logits, new_state

        ids = self.special_ids
        token_ids, scores, logits = greedy_search(
            step, state, batch, self.max_length,
            bos_id=ids["bos"], eos_id=ids["eos"], pad_id=ids["pad"],
            collect=lambda s: s["logits"], constant_state_keys=self.model.constant_state_keys,
        )  # fmt: skip
        return {"token_ids": token_ids, "scores": scores, "logits": logits}

    def _encode(self, encoder_token_ids):
        return _flat(self.model.encode(encoder_token_ids, max_length=self.max_length))

    def _decode_step(self, token_ids, step, state):
        structured = tf.nest.pack_sequence_as(
            self._structure, [state[key] for key in _flat(self._structure)]
        )
        logits, new_state = self.model.decode_step(token_ids, structured, step)
        return {"logits": tf.cast(logits, tf.float32), **_flat(new_state)}


def _frozen(function):
    """`function` with its variables as constants, keeping its named inputs and outputs."""
    concrete = function.get_concrete_function()
    _drop_eager_table_initializers(concrete.graph)
    frozen = convert_variables_to_constants_v2(concrete)
    specs = tf.nest.flatten(concrete.structured_input_signature)
    names = sorted(concrete.structured_outputs)  # the flat order of a dict

    @tf.function(input_signature=specs, autograph=False)
    def named(*args):
        return dict(zip(names, frozen(*args), strict=True))

    return named.get_concrete_function()


def _drop_eager_table_initializers(graph) -> None:
    """Removes the `None` entries a function graph inherits in its `table_initializer`
    collection.

    A lookup table created eagerly (as `CharTokenizer` creates its vocabulary table) is
    initialized at once, and TensorFlow still appends the (eager, hence `None`) initializer op
    to the global graph's `table_initializer` collection; every `tf.function` graph traced
    afterwards starts with a copy of that collection. Freezing such a graph exports it as a
    MetaGraph for Grappler, which cannot serialize `None` and logs "Issue encountered when
    serializing table_initializer ... 'NoneType' object has no attribute 'name'" once per
    frozen function. The entries mean nothing here (the model has no tables and eager tables
    are already initialized); only this graph's own copy is changed.
    """
    key = tf.compat.v1.GraphKeys.TABLE_INITIALIZERS
    initializers = graph.get_collection_ref(key)
    initializers[:] = [op for op in initializers if op is not None]


def custom_ops(model_bytes: bytes) -> list[str]:
    """The custom (including Flex) ops a `.tflite` model uses, read from its flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    found = []
    for code in model.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            name = code.customCode
            found.append(name.decode() if isinstance(name, bytes) else str(name))
    return sorted(set(found))


SIGNATURES = ("translate", "encode", "decode_step")
#: The vocabulary readers of the TFLite wrapper (`tflite_runtime.py`).
RUNTIME_VOCABULARIES = ("characters", "sentencepiece")


def check_quantizations(quantizations, required: bool = True) -> tuple[str, ...]:
    """The quantizations asked, each known, without repeats (a single string is one); at
    least one if `required`."""
    if isinstance(quantizations, str):
        quantizations = (quantizations,)
    quantizations = tuple(dict.fromkeys(quantizations))
    if required and not quantizations:
        raise ExportError(f"No TFLite quantization given; choose from {', '.join(QUANTIZATIONS)}")
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise ExportError(f"Unknown quantization '{q}'; choose from {', '.join(QUANTIZATIONS)}")
    return quantizations


def _unsupported_ops(error) -> list[str] | None:
    """The ops a `ConverterError` says need Flex or custom kernels (None if it is not that)."""
    from tensorflow.compiler.mlir.lite.metrics import converter_error_data_pb2

    codes = converter_error_data_pb2.ConverterErrorData
    needs = (codes.ERROR_NEEDS_FLEX_OPS, codes.ERROR_NEEDS_CUSTOM_OPS)
    found = [e for e in getattr(error, "errors", []) if e.error_code in needs]
    if not found:
        return None
    return sorted({e.operator.name or "(unnamed op)" for e in found})


def convert(
    saved_model_dir: str, quantization: str, signature_keys: tuple[str, ...] = SIGNATURES
) -> bytes:
    """Converts the signatures with builtin ops only.

    A model that needs ops outside the builtin set (Flex or custom ops, found by the converter
    or read back from the flatbuffer) is an `ExportError` naming them: the model has to change.
    Any other converter failure is not the user's to fix and propagates as raised.
    """
    from tensorflow.lite.python.convert_phase import ConverterError

    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=list(signature_keys)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range int8 weights
    try:
        model_bytes = converter.convert()
    except ConverterError as e:
        ops = _unsupported_ops(e)
        if ops is None:
            raise
        raise ExportError(
            f"The model needs ops that are not TFLite builtins: {', '.join(ops)}; keras-s2s "
            "exports builtin ops only: change the model, or export the SavedModel alone"
        ) from e  # the converter's full message stays chained
    unsupported = custom_ops(model_bytes)
    if unsupported:
        raise ExportError(f"The TFLite model uses non-builtin ops: {', '.join(unsupported)}")
    return model_bytes


def runtime_vocabularies(run: RunDirectory, source, target) -> dict:
    """The JSON entries that tell the TFLite wrapper how to read the vocabularies of the run's
    tokenizers `source` and `target` (each class's `runtime_vocabulary`) and the special ids
    (the target tokenizer's). `ExportError` if a tokenizer has no reader there."""
    entries = {}
    for side, tokenizer in (("source", source), ("target", target)):
        reader = type(tokenizer).runtime_vocabulary
        if reader not in RUNTIME_VOCABULARIES:
            raise ExportError(
                f"The TFLite wrapper cannot read a {type(tokenizer).__name__} vocabulary "
                f"(its runtime_vocabulary is {reader!r}; the wrapper reads "
                f"{', '.join(RUNTIME_VOCABULARIES)}): export the SavedModel alone"
            )
        entry = run.entry(side)
        entries[side] = {"file": entry["file"], "type": entry["type"], "vocabulary": reader}
    return {**entries, "special_ids": target.special_ids}


def write_tflite(
    model,
    vocabularies: dict,
    run: RunDirectory,
    directory: Path,
    quantizations: tuple[str, ...],
    info: dict | None = None,
    step=None,
) -> dict[str, Path]:
    """Writes the `.tflite` files of `model`, the vocabularies, the wrapper and the JSON file
    (with `info` and `vocabularies`, from `runtime_vocabularies`, added) into the existing folder
    `directory`; returns `{quantization: path}`. `step(name)`, if given, is called as each step
    starts (for a progress bar)."""
    step = step or (lambda name: None)
    meta = run.metadata()
    source_length = meta["max_source_length"]
    max_length = meta["max_target_length"] + 1  # eos included
    module = _Module(
        static_model(model, source_length, max_length),
        source_length,
        max_length,
        vocabularies["special_ids"],
    )
    paths = {}
    # The weights become constants: a WHILE body that reads resource variables fails in
    # LiteRT ("READ_VARIABLE ... variable != nullptr").
    step("tflite: tracing")
    frozen = {key: _frozen(getattr(module, key)) for key in SIGNATURES}
    with tempfile.TemporaryDirectory() as staging:
        tf.saved_model.save(tf.Module(), staging, signatures=frozen)
        for q in quantizations:
            step(f"tflite: converting {q}")
            path = directory / f"model.{q}.tflite"
            path.write_bytes(convert(staging, q))
            paths[q] = path

    copy_vocabularies(run, directory)
    shutil.copy(Path(__file__).with_name("tflite_runtime.py"), directory / RUNTIME_FILE)
    export_info = {
        "format": "tflite",
        "keras_s2s_version": keras_s2s.__version__,
        "pipeline": meta.get("pipeline"),
        **(info or {}),
        "source_length": source_length,
        "max_length": max_length,
        **vocabularies,
        "models": {q: p.name for q, p in paths.items()},
    }
    (directory / TFLITE_INFO_FILE).write_text(json.dumps(export_info, indent=2))
    return paths


def export_tflite(
    run_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    quantizations: tuple[str, ...] = ("float32",),
    allow_unfinished: bool = False,
) -> dict[str, Path]:
    """Writes `model.<quantization>.tflite` files, the vocabularies and the runtime wrapper.

    Returns `{quantization: path}`. `float16` stores float16 weights; `int8` is dynamic-range
    quantization (int8 weights, float activations). The options are checked before anything
    is written; `output_dir` may exist (files of the same name are replaced). For versioned
    folders (`<root>/<name>-tflite/<version>/`, written whole or not at all, the same version
    as the SavedModel), use `keras_s2s.export.export`.

    Example:
    ```python
    paths = keras_s2s.export.export_tflite("runs/date_attention", "saved_models/date_tflite")
    ```
    """
    quantizations = check_quantizations(quantizations)
    run = RunDirectory(run_dir)
    model = run.load_model(allow_unfinished=allow_unfinished, dtype=EXPORT_DTYPE)
    vocabularies = runtime_vocabularies(run, *run.load_tokenizers())
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ExportError(f"{output_dir} exists and is not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    info = {"run_dir": str(run.path.resolve())}
    return write_tflite(model, vocabularies, run, output_dir, quantizations, info)


class TFLiteExporter(Exporter):
    """Builtin-only TFLite files and their wrapper (`write_tflite`), in `<name>-tflite/`.
    Option: `quantizations` (each checked even when TFLite is not written; one at least when
    it is)."""

    folder_suffix = TFLITE_SUFFIX
    order = 0  # First: its conversion is the likelier to fail.

    def check(self, options: dict, selected: bool) -> dict:
        quantizations = check_quantizations(options.get("quantizations", ()), required=selected)
        return {**options, "quantizations": quantizations}

    def steps(self, options: dict) -> int:
        return 1 + len(options["quantizations"])

    def write(self, translator, run, directory, options, info, step) -> None:
        # The translator's tokenizers: loaded once for every format.
        tokenizers = translator.source_tokenizer, translator.target_tokenizer
        vocabularies = runtime_vocabularies(run, *tokenizers)
        write_tflite(translator.model, vocabularies, run, directory, options["quantizations"],
                     info, step)  # fmt: skip
