"""A real, trained cross-encoder (../shared/models, when present): served == in-process."""

from __future__ import annotations

import gzip
import itertools
import json

import numpy as np
import pytest
import torch

from conftest import SHARED_MODEL
from triton_rerank import AsyncTritonRerankFunction, TritonRerankFunction
from triton_rerank.serving.export import export_cross_encoder
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SHARED_MODEL / "config.json").exists(), reason=f"no real model at {SHARED_MODEL}"),
]
SCIFACT = SHARED_MODEL.parents[1] / "data" / "scifact" / "corpus.jsonl.gz"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("repo-real") / "model_repository"
    report = export_cross_encoder(str(SHARED_MODEL), repository)
    assert report.max_length == 256 and report.max_abs_diff <= TOLERANCE
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        yield server


@pytest.fixture(scope="module")
def pymilvus_reranker():
    from milvus_model.reranker import CrossEncoderRerankFunction

    return CrossEncoderRerankFunction(str(SHARED_MODEL), device="cpu")


def documents() -> list[str]:
    """Real abstracts (many longer than 256 tokens) when the SciFact corpus is there."""
    extra = ["", "   ", "Vaccines train the immune system 💉", "東京 café naïve"]
    if not SCIFACT.exists():
        return ["Vaccines expose the immune system to an antigen. " * 40, *extra]
    with gzip.open(SCIFACT, "rt") as lines:
        rows = [json.loads(line) for line in itertools.islice(lines, 60)]
    return [f"{row['title']} {row['text']}" for row in rows] + extra


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_real_model_results_equal_pymilvus_rerank_function(real_server, pymilvus_reranker, protocol):
    url = real_server.http_url if protocol == "http" else real_server.grpc_url
    query = "0-dimensional biomaterials show inductive properties."
    docs = documents()
    with TritonRerankFunction(url) as rf:
        served = rf(query=query, documents=docs, top_k=10)
        all_scores = rf.score(query, docs)
    expected = pymilvus_reranker(query=query, documents=docs, top_k=10)
    assert [r.index for r in served] == [r.index for r in expected]
    np.testing.assert_allclose([r.score for r in served], [r.score for r in expected], atol=TOLERANCE, rtol=0)
    reference = pymilvus_reranker.model.predict([(query, d) for d in docs], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(all_scores, reference, atol=TOLERANCE, rtol=0)


async def test_real_model_async_client_matches(real_server, pymilvus_reranker):
    query = "Vaccines train the immune system"
    docs = documents()
    async with AsyncTritonRerankFunction(real_server.grpc_url, batch_size=16) as rf:
        served = await rf(query=query, documents=docs, top_k=5)
    expected = pymilvus_reranker(query=query, documents=docs, top_k=5)
    assert [r.index for r in served] == [r.index for r in expected]
