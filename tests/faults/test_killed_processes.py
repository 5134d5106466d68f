"""Processes killed as the OOM killer or a supervisor kills them (SIGKILL, no chance to clean up),
and what is left behind (issue 39)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from triton_rerank.serving.server import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    listed = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in listed]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/live", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("command", ["scripts/serve.py", "triton-rerank serve"])
def test_a_serve_killed_by_sigkill_takes_its_triton_with_it(tiny_repository, command):
    """Seen before the fix: both orphans stayed up, holding their ports, until killed by hand."""
    http = free_port()
    ports = ["--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    launcher = (
        [sys.executable, str(ROOT / command)]
        if command.endswith(".py")
        else [sys.executable, "-m", "triton_rerank.cli", "serve"]
    )
    process = subprocess.Popen(
        [*launcher, "--repository", str(tiny_repository), *ports], stdout=subprocess.PIPE, text=True
    )
    triton = None
    try:
        deadline = time.monotonic() + 120
        while not _answers(f"http://127.0.0.1:{http}"):
            assert time.monotonic() < deadline and process.poll() is None, "serve did not start"
            time.sleep(0.2)
        (triton,) = [
            pid for pid in _children(process.pid) if Path(f"/proc/{pid}/comm").read_text().strip() == "tritonserver"
        ]
        process.kill()  # SIGKILL: serve cleans nothing up
        process.wait(timeout=10)
        killed = time.monotonic()
        while _alive(triton) and time.monotonic() - killed < 60:
            time.sleep(0.2)
        gone_after = time.monotonic() - killed
        assert not _alive(triton), "tritonserver outlived the serve that started it"
        assert not _answers(f"http://127.0.0.1:{http}")  # its port is free again
        assert gone_after < 30, f"tritonserver took {gone_after:.0f} s to stop"
    finally:
        if triton is not None and _alive(triton):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(triton, signal.SIGKILL)  # its own session: its stubs go with it
        if process.poll() is None:
            process.kill()
