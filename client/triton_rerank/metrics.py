"""Ranking metrics as trec_eval computes them: nDCG@k (graded gains), MRR@k, Recall@k; and how
far two scorings of the same documents agree (rank correlation, top-k overlap).

``qrels`` maps a document id to its relevance grade; grades <= 0 count as not relevant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two score arrays (ties broken by position; scores are continuous)."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the ``k`` best documents by ``a`` that are also among the ``k`` best by ``b``."""
    return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain: gain = grade, discount = 1 / log2(rank + 1)."""
    dcg = sum(max(qrels.get(doc, 0), 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top ``k`` (0 if none)."""
    for rank, doc in enumerate(ranked[:k], 1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents found in the top ``k``."""
    relevant = {doc for doc, grade in qrels.items() if grade > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def evaluate(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, MRR@10 and Recall@100 over the queries of ``qrels``; a query missing from
    ``runs`` counts as an empty ranking."""
    queries = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    if not queries:
        raise ValueError("no query has a relevant document")
    totals = {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@100": 0.0}
    for query in queries:
        ranked = runs.get(query, [])
        totals["ndcg@10"] += ndcg_at_k(ranked, qrels[query], 10)
        totals["mrr@10"] += mrr_at_k(ranked, qrels[query], 10)
        totals["recall@100"] += recall_at_k(ranked, qrels[query], 100)
    return {name: value / len(queries) for name, value in totals.items()}


def noise_band(
    reference: Mapping[tuple[str, str], float],
    other: Mapping[tuple[str, str], float],
    runs: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    draws: int = 300,
    seed: int = 0,
) -> dict[str, float]:
    """How far nDCG@10 moves by chance at ``other``'s score error: the ``reference`` scores of each
    (query, document) pair in ``runs`` plus the ``other - reference`` differences in random order,
    ``draws`` times. A lower precision whose nDCG@10 change lies inside this band has swapped near-ties,
    not lost ranking quality; one far below it has. ``observed`` is ``other``'s own change."""
    pairs = [(query, doc) for query, docs in runs.items() for doc in docs]
    base = np.array([reference[pair] for pair in pairs])
    errors = np.array([other[pair] for pair in pairs]) - base

    def ndcg(scores: np.ndarray) -> float:
        ranked, at = {}, 0
        for query, docs in runs.items():
            order = np.argsort(-scores[at : at + len(docs)], kind="stable")  # ties in list order, as rank() keeps them
            ranked[query], at = [docs[i] for i in order], at + len(docs)
        return evaluate(ranked, qrels)["ndcg@10"]

    start, rng = ndcg(base), np.random.default_rng(seed)
    deltas = np.array([ndcg(base + rng.permutation(errors)) - start for _ in range(draws)])
    return {
        "draws": draws,
        "rms_error": float(np.sqrt(np.mean(errors**2))) if len(errors) else 0.0,
        "observed": ndcg(base + errors) - start,
        "mean": float(deltas.mean()),
        "std": float(deltas.std()),
        "p5": float(np.percentile(deltas, 5)),
        "p95": float(np.percentile(deltas, 95)),
    }
