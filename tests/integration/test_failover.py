"""Several Triton replicas behind one client: requests spread over them, and when one replica
stops mid-stream every request still succeeds on the other (two real servers, one stopped)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from triton_rerank import AsyncTritonRerankFunction, TritonRerankFunction
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

pytestmark = pytest.mark.integration

QUERY = "what is the capital of france"
DOCUMENTS = [f"document {i} about paris and france and the river seine" * (1 + i % 3) for i in range(12)]
CLIENTS, STOP_AFTER, AFTER_STOPPED = 4, 5, 10


def served_requests(server: EmbeddedTritonServer) -> int:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
    try:
        stats = client.get_inference_statistics("reranker")["model_stats"][0]
        return int(stats["inference_stats"]["success"]["count"])
    finally:
        client.close()


def keep_sending(url, options: dict, first_requests: threading.Barrier, event: threading.Event, _: int):
    """One client: STOP_AFTER calls, then waits with the others at ``first_requests``, then goes on
    calling until ``event`` is set (while the fault happens, too) and AFTER_STOPPED calls more.
    Returns the scores and every error, counted rather than raised."""
    scores, errors, after = [], [], 0
    with TritonRerankFunction(url, batch_size=4, timeout_s=30, **options) as rf:
        for k in itertools.count():
            if k == STOP_AFTER:
                first_requests.wait()
            if event.is_set():
                after += 1
                if after > AFTER_STOPPED:
                    break
            try:
                scores.append(rf.score(QUERY, DOCUMENTS))
            except Exception as err:  # counted, not raised: the test wants every failure
                errors.append(err)
    return scores, errors


@pytest.fixture
def replicas(tiny_repository):
    servers = [EmbeddedTritonServer(tiny_repository, free_port_settings()) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_every_request_succeeds_when_one_of_two_replicas_stops(replicas, reference, protocol):
    urls = [server.grpc_url if protocol == "grpc" else server.http_url for server in replicas]
    expected = reference[0].predict([(QUERY, d) for d in DOCUMENTS], activation_fn=lambda x: x)
    first_requests = threading.Barrier(CLIENTS + 1)
    stopped = threading.Event()

    # batch_size 4: each call is three requests, sent concurrently, spread over the replicas
    client = functools.partial(keep_sending, urls, {}, first_requests, stopped)

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client, i) for i in range(CLIENTS)]
        first_requests.wait()
        before = [served_requests(server) for server in replicas]
        replicas[0].stop(grace_s=5)  # while the clients go on sending; killed if still busy after 5 s
        stopped.set()
        results = [future.result() for future in futures]

    errors = [err for _, errs in results for err in errs]
    assert errors == []
    scores = [s for done, _ in results for s in done]
    assert len(scores) >= CLIENTS * (STOP_AFTER + AFTER_STOPPED)
    for got in scores:
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert min(before) > 0, f"both replicas should have served before the stop: {before}"
    assert not replicas[0].running()
    assert served_requests(replicas[1]) > before[1]


async def test_the_async_client_fails_over_too(replicas, reference):
    urls = [server.grpc_url for server in replicas]
    expected = reference[0].predict([(QUERY, d) for d in DOCUMENTS], activation_fn=lambda x: x)
    async with AsyncTritonRerankFunction(urls, batch_size=4, timeout_s=30) as rf:
        np.testing.assert_allclose(await rf.score(QUERY, DOCUMENTS), expected, atol=1e-5)
        await asyncio.to_thread(replicas[0].stop)
        for _ in range(5):
            np.testing.assert_allclose(await rf.score(QUERY, DOCUMENTS), expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_restart_mid_stream_costs_no_request(tiny_repository, reference, protocol):
    """One server, restarted on the same ports while clients send: requests that find it down
    are tried again with backoff (retry_s) and all succeed."""
    settings = free_port_settings()
    server = EmbeddedTritonServer(tiny_repository, settings).start()
    url = server.grpc_url if protocol == "grpc" else server.http_url
    expected = reference[0].predict([(QUERY, d) for d in DOCUMENTS], activation_fn=lambda x: x)
    first_requests = threading.Barrier(CLIENTS + 1)
    restarted = threading.Event()

    client = functools.partial(keep_sending, url, {"retry_s": 20}, first_requests, restarted)

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client, i) for i in range(CLIENTS)]
            first_requests.wait()
            server.stop(grace_s=5)
            down_at = time.monotonic()
            server = EmbeddedTritonServer(tiny_repository, settings).start()
            downtime = time.monotonic() - down_at
            restarted.set()
            results = [future.result() for future in futures]
    finally:
        server.stop()
    errors = [err for _, errs in results for err in errs]
    assert errors == []
    scores = [s for done, _ in results for s in done]
    assert len(scores) >= CLIENTS * (STOP_AFTER + AFTER_STOPPED)
    for got in scores:
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert downtime > 1  # the server really was away for a while
