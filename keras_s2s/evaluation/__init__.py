"""Honest evaluation: free-running decoding scored against references."""

from keras_s2s.evaluation.evaluate import evaluate_run
from keras_s2s.evaluation.scores import score_translations

__all__ = ["evaluate_run", "score_translations"]
