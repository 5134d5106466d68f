"""Shared fixtures: tiny models built on the spot, exported once, served by one real Triton server.

Integration tests start the real server (the Triton 2.51 binary from nvidia-pytriton) once per
session on free ports; nothing here needs network access or a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import build_tiny_bert_cross_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# A real cross-encoder kept beside the project on the build machines (see its README); optional.
SHARED_MODEL = ROOT.parent / "shared" / "models" / "minilm-l6-scifact-ce"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bert_cross_encoder(tmp_path_factory.mktemp("tiny-bert-ce"))


@pytest.fixture(scope="session")
def tiny_repository(tiny_model, tmp_path_factory) -> Path:
    from triton_rerank.export import export_cross_encoder

    repository = tmp_path_factory.mktemp("repo-onnx") / "model_repository"
    export_cross_encoder(str(tiny_model), repository)
    return repository


@pytest.fixture(scope="session")
def triton_server(tiny_repository):
    from triton_rerank.server import EmbeddedTritonServer, free_port_settings

    with EmbeddedTritonServer(tiny_repository, free_port_settings()) as server:
        yield server


@pytest.fixture(scope="session")
def reference(tiny_model):
    """The in-process references: sentence-transformers' CrossEncoder and pymilvus' reranker."""
    from milvus_model.reranker import CrossEncoderRerankFunction

    pymilvus_rf = CrossEncoderRerankFunction(str(tiny_model), device="cpu")
    return pymilvus_rf.model, pymilvus_rf


@pytest.fixture(params=["http", "grpc"])
def url(request, triton_server) -> str:
    return triton_server.http_url if request.param == "http" else triton_server.grpc_url
