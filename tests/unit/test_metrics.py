"""Ranking metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from triton_rerank.metrics import (
    evaluate,
    mrr_at_k,
    ndcg_at_k,
    noise_band,
    rank_correlation,
    recall_at_k,
    top_k_overlap,
)


def test_ndcg_of_a_perfect_ranking_is_one_and_of_a_miss_is_zero():
    qrels = {"a": 2, "b": 1}
    assert ndcg_at_k(["a", "b", "x"], qrels) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], qrels) == 0.0


def test_ndcg_uses_graded_gains_and_log_discount():
    qrels = {"a": 2, "b": 1, "c": 0}
    got = ndcg_at_k(["b", "c", "a"], qrels, k=10)
    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert got == pytest.approx(dcg / idcg)


def test_ndcg_cuts_at_k():
    assert ndcg_at_k(["x", "a"], {"a": 1}, k=1) == 0.0


def test_mrr_and_recall():
    qrels = {"a": 1, "b": 1, "z": 0}
    assert mrr_at_k(["z", "x", "b"], qrels) == pytest.approx(1 / 3)
    assert mrr_at_k(["x"] * 10 + ["a"], qrels, k=10) == 0.0
    assert recall_at_k(["a", "x"], qrels) == 0.5


def test_evaluate_averages_over_queries_with_relevant_documents():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    scores = evaluate({"q1": ["a"], "q2": ["x", "b"]}, qrels)
    assert scores["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["recall@100"] == 1.0
    assert evaluate({}, {"q1": {"a": 1}})["ndcg@10"] == 0.0
    with pytest.raises(ValueError, match="no query"):
        evaluate({}, {"q": {"a": 0}})


def test_rank_correlation_and_top_k_overlap_compare_two_scorings():
    scores = np.array([0.1, 2.0, -1.0, 0.5, 3.0])
    assert rank_correlation(scores, scores * 10 - 4) == pytest.approx(1.0)  # same order, other scale
    assert rank_correlation(scores, -scores) == pytest.approx(-1.0)
    assert top_k_overlap(scores, scores + 1, 2) == 1.0
    assert top_k_overlap(scores, np.array([3.0, 2.0, -1.0, 0.5, 0.1]), 2) == 0.5  # {4, 1} vs {0, 1}


def test_noise_band_is_zero_where_the_scores_agree():
    runs, qrels = {"q": ["a", "b", "c"]}, {"q": {"b": 1}}
    scores = {("q", "a"): 0.3, ("q", "b"): 0.2, ("q", "c"): 0.1}
    band = noise_band(scores, dict(scores), runs, qrels, draws=20)
    assert band == {"draws": 20, "rms_error": 0.0, "observed": 0.0, "mean": 0.0, "std": 0.0, "p5": 0.0, "p95": 0.0}


def test_noise_band_reshuffles_the_errors_over_the_pairs():
    # The relevant document keeps its lead only when the +2 error lands on it: a coin toss per draw.
    runs, qrels = {"q": ["r", "x"]}, {"q": {"r": 1}}
    reference = {("q", "r"): 1.0, ("q", "x"): 0.0}
    other = {("q", "r"): 1.0, ("q", "x"): 2.0}
    band = noise_band(reference, other, runs, qrels, draws=300)
    swapped = 1 / math.log2(3) - 1  # r ranked second
    assert band["observed"] == pytest.approx(swapped)
    assert band["rms_error"] == pytest.approx(math.sqrt(2))
    assert band["p5"] == pytest.approx(swapped) and band["p95"] == 0.0
    assert 0.4 < band["mean"] / swapped < 0.6
    assert band == noise_band(reference, other, runs, qrels, draws=300)  # seeded: the same band every time
