"""Triton killed (SIGKILL) under the API's load at 4 clients, then started again on the same ports:
while it is down every request ends within its timeout with 503 and Retry-After (none hangs, no 500),
/health stays 200 and /ready turns 503; after its return requests succeed again within 10 s, with no
API restart; the Python client says ``ServerUnavailableError`` meanwhile (issue 39)."""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.api_process import ApiProcess
from triton_rerank import TritonRerankFunction
from triton_rerank.errors import ServerUnavailableError
from triton_rerank.serving.server import EmbeddedTritonServer, ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("triton-restart")]
BODY = {"model": "reranker", "query": "what is the capital of france?", "documents": ["paris", "berlin", "a fox"]}
CLIENT_TIMEOUT_S = 30  # a request that takes longer hung: the API's own Triton timeout is 5 s here


def steady_ports(count: int = 3) -> list[int]:
    """Free ports below the kernel's ephemeral range: Triton is started again on its ports after being
    killed, and in its downtime another worker's ``free_port`` (which draws from that range) could take
    one (seen: the next API test talked HTTP to a Triton's gRPC port)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(10_000, low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def tritonserver_pid(http_port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if command[0].endswith(b"tritonserver") and f"--http-port={http_port}".encode() in command:
                return int(entry.name)
    raise LookupError(f"no tritonserver on port {http_port}")


class Load:
    """4 clients posting to the API until stopped; each answer's time, status and Retry-After."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url, self.answers, self._stop = url, [], threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = http.post(f"{self.url}/v2/rerank", json=BODY)
                    status, retry = response.status_code, response.headers.get("retry-after")
                except httpx.TimeoutException:
                    status, retry = "hung", None
                self.answers.append((sent, time.monotonic() - sent, status, retry))
                if status != 200:
                    time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT_S + 5)


def test_triton_killed_under_load_and_started_again(tiny_repository):
    http, grpc, metrics = steady_ports()
    settings = ServerSettings(http_port=http, grpc_port=grpc, metrics_port=metrics)
    server = EmbeddedTritonServer(tiny_repository, settings).start()
    try:
        with ApiProcess(server.grpc_url, "--timeout-s", "5") as api, Load(api.url) as load:
            time.sleep(3)
            assert {a[2] for a in load.answers} == {200}, "not serving before the fault"
            killed = time.monotonic()
            os.kill(tritonserver_pid(settings.http_port), signal.SIGKILL)
            time.sleep(4)
            assert httpx.get(f"{api.url}/health").status_code == 200  # alive: restarting it would not help
            assert httpx.get(f"{api.url}/ready").status_code == 503
            with TritonRerankFunction(server.grpc_url, timeout_s=5) as client:
                with pytest.raises(ServerUnavailableError):
                    client.score(BODY["query"], BODY["documents"])
            server.stop(grace_s=5)  # reaps what is left of it
            server = EmbeddedTritonServer(tiny_repository, settings).start()
            back = time.monotonic()
            while time.monotonic() - back < 20 and not any(a[0] > back and a[2] == 200 for a in load.answers):
                time.sleep(0.1)
            ready_by = time.monotonic() + 10  # /ready looks at Triton every 5 s at most
            while httpx.get(f"{api.url}/ready").status_code != 200:
                assert time.monotonic() < ready_by, "the API did not turn ready again"
                time.sleep(0.5)
    finally:
        server.stop(grace_s=10)
    answers = load.answers
    statuses = {a[2] for a in answers}
    assert "hung" not in statuses and max(a[1] for a in answers) < CLIENT_TIMEOUT_S, "a request hung"
    assert statuses <= {200, 503}, statuses
    refused = [a for a in answers if a[2] == 503]
    assert refused and all(a[3] == "5" for a in refused), "every 503 says when to try again"
    first_success = min(a[0] + a[1] for a in answers if a[0] > back and a[2] == 200)
    recovery = first_success - back
    assert recovery < 10, f"requests failed for {recovery:.1f} s after Triton was back"
    after = [a for a in answers if a[0] > first_success]
    assert after and all(a[2] == 200 for a in after)
    print(
        f"\nTriton killed under 4 clients: {len(answers)} requests, {len(refused)} answered 503 (Retry-After 5), "
        f"0 hung, 0 others; down {back - killed:.1f} s; first success {recovery:.2f} s after Triton was ready"
    )
