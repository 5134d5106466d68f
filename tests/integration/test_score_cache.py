"""The score cache against a real Triton and a real ``redis-server``: only the misses reach Triton,
a hit is bit for bit the score (tokens, span) computed without the cache, options and versions key
apart, the memory store stays in its bytes, a Redis is shared between clients, and a Redis that
dies mid-run degrades to computing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from triton_counts import settled_stats

from triton_rerank import TritonRerankFunction
from triton_rerank.errors import RerankInputError
from triton_rerank.score_cache import MemoryScoreCache, RedisScoreCache

pytestmark = pytest.mark.integration

QUERY = "what is the capital of france"
DOCUMENTS = [f"paris is the capital of france, fact {i}" for i in range(20)] + ["berlin", "a dog"] * 3


def requests_of(server) -> int:
    return settled_stats(server.http_url)["reranker"]["requests"]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_only_misses_reach_triton_and_hits_are_bit_identical(triton_server, protocol):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with TritonRerankFunction(url) as plain, TritonRerankFunction(url, score_cache="memory") as cached:
        expected = plain.score_details(QUERY, DOCUMENTS, tokens=True, spans=True)
        cold = cached.score_details(QUERY, DOCUMENTS, tokens=True, spans=True)
        before = requests_of(triton_server)
        warm = cached.score_details(QUERY, DOCUMENTS, tokens=True, spans=True)
        assert requests_of(triton_server) == before  # every pair a hit: nothing sent
        for got in (cold, warm):
            np.testing.assert_array_equal(got.scores, expected.scores)
            np.testing.assert_array_equal(got.tokens, expected.tokens)
            np.testing.assert_array_equal(got.spans, expected.spans)
        assert warm.scores.dtype == expected.scores.dtype == np.float32
        np.testing.assert_array_equal(cached.score(QUERY, DOCUMENTS), plain.score(QUERY, DOCUMENTS))
        assert cached(QUERY, DOCUMENTS, top_k=3) == plain(QUERY, DOCUMENTS, top_k=3)
        counts = cached._async.score_cache.counts
        assert counts.misses == len(DOCUMENTS) and counts.hits == 3 * len(DOCUMENTS)

        # Half new: only those are sent, in one request, and the old half still hits.
        mixed = DOCUMENTS[:10] + [f"new document {i}" for i in range(10)]
        np.testing.assert_array_equal(cached.score(QUERY, mixed), plain.score(QUERY, mixed))
        assert counts.misses == len(DOCUMENTS) + 10


def test_options_that_change_a_score_key_apart(triton_server):
    long_document = "paris is the capital of france. " * 40  # longer than the tiny model reads
    with TritonRerankFunction(triton_server.grpc_url, score_cache="memory") as rf:
        first = rf.score(QUERY, [long_document])
        windowed = rf.score(QUERY, [long_document], long_documents="max")
        counts = rf._async.score_cache.counts
        assert counts.misses == 2 and counts.hits == 0
        assert rf.score(QUERY, [long_document], long_documents="max")[0] == windowed[0] != first[0]
        assert rf.score(QUERY.upper(), [long_document])[0] is not None and counts.misses == 3


def test_the_memory_store_stays_within_its_bytes_and_evicts_the_least_recent(triton_server):
    cache = MemoryScoreCache(max_bytes=10 * 160)  # about ten pairs
    with (
        TritonRerankFunction(triton_server.grpc_url, score_cache=cache) as rf,
        TritonRerankFunction(triton_server.grpc_url) as plain,
    ):
        documents = [f"document number {i}" for i in range(40)]
        np.testing.assert_array_equal(rf.score(QUERY, documents), plain.score(QUERY, documents))
        assert cache.bytes <= cache.max_bytes and 0 < len(cache) < 40 and cache.evictions == 40 - len(cache)
        np.testing.assert_array_equal(rf.score(QUERY, documents[-3:]), plain.score(QUERY, documents[-3:]))
        assert cache.counts.hits == 3  # the most recent stayed
    with pytest.raises(RerankInputError, match="max_bytes"):
        MemoryScoreCache(0)


def test_a_redis_is_shared_between_clients_and_its_death_degrades_to_computing(triton_server, redis_server, caplog):
    with (
        TritonRerankFunction(triton_server.grpc_url, score_cache=redis_server.url) as one,
        TritonRerankFunction(triton_server.grpc_url, score_cache=RedisScoreCache(redis_server.url)) as other,
        TritonRerankFunction(triton_server.grpc_url) as plain,
    ):
        expected = plain.score(QUERY, DOCUMENTS)
        np.testing.assert_array_equal(one.score(QUERY, DOCUMENTS), expected)
        before = requests_of(triton_server)
        np.testing.assert_array_equal(other.score(QUERY, DOCUMENTS), expected)  # scored through one: a hit here
        assert requests_of(triton_server) == before and other._async.score_cache.counts.misses == 0

        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="triton_rerank.score_cache"):
            for _ in range(3):
                np.testing.assert_array_equal(other.score(QUERY, DOCUMENTS), expected)
        assert other._async.score_cache.counts.errors >= 3
        assert sum("computing every score" in r.getMessage() for r in caplog.records) == 1  # once per outage


def test_a_redis_that_does_not_answer_at_start_is_a_clear_error(triton_server):
    from triton_rerank.serving.server import free_port

    with TritonRerankFunction(triton_server.grpc_url, score_cache=f"redis://127.0.0.1:{free_port()}/0") as rf:
        with pytest.raises(RerankInputError, match="score cache at redis://127.0.0.1:.* does not answer"):
            rf.score(QUERY, DOCUMENTS)
    with pytest.raises(RerankInputError, match="'memory' or a redis:// URL"):
        TritonRerankFunction(triton_server.grpc_url, score_cache="disk")


def test_two_api_processes_share_one_redis_and_show_the_hits_as_metrics(triton_server, redis_server):
    """A pair scored through one API replica is a hit through the other; the cohere route's scores are
    the same with and without the cache; the hit ratio is on /metrics. A Redis that does not answer
    when the API starts is refused in one line."""
    import subprocess
    import sys

    import httpx

    from benchmarks.api_process import ApiProcess
    from triton_rerank.serving.server import free_port

    body = {"model": "reranker", "query": QUERY, "documents": DOCUMENTS}
    with (
        ApiProcess(triton_server.grpc_url) as plain,
        ApiProcess(triton_server.grpc_url, "--score-cache", redis_server.url) as one,
        ApiProcess(triton_server.grpc_url, "--score-cache", redis_server.url) as other,
    ):
        expected = httpx.post(f"{plain.url}/v2/rerank", json=body, timeout=30).json()["results"]
        assert httpx.post(f"{one.url}/v2/rerank", json=body, timeout=30).json()["results"] == expected
        before = requests_of(triton_server)
        assert httpx.post(f"{other.url}/v2/rerank", json=body, timeout=30).json()["results"] == expected
        assert requests_of(triton_server) == before  # every pair came from the cache the first replica filled
        metrics = httpx.get(f"{other.url}/metrics").text
        assert f'rerank_api_score_cache_lookups_total{{result="hit"}} {float(len(DOCUMENTS))}' in metrics
        assert 'rerank_api_score_cache_lookups_total{result="miss"} 0.0' in metrics
        assert "rerank_api_score_cache_errors_total 0.0" in metrics
    refused = subprocess.run(
        [sys.executable, "-m", "triton_rerank.cli", "api", "--triton-url", triton_server.grpc_url,
         "--score-cache", f"redis://127.0.0.1:{free_port()}/0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "no Redis answers there" in refused.stderr
    assert "Traceback" not in refused.stderr
