"""Exporters: SavedModel (TF Serving layout, strings in and out) and builtin-only TFLite."""

from keras_s2s.export.api import FORMATS, export
from keras_s2s.export.savedmodel import export_saved_model
from keras_s2s.export.tflite import QUANTIZATIONS, custom_ops, export_tflite, static_model

__all__ = [
    "FORMATS",
    "export",
    "QUANTIZATIONS",
    "custom_ops",
    "export_saved_model",
    "export_tflite",
    "static_model",
]
