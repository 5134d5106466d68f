"""The cascade's rule, as the Triton model and the in-process reference both apply it: the best k of
the first stage get the last stage's very scores and rank above every other document, which keeps
the first stage's order; and how a stage's requests are cut to its rows per request."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from triton_rerank.backends.cascade_model import chosen_rows, combine, groups, row_costs
from triton_rerank.distill.verdict import pick

scores = st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=40)


@given(scores, st.integers(1, 50), st.data())
def test_the_last_stage_reads_the_best_k_and_they_rank_above_the_rest(first, k, data):
    first = np.array(first, dtype=np.float32)
    chosen = chosen_rows(first, k)
    assert len(chosen) == min(k, len(first))
    last = np.array(data.draw(st.lists(st.floats(-50, 50, width=32), min_size=len(chosen), max_size=len(chosen))),
                    dtype=np.float32)  # fmt: skip
    out = combine(first, chosen, last)
    np.testing.assert_array_equal(out[chosen], last)  # the last stage's own scores, bit for bit
    rest = np.setdiff1d(np.arange(len(first)), chosen)
    if len(rest):
        assert out[rest].max() < last.min()  # every document it read ranks above the others
        # the others keep the first stage's order (one shift for all of them)
        np.testing.assert_allclose(out[rest] - first[rest], (out[rest] - first[rest])[0], atol=1e-3)
        assert np.all(first[chosen].min() >= first[rest])  # and they were the first stage's best


def test_a_first_stage_already_below_the_last_keeps_its_scores_unchanged():
    out = combine([5.0, -9.0, 4.0, -8.0], np.array([0, 2]), [3.0, 2.0])
    np.testing.assert_array_equal(out, np.float32([3.0, -9.0, 2.0, -8.0]))


@given(st.lists(st.integers(1, 32), max_size=60), st.integers(32, 200))
def test_groups_cover_every_document_once_within_the_rows_per_request(costs, limit):
    ranges = groups(costs, limit)
    assert [i for start, end in ranges for i in range(start, end)] == list(range(len(costs)))
    assert all(sum(costs[start:end]) <= limit for start, end in ranges)


def test_only_documents_that_may_not_fit_count_as_their_window_cap():
    windowed = {"long_documents": "max", "max_chunks_per_doc": 8}
    assert row_costs(10, [5, 500], windowed, max_length=64, reserved=3) == [1, 8]
    assert row_costs(10, [5, 500], {}, max_length=64, reserved=3) == [1, 1]


def test_the_cheapest_holding_configuration_is_chosen_and_none_when_none_holds():
    rows = [
        {"student": "int8, 64 tokens", "k": 10, "ndcg@10": 0.60, "cost": 0.2, "holds": False},
        {"student": "int8, 64 tokens", "k": 20, "ndcg@10": 0.70, "cost": 0.3, "holds": True},
        {"student": "fp32, all tokens", "k": 10, "ndcg@10": 0.70, "cost": 0.4, "holds": True},
    ]
    assert pick(rows) == rows[1]
    assert pick([dict(r, holds=False) for r in rows]) is None
