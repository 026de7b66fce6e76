"""CTranslate2 export: the model in CTranslate2's format (OpenNMT's inference engine), with its
vocabularies and the run's tokenizer files, in `<name>-ctranslate2/<version>/`.

A family converts if `keras_s2s.registry.CTRANSLATE2_CONVERTERS` has a converter under its
`model.type` name (the Transformer's: `keras_s2s.models.transformer.ctranslate2`; a plugin
family registers its own); the converter fills CTranslate2's spec through CTranslate2's own
spec API, which saves it. CTranslate2 reads and writes tokens, not text:
`ctranslate2_translator.py`, shipped beside the model, tokenizes with the run's tokenizer files
(in `assets/`) and decodes as keras-s2s does (`keras_s2s.export.ctranslate2_runtime`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras_s2s
from keras_s2s.errors import ExportError
from keras_s2s.export.exporter import Exporter
from keras_s2s.export.layout import copy_vocabularies
from keras_s2s.export.tflite import runtime_vocabularies
from keras_s2s.registry import CTRANSLATE2_CONVERTERS

#: Written beside `model.bin`: how it was made and how to tokenize for it.
CTRANSLATE2_INFO_FILE = "keras_s2s_export.json"
#: The wrapper shipped beside the model (`keras_s2s/export/ctranslate2_runtime.py`).
RUNTIME_FILE = "ctranslate2_translator.py"
#: `--quantization` name -> CTranslate2's weight type (None: float32, as trained).
CTRANSLATE2_QUANTIZATIONS = {"float32": None, "float16": "float16", "int8": "int8"}


def _tokens(tokenizer) -> list[str]:
    return [tokenizer.id_to_token(i) for i in range(tokenizer.vocabulary_size)]


def write_ctranslate2(translator, run, directory: Path, quantization: str, info: dict) -> None:
    """Writes the CTranslate2 model of `translator` (one run; float32 weights) into the existing,
    empty folder `directory`, its weights stored as `quantization` (`CTRANSLATE2_QUANTIZATIONS`),
    with the tokenizer files in `assets/` and the JSON file (with `info`)."""
    model = translator.model
    source, target = translator.source_tokenizer, translator.target_tokenizer
    # Positions: the longest source the model reads and the longest output, eos included.
    positions = max(translator.max_source_length, translator.max_target_length + 1)
    family = run.config()["model"]["type"]
    if family not in CTRANSLATE2_CONVERTERS:
        raise ExportError(
            f"The {family} family does not convert to CTranslate2; "
            f"the families that do: {', '.join(CTRANSLATE2_CONVERTERS)}"
        )
    from ctranslate2 import specs  # Lazy: the `ctranslate2` extra.

    converter = CTRANSLATE2_CONVERTERS[family]
    spec = converter(model, specs, _tokens(source), _tokens(target), positions)
    vocabularies = runtime_vocabularies(run, source, target)  # for the shipped wrapper
    config = spec.config
    config.unk_token = target.id_to_token(target.unk_id)
    config.bos_token = config.decoder_start_token = target.id_to_token(target.bos_id)
    config.eos_token = target.id_to_token(target.eos_id)
    spec.validate()
    spec.optimize(quantization=CTRANSLATE2_QUANTIZATIONS[quantization])
    spec.save(str(directory))
    (directory / "assets").mkdir()
    copy_vocabularies(run, directory / "assets")
    shutil.copy(Path(__file__).with_name("ctranslate2_runtime.py"), directory / RUNTIME_FILE)
    meta = run.metadata()
    export_info = {
        "format": "ctranslate2",
        "keras_s2s_version": keras_s2s.__version__,
        "pipeline": meta.get("pipeline"),
        **info,
        "quantization": quantization,
        "max_source_length": meta["max_source_length"],
        "max_target_length": meta["max_target_length"],
        "source": meta["source"],
        "target": meta["target"],
        "vocabularies": {side: vocabularies[side] for side in ("source", "target")},
        "special_tokens": {
            "pad": target.id_to_token(target.pad_id),
            "unk": config.unk_token,
            "bos": config.bos_token,
            "eos": config.eos_token,
        },  # fmt: skip
    }
    (directory / CTRANSLATE2_INFO_FILE).write_text(json.dumps(export_info, indent=2))


class CTranslate2Exporter(Exporter):
    """The CTranslate2 model (`write_ctranslate2`), in `<name>-ctranslate2/`. Option:
    `quantizations` (one, when this format is written: CTranslate2 stores one weight type,
    and also quantizes a float32 model as it loads it, `compute_type="int8"`)."""

    folder_suffix = "-ctranslate2"
    order = 2

    def check(self, options: dict, selected: bool) -> dict:
        if not selected:
            return options
        quantizations = options.get("quantizations", ("float32",))
        quantizations = (quantizations,) if isinstance(quantizations, str) else quantizations
        if len(quantizations) != 1 or quantizations[0] not in CTRANSLATE2_QUANTIZATIONS:
            raise ExportError(
                "The CTranslate2 export writes one model: give one quantization of "
                f"{', '.join(CTRANSLATE2_QUANTIZATIONS)} (asked: {', '.join(quantizations)})"
            )
        try:
            import ctranslate2  # noqa: F401
        except ImportError:
            raise ExportError(
                "The CTranslate2 export needs the ctranslate2 package: "
                "pip install 'keras-s2s[ctranslate2]'"
            ) from None
        return options

    def write(self, translator, run, directory, options, info, step) -> None:
        step("ctranslate2: converting")
        write_ctranslate2(translator, run, directory, options["quantizations"][0], info)
