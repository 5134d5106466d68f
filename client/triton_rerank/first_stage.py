"""The first stage: which candidates the reranker reads.

- ``dense``: the query's embedding, nearest documents by cosine (HNSW by default).
- ``bm25``: Milvus' BM25 over the analyzed text (no embedding call).
- ``hybrid``: both legs, each ``leg_k`` deep, fused by one of
  - ``fusion="relative"`` (the default): relative score fusion, Weaviate's default. Each leg's
    scores are min-max scaled over that leg's own hits (its best 1, its worst 0), then summed with
    ``weights`` = (dense, bm25), default (0.75, 0.25) as Weaviate ships them. Done here, from the two
    legs' lists: Milvus has no min-max ranker.
  - ``fusion="rrf"``: reciprocal rank fusion inside Milvus' ``hybrid_search``,
    ``sum 1 / (rrf_k + rank)``: equal say for each leg, whatever its scores.
  - ``fusion="weighted"``: Milvus' ``WeightedRanker`` (``weights``, default equal) on Milvus' own
    normalisation (arctan for BM25), which lets BM25 outrank dense; see docs/first-stage.md.
  Every hit says where each leg put it (``Match.legs``): relative fusion reads the legs anyway; the
  Milvus fusions read each leg again for it (two more searches, which the benchmark counts).
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
FUSIONS = ("relative", "rrf", "weighted")
LEGS = ("dense", "bm25")  # the order of hybrid's legs, and of ``weights``
DEFAULT_RRF_K = 60  # the constant of Cormack et al. (2009), Milvus' and Elasticsearch's default
# Weights without ``weights=``: Weaviate's alpha = 0.75 for its relative score fusion (chosen there,
# not tuned on our evaluation sets); equal for Milvus' WeightedRanker.
DEFAULT_WEIGHTS = {"relative": (0.75, 0.25), "weighted": (0.5, 0.5)}


@dataclass(frozen=True)
class FirstStage:
    kind: str = "auto"
    fusion: str = "relative"
    rrf_k: int = DEFAULT_RRF_K
    weights: tuple[float, float] | None = None  # (dense, bm25); default DEFAULT_WEIGHTS[fusion]
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
        fused = (
            self.fusion != FirstStage.fusion or self.rrf_k != DEFAULT_RRF_K or self.weights is not None or self.leg_k
        )
        if self.kind in LEGS and fused:
            raise RerankInputError(
                f"fusion, rrf_k, weights and leg_k set how the hybrid first stage fuses its legs; "
                f"first_stage={self.kind!r} has one leg"
            )

    def _check_weights(self) -> None:
        if self.fusion not in DEFAULT_WEIGHTS:
            fusions = " or ".join(map(repr, DEFAULT_WEIGHTS))
            raise RerankInputError(f"weights apply to fusion {fusions}, not {self.fusion!r}")
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
    def leg_weights(self) -> tuple[float, float]:
        """(dense, bm25) for a fusion that weighs its legs."""
        return self.weights or DEFAULT_WEIGHTS[self.fusion]

    @property
    def name(self) -> str:
        """How reports show it: ``hybrid (relative 0.75/0.25)``, ``hybrid (rrf k=60)``, ``dense``."""
        if self.kind != "hybrid":
            return self.kind
        if self.fusion == "rrf":
            return f"hybrid (rrf k={self.rrf_k})"
        dense, bm25 = self.leg_weights
        return f"hybrid ({self.fusion} {dense:g}/{bm25:g})"


def retrieve(
    store, stage: FirstStage, queries: list[str], vectors: np.ndarray | None, *, limit: int, filter: str | None = None
) -> list[list[Match]]:
    """Each query's candidates from ``store`` by a resolved ``stage``, best first, with their legs."""
    if stage.kind == "dense":
        return [_with_legs(hits, {"dense": hits}) for hits in store.search(vectors, limit=limit, filter=filter)]
    if stage.kind == "bm25":
        return [_with_legs(hits, {"bm25": hits}) for hits in store.search_text(queries, limit=limit, filter=filter)]
    depth = stage.leg_k or limit
    dense = store.search(vectors, limit=depth, filter=filter)
    bm25 = store.search_text(queries, limit=depth, filter=filter)
    if stage.fusion == "relative":
        fused = [relative_fusion(d, b, stage.leg_weights, limit) for d, b in zip(dense, bm25, strict=True)]
    else:
        fused = fuse(store, stage, queries, vectors, limit=limit, filter=filter)
    return [_with_legs(hits, {"dense": d, "bm25": b}) for hits, d, b in zip(fused, dense, bm25, strict=True)]


def relative_fusion(dense: list[Match], bm25: list[Match], weights: tuple[float, float], limit: int) -> list[Match]:
    """Relative score fusion of one query's two legs: each leg's scores min-max scaled over its own
    hits (a leg whose hits all score alike gives each 1), weighted, summed (a leg that missed a
    document adds 0); best first, ties in dense's order, then BM25's."""
    fused: dict[str, float] = {}
    first_seen: dict[str, Match] = {}
    for hits, weight in zip((dense, bm25), weights, strict=True):
        scores = [hit.score for hit in hits]
        low, spread = (min(scores), max(scores) - min(scores)) if scores else (0.0, 0.0)
        for hit in hits:
            scaled = (hit.score - low) / spread if spread > 0 else 1.0
            fused[hit.id] = fused.get(hit.id, 0.0) + weight * scaled
            first_seen.setdefault(hit.id, hit)
    order = sorted(first_seen, key=lambda id_: -fused[id_])  # stable: dense's order, then BM25's, on ties
    return [replace(first_seen[id_], score=fused[id_], legs={}) for id_ in order[:limit]]


def fuse(
    store, stage: FirstStage, queries: list[str], vectors: np.ndarray, *, limit: int, filter: str | None = None
) -> list[list[Match]]:
    """A hybrid ``stage``'s fused lists from Milvus' ``hybrid_search`` alone (``rrf`` or ``weighted``),
    without the legs' ranks."""
    if stage.kind != "hybrid" or stage.fusion == "relative":
        raise RerankInputError(f"Milvus fuses a resolved hybrid first stage by rrf or weighted (got {stage.name!r})")
    from pymilvus import RRFRanker, WeightedRanker

    depth = stage.leg_k or limit
    requests = [
        store.dense_request(vectors, limit=depth, filter=filter),
        store.text_request(queries, limit=depth, filter=filter),
    ]  # in LEGS order: the weights follow it
    ranker = RRFRanker(stage.rrf_k) if stage.fusion == "rrf" else WeightedRanker(*stage.leg_weights)
    return store.search_hybrid(requests, ranker, limit=limit)


def _with_legs(hits: list[Match], legs: dict[str, list[Match]]) -> list[Match]:
    """``hits`` carrying, for each leg that found them, that leg's rank and score."""
    placed = {leg: {m.id: LegHit(rank, m.score) for rank, m in enumerate(found, 1)} for leg, found in legs.items()}
    return [replace(hit, legs={leg: where[hit.id] for leg, where in placed.items() if hit.id in where}) for hit in hits]
