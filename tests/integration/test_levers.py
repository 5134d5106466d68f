"""Speed levers that must not change a single score: the response cache, and the runner's
length-sorted slices (on or off)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import tritonclient.http as httpclient

from triton_rerank import TritonRerankFunction
from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

QUERY = "what is the capital of france"
# Mixed lengths in mixed order: grouping and slicing reorder rows, the scores must not move.
DOCUMENTS = ["berlin " * 40, "paris", "", "paris is the capital of france " * 3, "café 🚀", "lazy dog " * 12]


@pytest.fixture(scope="module")
def cached_server(tiny_repository, tmp_path_factory):
    """The tiny reranker with the response cache on and the runner's slicing off."""
    repository = tmp_path_factory.mktemp("repo-levers") / "model_repository"
    for name in layout.MODEL_NAMES:
        shutil.copytree(tiny_repository / name, repository / name)
    ensemble = repo.load_config(repository / layout.RERANKER / "config.pbtxt")
    ensemble.response_cache.enable = True
    (repository / layout.RERANKER / "config.pbtxt").write_text(repo.to_pbtxt(ensemble))
    model = repo.load_config(repository / layout.CROSS_ENCODER / "config.pbtxt")
    model.parameters["runner_slice_rows"].string_value = "0"
    (repository / layout.CROSS_ENCODER / "config.pbtxt").write_text(repo.to_pbtxt(model))
    with EmbeddedTritonServer(repository, free_port_settings(response_cache_bytes=16 * 2**20)) as server:
        yield server


def cache_hits(server) -> int:
    client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
    try:
        stats = client.get_inference_statistics(layout.RERANKER)["model_stats"][0]["inference_stats"]
    finally:
        client.close()
    return stats.get("cache_hit", {}).get("count", 0)


def expected_scores(reference, documents):
    cross_encoder, _ = reference
    return cross_encoder.predict([(QUERY, d) for d in documents], activation_fn=torch.nn.Identity())


@pytest.mark.integration
def test_whole_batches_in_arrival_order_score_as_the_reference(cached_server, reference):
    with TritonRerankFunction(cached_server.grpc_url, batch_size=4) as rf:
        np.testing.assert_allclose(rf.score(QUERY, DOCUMENTS), expected_scores(reference, DOCUMENTS), atol=1e-4)


@pytest.mark.integration
def test_a_repeated_request_is_answered_from_the_response_cache(cached_server, reference):
    documents = [*DOCUMENTS, "a document only this test sends"]
    with TritonRerankFunction(cached_server.http_url) as rf:
        first = rf.score(QUERY, documents)
        hits = cache_hits(cached_server)
        again = rf.score(QUERY, documents)
        assert cache_hits(cached_server) == hits + 1
        other = rf.score(QUERY, documents[:-1])  # different documents: a miss, not a stale answer
    np.testing.assert_array_equal(again, first)
    np.testing.assert_allclose(first, expected_scores(reference, documents), atol=1e-4)
    np.testing.assert_allclose(other, first[:-1], atol=1e-4)
