"""The rerank API in a process of its own, started as a user starts it (``triton-rerank api``): for
the quick start, the benchmark, the load test and the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


class ApiProcess:
    """``triton-rerank api`` as a user starts it, in its own process group on a free loopback port:
    ``url`` once started, ``pid`` (the group's leader, for memory readings), ``output`` (what it printed)."""

    def __init__(self, triton_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.command = [sys.executable, "-m", "triton_rerank.cli", "api", "--triton-url", triton_url, *args]
        self.env = {**os.environ, **(env or {})}
        self.output: list[str] = []
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout_s: float = 60.0) -> ApiProcess:
        with socket.socket() as probe:  # a port free now (the OS picks it)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [*self.command, "--port", str(port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=lambda: self.output.extend(self.process.stdout), daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                urllib.request.urlopen(f"{self.url}/metrics", timeout=1)
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the rerank API did not start:\n" + "".join(self.output))

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ApiProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
