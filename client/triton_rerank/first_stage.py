"""The first stage: which candidates the reranker reads.

- ``dense``: the query's embedding, nearest documents by cosine (HNSW by default).
- ``bm25``: Milvus' BM25 over the analyzed text (no embedding call).
- ``hybrid``: both legs, each ``leg_k`` deep, fused inside Milvus by ``hybrid_search``:
  ``fusion="rrf"`` (reciprocal rank fusion, ``sum 1 / (rrf_k + rank)``, the default: it needs no
  score calibration) or ``fusion="weighted"`` (``weights`` = (dense, bm25) on Milvus' normalised
  scores). Each leg is also read on its own, so that every hit says where each leg put it
  (``Match.legs``); that costs two more searches, which the benchmark counts.
- ``auto`` (the default): ``hybrid`` where the collection has BM25, else ``dense``; see
  docs/first-stage.md for the measurements that chose it.

Settings are checked when a ``FirstStage`` is made, so that a bad one fails before any search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from triton_rerank.errors import RerankInputError
from triton_rerank.store import MAX_LIMIT, LegHit, Match

FIRST_STAGES = ("auto", "dense", "bm25", "hybrid")
FUSIONS = ("rrf", "weighted")
LEGS = ("dense", "bm25")  # the order of hybrid's legs, and of ``weights``
DEFAULT_RRF_K = 60  # the constant of Cormack et al. (2009), Milvus' and Elasticsearch's default
EQUAL_WEIGHTS = (0.5, 0.5)  # fusion="weighted" without weights


@dataclass(frozen=True)
class FirstStage:
    kind: str = "auto"
    fusion: str = "rrf"
    rrf_k: int = DEFAULT_RRF_K
    weights: tuple[float, float] | None = None  # (dense, bm25) for fusion="weighted"; default equal
    leg_k: int | None = None  # how deep each hybrid leg searches; default: the candidates asked for

    def __post_init__(self) -> None:
        if self.kind not in FIRST_STAGES:
            raise RerankInputError(f"first_stage must be one of {FIRST_STAGES}, got {self.kind!r}")
        if self.fusion not in FUSIONS:
            raise RerankInputError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or not 0 < self.rrf_k < MAX_LIMIT:
            raise RerankInputError(f"rrf_k must be an int in 1..{MAX_LIMIT - 1}, got {self.rrf_k!r}")
        if self.leg_k is not None and (
            isinstance(self.leg_k, bool) or not isinstance(self.leg_k, int) or not 1 <= self.leg_k <= MAX_LIMIT
        ):
            raise RerankInputError(f"leg_k must be an int in 1..{MAX_LIMIT}, got {self.leg_k!r}")
        if self.weights is not None:
            self._check_weights()
        fused = self.fusion != "rrf" or self.rrf_k != DEFAULT_RRF_K or self.weights is not None or self.leg_k
        if self.kind in LEGS and fused:
            raise RerankInputError(
                f"fusion, rrf_k, weights and leg_k set how the hybrid first stage fuses its legs; "
                f"first_stage={self.kind!r} has one leg"
            )

    def _check_weights(self) -> None:
        if self.fusion != "weighted":
            raise RerankInputError(f"weights apply to fusion='weighted', not {self.fusion!r}")
        weights = list(self.weights) if isinstance(self.weights, (list, tuple)) else None
        if weights is None or len(weights) != len(LEGS):
            raise RerankInputError(f"weights give one weight per leg {LEGS}, got {self.weights!r}")
        for leg, weight in zip(LEGS, weights, strict=True):
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (0 <= weight <= 1):
                raise RerankInputError(f"the {leg} weight must be a number in [0, 1], got {weight!r}")
        if not math.fsum(weights) > 0:
            raise RerankInputError(f"weights {self.weights!r} are all 0: no leg would count")
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))  # a list given is kept as a tuple

    def resolve(self, store) -> FirstStage:
        """``auto`` made concrete for ``store``'s collection; a BM25 leg on a dense-only one is refused."""
        if self.kind == "auto":
            return replace(self, kind="hybrid" if getattr(store, "has_bm25", False) else "dense")
        if self.kind != "dense":
            store.require_bm25()
        return self

    @property
    def needs_vectors(self) -> bool:
        return self.kind != "bm25"

    @property
    def name(self) -> str:
        """How reports show it: ``hybrid (rrf k=60)``, ``hybrid (weighted 0.7/0.3)``, ``dense``."""
        if self.kind != "hybrid":
            return self.kind
        if self.fusion == "rrf":
            return f"hybrid (rrf k={self.rrf_k})"
        dense, bm25 = self.weights or EQUAL_WEIGHTS
        return f"hybrid (weighted {dense:g}/{bm25:g})"


def retrieve(
    store, stage: FirstStage, queries: list[str], vectors: np.ndarray | None, *, limit: int, filter: str | None = None
) -> list[list[Match]]:
    """Each query's candidates from ``store`` by a resolved ``stage``, best first, with their legs."""
    if stage.kind == "dense":
        return [_with_legs(hits, {"dense": hits}) for hits in store.search(vectors, limit=limit, filter=filter)]
    if stage.kind == "bm25":
        return [_with_legs(hits, {"bm25": hits}) for hits in store.search_text(queries, limit=limit, filter=filter)]
    depth = stage.leg_k or limit
    fused = fuse(store, stage, queries, vectors, limit=limit, filter=filter)
    dense = store.search(vectors, limit=depth, filter=filter)
    bm25 = store.search_text(queries, limit=depth, filter=filter)
    return [_with_legs(hits, {"dense": d, "bm25": b}) for hits, d, b in zip(fused, dense, bm25, strict=True)]


def fuse(
    store, stage: FirstStage, queries: list[str], vectors: np.ndarray, *, limit: int, filter: str | None = None
) -> list[list[Match]]:
    """A hybrid ``stage``'s fused lists from Milvus' ``hybrid_search`` alone, without the legs' ranks."""
    if stage.kind != "hybrid":
        raise RerankInputError(f"only a resolved hybrid first stage fuses (got {stage.kind!r})")
    from pymilvus import RRFRanker, WeightedRanker

    depth = stage.leg_k or limit
    requests = [
        store.dense_request(vectors, limit=depth, filter=filter),
        store.text_request(queries, limit=depth, filter=filter),
    ]  # in LEGS order: the weights follow it
    ranker = RRFRanker(stage.rrf_k) if stage.fusion == "rrf" else WeightedRanker(*(stage.weights or EQUAL_WEIGHTS))
    return store.search_hybrid(requests, ranker, limit=limit)


def _with_legs(hits: list[Match], legs: dict[str, list[Match]]) -> list[Match]:
    """``hits`` carrying, for each leg that found them, that leg's rank and score."""
    placed = {leg: {m.id: LegHit(rank, m.score) for rank, m in enumerate(found, 1)} for leg, found in legs.items()}
    return [replace(hit, legs={leg: where[hit.id] for leg, where in placed.items() if hit.id in where}) for hit in hits]
