"""Property-based tests (hypothesis) of the client's own logic: request checks, length grouping
and its undoing, ranking, and the server-limit split, over arbitrary inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from triton_rerank import RerankInputError
from triton_rerank.base import in_input_order, length_groups, rows_per_request
from triton_rerank.client import check_request, rank
from triton_rerank.endpoints import parse_urls
from triton_rerank.protocol import CASCADE_K, MAX_ROWS_PER_REQUEST

texts = st.lists(st.text(max_size=60), max_size=60)


@given(texts, st.integers(min_value=1, max_value=70))
def test_length_groups_cover_every_item_once_and_in_input_order_undoes_them(items, size):
    encoded = [t.encode("utf-8", "surrogatepass") for t in items]
    order, groups = length_groups(encoded, size)
    assert sorted(order.tolist()) == list(range(len(items)))
    assert all(1 <= len(group) <= size for group in groups)
    assert [item for group in groups for item in group] == [encoded[i] for i in order]
    lengths = [len(item) for group in groups for item in group]
    assert lengths == sorted(lengths)  # similar lengths share a request
    # a "score" per item that says which item it was: undoing the grouping puts each back
    parts = [np.array([float(encoded.index(item)) for item in group], np.float32) for group in groups]
    restored = in_input_order(order, parts)
    assert [encoded[int(i)] for i in restored] == encoded


@given(st.lists(st.floats(allow_nan=False, width=32), max_size=50), st.one_of(st.none(), st.integers(1, 60)))
def test_rank_is_a_descending_stable_permutation_cut_at_top_k(scores, top_k):
    documents = [f"d{i}" for i in range(len(scores))]
    results = rank(documents, np.array(scores, np.float32), top_k)
    assert len(results) == (len(scores) if top_k is None else min(top_k, len(scores)))
    assert len({r.index for r in results}) == len(results)
    for a, b in zip(results, results[1:], strict=False):
        assert a.score > b.score or (a.score == b.score and a.index < b.index)
    assert all(r.text == documents[r.index] for r in results)


@given(st.text(), texts, st.one_of(st.none(), st.integers(-5, 100), st.booleans(), st.floats()))
def test_check_request_accepts_exactly_the_valid_calls(query, documents, top_k):
    valid_top_k = top_k is None or (type(top_k) is int and top_k >= 1)
    encodable = all("\ud800" > c or c > "\udfff" for t in [query, *documents] for c in t)
    if valid_top_k and encodable:
        assert check_request(query, documents, top_k) == [d.encode("utf-8") for d in documents]
    else:
        try:
            check_request(query, documents, top_k)
        except RerankInputError as err:
            assert str(err)  # says what was wrong
        else:
            raise AssertionError("an invalid call was accepted")


@given(st.integers(1, 1000), st.one_of(st.none(), st.integers(1, 1000)), st.booleans())
def test_requests_never_exceed_the_servers_limit(batch_size, limit, cascade):
    limits = ({MAX_ROWS_PER_REQUEST: limit} if limit else {}) | ({CASCADE_K: 10} if cascade else {})
    size = rows_per_request(batch_size, limits)
    assert 1 <= size
    if limit:
        assert size <= limit
    # A cascade ranks a request's documents among themselves: it gets all it takes in one request.
    assert size == (limit if cascade and limit else min(batch_size, limit or batch_size))


@given(st.lists(st.sampled_from(["grpc://a:1", "grpc://b:2", "grpc://c:3"]), min_size=1, max_size=3, unique=True))
def test_parse_urls_keeps_replicas_in_order_whether_a_list_or_commas(urls):
    assert parse_urls(urls) == urls == parse_urls(",".join(urls))
