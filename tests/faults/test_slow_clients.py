"""The API under slow and oversized clients: a 100 MB body is refused with 413 before it is read whole
(the API's memory stays flat), a client that sends one byte a second is cut off at the body timeout
with 408, and 1,000 idle connections do not stop it from serving others (issue 39)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.api_process import ApiProcess

pytestmark = pytest.mark.integration
BODY = {"model": "reranker", "query": "what is the capital of france?", "documents": ["paris", "a fox"]}


@pytest.fixture(scope="module")
def api(triton_server):
    with ApiProcess(triton_server.grpc_url, "--body-timeout-s", "2") as process:
        yield process


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def headers(length: int) -> bytes:
    return (f"POST /v1/rerank HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()  # fmt: skip


def status_of(connection: socket.socket) -> int:
    return int(connection.recv(65536).split(b" ", 2)[1])


def rss_mb(pid: int) -> float:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def served(api) -> bool:
    return httpx.post(f"{api.url}/v1/rerank", json=BODY, timeout=30).status_code == 200


def test_a_100_mb_body_is_refused_before_it_is_read_whole(api):
    before = rss_mb(api.pid)
    with connect(api.url) as connection:
        connection.sendall(headers(100 * 2**20) + b"x" * 2**20)  # 1 MB of the 100 announced, then wait
        assert status_of(connection) == 413
    assert rss_mb(api.pid) - before < 20  # nothing of the size announced was held
    assert served(api)


def test_a_client_sending_a_byte_a_second_is_cut_off_at_the_body_timeout(api):
    with connect(api.url) as connection:
        connection.sendall(headers(1000) + b"{")
        started = time.monotonic()
        connection.settimeout(1.0)
        answer = b""
        while not answer and time.monotonic() - started < 15:
            try:
                answer = connection.recv(65536)
            except TimeoutError:
                connection.sendall(b" ")  # a byte a second: never the 1,000 announced in time
                assert served(api)  # others are served meanwhile
        waited = time.monotonic() - started
        while b"\r\n\r\n" in answer and not answer.split(b"\r\n\r\n", 1)[1]:  # the body may come apart
            answer += connection.recv(65536)
    assert answer.split(b" ", 2)[1] == b"408", answer[:200]
    assert b"not sent within 2 s" in answer
    assert waited < 6, f"cut off after {waited:.1f} s"


def test_a_thousand_idle_connections_do_not_stop_it_serving_others(api):
    idle = [connect(api.url) for _ in range(1000)]
    try:
        time.sleep(1)
        started = time.monotonic()
        assert served(api)
        assert time.monotonic() - started < 5
    finally:
        for connection in idle:
            connection.close()
