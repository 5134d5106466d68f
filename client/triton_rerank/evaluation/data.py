"""A run's ranking from its scores (the collections themselves are read by ``triton_rerank.beir``)."""

from __future__ import annotations

from triton_rerank.client import rank


def ranked_ids(ids: list[str], scores) -> list[str]:
    """``ids`` best score first, ties in input order: the client's own ``rank``."""
    return [ids[result.index] for result in rank(ids, scores, None)]
