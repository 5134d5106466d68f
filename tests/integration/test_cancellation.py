"""Work ends with its caller, against the real Triton: a split of a call that fails cancels the
others (those not yet sent are never sent); a caller of the rerank API that goes away cancels its
request's Triton calls; a forked child makes connections of its own. What Triton ran is read from
its own statistics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import numpy as np
import orjson
import pytest

from triton_rerank import AsyncTritonRerankFunction, RerankInputError, TritonRerankFunction
from triton_rerank.serving.statistics import triton_stats

pytestmark = pytest.mark.integration

# The tiny model reads 48 tokens: a document of 60 words is refused under long_documents="error",
# and sorts first (fewest bytes) before 300-letter words that are one token each.
REFUSED, FINE = "a " * 60, "x" * 300


def inferences(server) -> int:
    """Rows the cross-encoder has run on ``server`` since it started."""
    return triton_stats(server.http_url)["cross_encoder"]["inferences"]


async def test_a_split_that_fails_cancels_its_siblings_and_those_not_sent_are_never_sent(triton_server):
    documents = [REFUSED] + [FINE] * 99  # 100 requests of one document, two on the wire at a time
    before = inferences(triton_server)
    async with AsyncTritonRerankFunction(triton_server.grpc_url, batch_size=1, max_in_flight=2) as rf:
        with pytest.raises(RerankInputError, match="more than this model's 48"):
            await rf.score("q", documents, long_documents="error")
        await asyncio.sleep(1.0)  # time for any split still running to reach the model
    assert inferences(triton_server) - before <= 2  # at most the one sent beside the failure


def test_a_caller_that_goes_away_stops_its_request_on_triton(triton_server):
    """1,000 documents, sent to Triton one per request by the API: once the model has started on
    them, the caller closes its connection, and the rest is never scored."""
    from triton_rerank.api.app import serving
    from triton_rerank.api.settings import ApiSettings
    from triton_rerank.serving.server import free_port

    body = orjson.dumps({"model": "reranker", "query": "q", "documents": [f"document {n}" for n in range(1000)]})
    request = (
        f"POST /v2/rerank HTTP/1.1\r\nhost: api\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    settings = ApiSettings(triton_url=triton_server.grpc_url, port=free_port(), batch_size=1)
    with serving(settings) as url:
        before = inferences(triton_server)
        caller = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        caller.sendall(request)
        deadline = time.monotonic() + 30
        while inferences(triton_server) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        started = inferences(triton_server) - before
        caller.close()  # the caller goes away
        time.sleep(2.0)
        settled = inferences(triton_server) - before
        time.sleep(1.0)
        assert inferences(triton_server) - before == settled  # nothing more runs for it
    assert 0 < started and settled < 500, (started, settled)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_a_forked_child_makes_its_own_connections_and_the_parent_goes_on(triton_server, scheme):
    """Over HTTP the child scores as the parent did, on connections of its own; gRPC cannot run in
    a child forked after it ran (grpc's own limit: its channels hang), which the child is told at
    once. Either way the parent's next call works: the child touched nothing of the parent's (its
    epoll instance is shared across fork)."""
    url = triton_server.grpc_url if scheme == "grpc" else triton_server.http_url
    pair = ("capital of france", ["paris is the capital", "a river"])
    with TritonRerankFunction(url, timeout_s=20) as rf:
        parent = rf.score(*pair)
        pid = os.fork()
        if pid == 0:  # the child
            try:
                os._exit(0 if np.array_equal(rf.score(*pair), parent) else 3)
            except RerankInputError as err:
                os._exit(5 if "'spawn'" in str(err) else 4)
            except BaseException:  # noqa: BLE001 - the exit status tells the parent
                os._exit(4)
        status = _wait(pid, timeout_s=60)
        assert status == (0 if scheme == "http" else 5), f"child exit {status} (3: other scores, 4: error, None: hung)"
        assert np.array_equal(rf.score(*pair), parent)


def _wait(pid: int, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
