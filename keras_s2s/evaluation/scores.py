"""Translation scores: exact match, sacreBLEU, chrF and character error rate."""

from __future__ import annotations

import sacrebleu
from rapidfuzz.distance import Levenshtein


def score_translations(hypotheses: list[str], references: list[str]) -> dict:
    """Scores free-running translations against references (plain strings).

    Returns a dict with `exact_match` (fraction of whole strings equal to the reference),
    `bleu` and `chrf` (sacreBLEU, 0-100, on detokenized text, with their signatures) and `cer`
    (character edit distance / reference characters).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"Got {len(hypotheses)} hypotheses for {len(references)} references")
    count = len(references)
    exact = sum(h == r for h, r in zip(hypotheses, references, strict=True))
    edits = sum(Levenshtein.distance(h, r) for h, r in zip(hypotheses, references, strict=True))
    characters = sum(len(r) for r in references)
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    return {
        "examples": count,
        "exact_match": exact / count if count else 0.0,
        "bleu": bleu.corpus_score(hypotheses, [references]).score if count else 0.0,
        "chrf": chrf.corpus_score(hypotheses, [references]).score if count else 0.0,
        "cer": edits / characters if characters else float(edits > 0),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
