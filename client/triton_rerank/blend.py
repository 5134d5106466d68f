"""Blend a reranker's scores with the first stage's, so that a reranker unsure of a domain does not
throw away what the first stage knows: ``w * z(reranker) + (1 - w) * z(first stage)``, each score
z-normalised within one query's candidates (logits and cosines share no scale). ``train`` chooses
``w`` on its dev split and records it in ``train-report.json``; ``RerankPipeline(..., blend=w)``
ranks by it; ``w = 1`` is the reranker alone."""

from __future__ import annotations

import numpy as np

from triton_rerank.errors import RerankInputError


def check_blend(weight: object) -> float | None:
    if weight is None:
        return None
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
        raise RerankInputError(f"blend must be a weight in (0, 1] for the reranker's score, got {weight!r}")
    return float(weight)


def blend(reranker_scores, first_stage_scores, weight: float) -> np.ndarray:
    """The blended scores of one query's candidates (the reranker's own where ``weight`` is 1)."""
    reranker_scores = np.asarray(reranker_scores, dtype=np.float64)
    if weight == 1.0:
        return reranker_scores
    return weight * _z(reranker_scores) + (1 - weight) * _z(np.asarray(first_stage_scores, dtype=np.float64))


def _z(scores: np.ndarray) -> np.ndarray:
    spread = scores.std()
    return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)
