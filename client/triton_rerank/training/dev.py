"""The dev split's verdict: nDCG@10 of the first stage's top ``depth`` reranked by a model, alone
or blended with the first stage's own score.

The blend (``triton_rerank.blend``) keeps what the first stage knows; ``w`` is chosen on dev, and
``w = 1``, the reranker alone, wins ties: a blend is kept only where it measures better.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from triton_rerank.blend import blend
from triton_rerank.metrics import ndcg_at_k
from triton_rerank.training.data import TrainingData
from triton_rerank.training.first_stage import Hits

BLEND_WEIGHTS = tuple(round(w / 10, 1) for w in range(10, 0, -1))  # 1.0 (reranker alone) first: it wins ties


@dataclass(frozen=True)
class DevResult:
    ndcg: float  # the reranker alone
    blend_weight: float  # the best w on dev (1.0: no blend)
    blended_ndcg: float
    seconds: float
    pairs: int

    def as_dict(self) -> dict:
        return {
            "ndcg@10": round(self.ndcg, 4),
            "blend_weight": self.blend_weight,
            "blended_ndcg@10": round(self.blended_ndcg, 4),
            "seconds": round(self.seconds, 1),
        }


class DevSet:
    """The dev queries' first-stage candidates, scored by any model the same way."""

    def __init__(self, dev: TrainingData, hits: dict[str, Hits], depth: int) -> None:
        self.dev = dev
        self.candidates = {q: [d for d, _ in hits[q][:depth]] for q in dev.queries}
        self.first_scores = {q: np.array([s for _, s in hits[q][:depth]]) for q in dev.queries}
        self.pairs = [(dev.queries[q], dev.corpus[d]) for q in dev.queries for d in self.candidates[q]]

    def score(self, model) -> dict[str, np.ndarray]:
        """The model's score of each query's candidates."""
        flat = np.asarray(model.predict(self.pairs, batch_size=32, show_progress_bar=False), dtype=np.float64)
        scores, start = {}, 0
        for query, ids in self.candidates.items():
            scores[query], start = flat[start : start + len(ids)], start + len(ids)
        return scores

    def blend(self, scores: np.ndarray, query: str, weight: float) -> np.ndarray:
        """``weight`` x reranker + (1 - weight) x first stage, each z-scored within the query."""
        return blend(scores, self.first_scores[query], weight)

    def per_query(self, scores: dict[str, np.ndarray], weight: float = 1.0) -> dict[str, float]:
        """nDCG@10 of each query, ranked by the blend of ``scores`` with the first stage's."""
        values = {}
        for query, ids in self.candidates.items():
            order = np.argsort(-self.blend(scores[query], query, weight), kind="stable")
            values[query] = ndcg_at_k([ids[i] for i in order], self.dev.judgments[query], 10)
        return values

    def evaluate(self, model, blend: bool) -> DevResult:
        started = time.perf_counter()
        scores = self.score(model)
        alone = _mean(self.per_query(scores))
        weight, blended = 1.0, alone
        for w in BLEND_WEIGHTS[1:] if blend else ():
            value = _mean(self.per_query(scores, w))
            if value > blended:
                weight, blended = w, value
        return DevResult(alone, weight, blended, time.perf_counter() - started, len(self.pairs))

    def first_stage_ndcg(self) -> float:
        return _mean(self.per_query(self.first_scores))


def _mean(values: dict[str, float]) -> float:
    return float(np.mean(list(values.values())))
