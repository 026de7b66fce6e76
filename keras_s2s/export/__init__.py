"""Exporters: SavedModel (TF Serving layout, strings in and out) and builtin-only TFLite;
your own formats through `register` (an `Exporter` subclass)."""

from keras_s2s.export.api import FORMATS, export
from keras_s2s.export.exporter import Exporter
from keras_s2s.export.savedmodel import export_saved_model
from keras_s2s.export.tflite import QUANTIZATIONS, custom_ops, export_tflite, static_model
from keras_s2s.registry import EXPORTERS

#: Class decorator: registers an `Exporter` subclass under a format name.
register = EXPORTERS.register

__all__ = [
    "EXPORTERS",
    "Exporter",
    "FORMATS",
    "export",
    "QUANTIZATIONS",
    "custom_ops",
    "export_saved_model",
    "export_tflite",
    "register",
    "static_model",
]
