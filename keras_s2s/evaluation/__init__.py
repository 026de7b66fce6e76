"""Honest evaluation: free-running decoding scored against references; attention plots."""

from keras_s2s.evaluation.evaluate import evaluate_run
from keras_s2s.evaluation.plots import plot_attention
from keras_s2s.evaluation.scores import score_translations

__all__ = ["evaluate_run", "plot_attention", "score_translations"]
