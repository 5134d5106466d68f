"""The command-line entry points, run as users run them: serve, export, quick start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triton_rerank import TritonRerankFunction
from triton_rerank.server import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / name), *args]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the server and its backend stubs)."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    found = [int(c) for c in children]
    return found + [g for c in found for g in descendants(c)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_one_ready_line_serves_and_stops_cleanly(tiny_repository, signum):
    http, grpc, metrics = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        script(
            "serve.py",
            "--repository",
            str(tiny_repository),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Triton ready: models cross_encoder, reranker, tokenizer"), line + process.stderr.read()
        assert f"127.0.0.1:{http}" in line and f"127.0.0.1:{grpc}" in line
        children = descendants(process.pid)
        assert children  # tritonserver and its stubs
        with TritonRerankFunction(f"grpc://127.0.0.1:{grpc}") as rf:
            assert len(rf(query="paris", documents=["paris", "berlin", "water"], top_k=2)) == 2
        process.send_signal(signum)
        assert process.wait(timeout=60) == 0
        assert "Triton stopped" in process.stdout.read()
        time.sleep(0.5)
        assert [pid for pid in children if os.path.exists(f"/proc/{pid}") and not _zombie(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_serve_fails_with_the_reason_when_the_repository_is_missing(tmp_path):
    result = subprocess.run(
        script("serve.py", "--repository", str(tmp_path / "nothing")), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "does not exist; run scripts/export_model.py first" in result.stderr


def test_serve_names_the_model_that_failed_to_load(tiny_repository, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(tiny_repository), str(broken)], check=True)
    (broken / "cross_encoder" / "1" / "model.onnx").write_bytes(b"not an onnx file")
    result = subprocess.run(
        script(
            "serve.py",
            "--repository",
            str(broken),
            "--http-port",
            str(free_port()),
            "--grpc-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "failed to load 'cross_encoder'" in result.stderr


def test_export_script_reports_the_check(tiny_model, tmp_path):
    result = subprocess.run(
        script(
            "export_model.py", "--model", str(tiny_model), "--repository", str(tmp_path / "repo"), "--device", "cpu"
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "max |score - PyTorch| =" in result.stdout
    assert "KIND_CPU" in (tmp_path / "repo" / "cross_encoder" / "config.pbtxt").read_text()


def test_export_script_fails_cleanly_for_a_missing_model(tmp_path):
    result = subprocess.run(
        script("export_model.py", "--model", str(tmp_path / "missing"), "--repository", str(tmp_path / "repo")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "export failed:" in result.stderr and "missing" in result.stderr


def test_quick_start_exports_serves_and_reranks(tiny_model, tmp_path):
    result = subprocess.run(
        script(
            "reranking.py", "--reranker-model", str(tiny_model), "--repository", str(tmp_path / "repo"), "--top-k", "3"
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "reranked by Triton (top 3" in result.stdout
    assert "max |score difference| to Triton =" in result.stdout
    ranked = result.stdout.split("reranked by Triton")[1].splitlines()[1:4]
    assert [line.strip()[:2] for line in ranked] == ["1.", "2.", "3."]
