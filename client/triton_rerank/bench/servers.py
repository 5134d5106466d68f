"""The served variants a benchmark compares: exports of one model, each on its own embedded
server, copies of a repository with one config lever changed, and the rerank API in front of one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Served:
    name: str
    repository: Path
    server: object = None  # EmbeddedTritonServer

    def start(self, **server_settings) -> Served:
        from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

        self.server = EmbeddedTritonServer(self.repository, free_port_settings(**server_settings)).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def url(self, protocol: str) -> str:
        return self.server.grpc_url if protocol == "grpc" else self.server.http_url


def export_repositories(model: Path, work: Path) -> dict[str, Path]:
    """fp32 and int8 exports of ``model`` (kept in ``work`` and reused when the model is the same)."""
    from triton_rerank.serving.export import ensure_exported

    repositories = {}
    for precision in ("fp32", "int8"):
        repository = work / f"repository-{precision}"
        report = ensure_exported(repository, str(model), "cross-encoder", precision=precision)
        if report is not None:
            reduced = report.reduced_precision
            extra = f"; vs fp32 rank correlation {reduced.rank_correlation:.4f}" if reduced else ""
            print(f"exported {precision}: |ONNX fp32 - PyTorch| {report.max_abs_diff:.1e}{extra}", flush=True)
        repositories[precision] = repository
    return repositories


def lever_repository(source: Path, target: Path, edit: Callable) -> Path:
    """A copy of ``source`` whose tokenizer, cross_encoder and reranker configs ``edit(name, config)`` changes."""
    from triton_rerank.serving.repository import load_config, to_pbtxt

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for name in ("tokenizer", "cross_encoder", "reranker"):
        path = target / name / "config.pbtxt"
        config = load_config(path)
        edit(name, config)
        path.write_text(to_pbtxt(config))
    return target


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
        from triton_rerank.serving.server import free_ports

        (port,) = free_ports(1)
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
