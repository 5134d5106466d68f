"""Relative score fusion on lists made by hand: the scaling, the weights, a missing or flat leg,
ties and the limit. Milvus is not needed: the fusion reads the legs' lists."""

from __future__ import annotations

import pytest

from triton_rerank.first_stage import relative_fusion
from triton_rerank.store import Match


def hits(*scored: tuple[str, float]) -> list[Match]:
    return [Match(id_, f"text of {id_}", score, {}) for id_, score in scored]


def fused(dense, bm25, weights=(0.75, 0.25), limit=10) -> dict[str, float]:
    return {m.id: m.score for m in relative_fusion(dense, bm25, weights, limit)}


def test_each_leg_is_min_max_scaled_over_its_own_hits_then_weighted():
    dense = hits(("a", 0.9), ("b", 0.7), ("c", 0.5))
    bm25 = hits(("c", 30.0), ("d", 20.0), ("a", 10.0))
    assert fused(dense, bm25) == pytest.approx({"a": 0.75, "b": 0.375, "c": 0.25, "d": 0.125})
    assert list(fused(dense, bm25)) == ["a", "b", "c", "d"]  # best first
    assert list(fused(dense, bm25, weights=(0.25, 0.75))) == ["c", "d", "a", "b"]  # 0.75 for c, 0.375 for d


def test_a_leg_that_found_nothing_adds_nothing_and_a_flat_leg_scores_each_hit_1():
    dense = hits(("a", 0.9), ("b", 0.5))
    assert fused(dense, []) == pytest.approx({"a": 0.75, "b": 0.0})
    assert fused([], hits(("x", 3.0), ("y", 3.0))) == pytest.approx({"x": 0.25, "y": 0.25})
    assert relative_fusion([], [], (0.75, 0.25), 10) == []


def test_ties_keep_dense_order_then_bm25_order_and_the_limit_cuts_the_fused_list():
    dense = hits(("a", 0.8), ("b", 0.8))
    bm25 = hits(("c", 5.0), ("d", 5.0))
    assert [m.id for m in relative_fusion(dense, bm25, (0.5, 0.5), 10)] == ["a", "b", "c", "d"]
    top = relative_fusion(dense, bm25, (0.5, 0.5), 3)
    assert [m.id for m in top] == ["a", "b", "c"] and all(m.legs == {} for m in top)
    assert top[0].text == "text of a"  # the document itself travels with its fused score
