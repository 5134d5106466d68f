"""Milvus retrieval + Triton reranking: ingest, search, filters, async, and a real Milvus server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from triton_rerank import (
    AsyncTritonEmbedFunction,
    AsyncTritonRerankFunction,
    RerankInputError,
    TritonEmbedFunction,
    TritonRerankFunction,
)
from triton_rerank.ingest import ingest, read_documents
from triton_rerank.pipeline import AsyncRerankPipeline, RerankPipeline
from triton_rerank.store import Document, MilvusStore, StoreError

pytestmark = pytest.mark.integration
TOLERANCE = 1e-4
QUERY = "How do vaccines train the immune system?"


@pytest.fixture(scope="module")
def clients(triton_server):
    with TritonEmbedFunction(triton_server.grpc_url) as embed, TritonRerankFunction(triton_server.grpc_url) as rerank:
        yield embed, rerank


@pytest.fixture(scope="module")
def store(tmp_path_factory, clients, sample_corpus):
    embed, _ = clients
    with MilvusStore(str(tmp_path_factory.mktemp("milvus") / "docs.db"), collection="sample", index="FLAT") as store:
        report = ingest(read_documents(sample_corpus), store, embed, batch_size=8)
        assert (report.read, report.written, report.skipped) == (32, 32, 0)
        yield store


@pytest.fixture(scope="module")
def pipeline(store, clients):
    return RerankPipeline(store, *clients, first_stage="dense")  # the tests below check the cosine order


def test_a_rerun_of_ingest_adds_nothing_and_refresh_rewrites(store, clients, sample_corpus):
    embed, _ = clients
    again = ingest(read_documents(sample_corpus), store, embed, batch_size=8)
    assert (again.read, again.written, again.skipped) == (32, 0, 32)
    refreshed = ingest(read_documents(sample_corpus), store, embed, batch_size=100, refresh=True)
    assert (refreshed.written, refreshed.skipped) == (32, 0)
    assert store.count() == 32 and sorted(store.ids()) == sorted(d.id for d in read_documents(sample_corpus))


def test_first_stage_is_the_exact_cosine_order(pipeline, store, sample_corpus, embedder_model):
    from sentence_transformers import SentenceTransformer

    documents = list(read_documents(sample_corpus))
    model = SentenceTransformer(embedder_model, device="cpu")
    similarity = model.encode([d.text for d in documents], normalize_embeddings=True) @ model.encode(
        QUERY, normalize_embeddings=True
    )
    result = pipeline.search(QUERY, retrieve_k=10, top_k=10)
    assert [c.id for c in result.candidates] == [documents[i].id for i in np.argsort(-similarity)[:10]]
    np.testing.assert_allclose([c.score for c in result.candidates], np.sort(similarity)[::-1][:10], atol=1e-4)


def test_hits_are_the_candidates_reranked_by_the_cross_encoder(pipeline, reference):
    cross_encoder, _ = reference
    result = pipeline.search(QUERY, retrieve_k=12, top_k=5)
    texts = [c.text for c in result.candidates]
    expected = cross_encoder.predict([(QUERY, t) for t in texts], activation_fn=torch.nn.Identity())
    order = sorted(range(len(texts)), key=lambda i: expected[i], reverse=True)[:5]
    assert [h.id for h in result.hits] == [result.candidates[i].id for i in order]
    assert [h.first_stage_rank for h in result.hits] == [i + 1 for i in order]
    np.testing.assert_allclose([h.rerank_score for h in result.hits], expected[order], atol=TOLERANCE)
    assert set(result.timings_ms) == {"embed", "retrieve", "rerank"}


def test_a_blend_ranks_by_both_stages_z_scored_sync_and_async(pipeline, store, clients, triton_server, reference):
    cross_encoder, _ = reference
    blended = RerankPipeline(store, *clients, blend=0.4, first_stage="dense").search(QUERY, retrieve_k=12, top_k=12)
    candidates = blended.candidates
    logits = cross_encoder.predict([(QUERY, c.text) for c in candidates], activation_fn=torch.nn.Identity())
    cosines = np.array([c.score for c in candidates])
    expected = 0.4 * (logits - logits.mean()) / logits.std() + 0.6 * (cosines - cosines.mean()) / cosines.std()
    order = np.argsort(-expected, kind="stable")
    assert [h.id for h in blended.hits] == [candidates[i].id for i in order]
    np.testing.assert_allclose([h.blended_score for h in blended.hits], expected[order], atol=1e-4)
    np.testing.assert_allclose([h.rerank_score for h in blended.hits], logits[order], atol=TOLERANCE)
    assert [h.id for h in blended.hits] != [h.id for h in pipeline.search(QUERY, retrieve_k=12, top_k=12).hits]
    assert all(h.blended_score is None for h in pipeline.search(QUERY, retrieve_k=12, top_k=3).hits)


async def test_the_async_pipeline_blends_as_the_sync_one(store, clients, triton_server):
    async with (
        AsyncTritonEmbedFunction(triton_server.http_url) as embed,
        AsyncTritonRerankFunction(triton_server.http_url) as rerank,
    ):
        result = await AsyncRerankPipeline(store, embed, rerank, blend=0.4).search(QUERY, retrieve_k=12, top_k=5)
    expected = RerankPipeline(store, *clients, blend=0.4).search(QUERY, retrieve_k=12, top_k=5)  # both hybrid
    assert [h.id for h in result.hits] == [h.id for h in expected.hits]


def test_hybrid_fuses_bm25_and_dense_candidates_each_with_its_legs(store, clients):
    """A collection that ingest wrote has BM25: the default first stage is hybrid, its candidates
    the fusion of the two legs' lists, each carrying where each leg put it; then reranked."""
    hybrid = RerankPipeline(store, *clients)
    assert hybrid.first_stage.kind == "hybrid" and hybrid.first_stage.fusion == "relative"
    query = "sea level rise"
    legs = {
        kind: [c.id for c in RerankPipeline(store, *clients, first_stage=kind).search(query, top_k=1).candidates]
        for kind in ("dense", "bm25")
    }
    result = hybrid.search(query, retrieve_k=100, top_k=5)
    assert {c.id for c in result.candidates} == set(legs["dense"]) | set(legs["bm25"])
    for candidate in result.candidates:
        for kind, ids in legs.items():
            assert (
                candidate.legs[kind].rank == ids.index(candidate.id) + 1
                if candidate.id in ids
                else kind not in candidate.legs
            )
    assert len(legs["bm25"]) < len(legs["dense"])  # BM25 finds only documents with a query word
    assert [h.rerank_score for h in result.hits] == sorted((h.rerank_score for h in result.hits), reverse=True)
    assert all(h.legs == result.candidates[h.first_stage_rank - 1].legs for h in result.hits)


@pytest.mark.parametrize("weight", [0, 1.5, "0.5", True])
def test_a_blend_weight_outside_0_to_1_is_refused(store, clients, weight):
    with pytest.raises(RerankInputError, match=r"blend must be a weight in \(0, 1\]"):
        RerankPipeline(store, *clients, blend=weight)


def test_filters_narrow_the_candidates_and_bad_filters_are_named(pipeline):
    result = pipeline.search(QUERY, retrieve_k=10, top_k=3, filter='metadata["topic"] == "cooking"')
    assert {c.metadata["topic"] for c in result.candidates} == {"cooking"} and len(result.candidates) == 3
    with pytest.raises(StoreError, match="filter"):
        pipeline.search(QUERY, filter='metadata["topic" == ')


@pytest.mark.parametrize(
    "vectors, shape",
    [
        (np.full((1, 384), np.nan, dtype=np.float32), r"\(1, 384\)"),  # a NaN in a vector
        (np.ones((1, 383), dtype=np.float32), r"\(1, 383\)"),  # a vector of the wrong dimension
        (np.ones(384, dtype=np.float32), r"\(384,\)"),  # one vector, not a batch of them
    ],
)
def test_bad_vectors_are_refused_with_the_shape_received(store, vectors, shape):
    with pytest.raises(RerankInputError, match=rf"vectors must be finite, of shape \[n, 384\]; got {shape}"):
        store.search(vectors, limit=3)
    documents = [Document("x", "text")] * len(vectors)  # as many documents as vectors (a 1-D array: 384)
    with pytest.raises(RerankInputError, match=rf"vectors must be finite, of shape \[n, 384\]; got {shape}"):
        store.upsert(documents, vectors)
    assert store.count() > 0  # nothing was written, the store still answers


def test_milvus_credentials_never_show_in_errors():
    from triton_rerank.serving.server import free_port

    with pytest.raises(StoreError, match=r"cannot open Milvus at http://\*\*\*@127.0.0.1:") as caught:
        MilvusStore(f"http://root:uri-password-1@127.0.0.1:{free_port()}", token="token-secret-2")
    assert "uri-password-1" not in str(caught.value) and "token-secret-2" not in str(caught.value)


def test_milvus_unavailable_is_a_clear_error_at_once():
    from triton_rerank.serving.server import free_port

    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open Milvus at http://127.0.0.1:.*server unavailable"):
        MilvusStore(f"http://127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"retrieve_k": 0}, "retrieve_k must be a positive int"),
        ({"top_k": 11, "retrieve_k": 10}, r"top_k \(11\) cannot exceed retrieve_k \(10\)"),
        ({"top_k": True}, "top_k must be a positive int"),
    ],
)
def test_bad_search_arguments_are_refused(pipeline, kwargs, message):
    with pytest.raises(RerankInputError, match=message):
        pipeline.search(QUERY, **kwargs)


async def test_a_cascade_reranks_the_best_of_the_first_model_with_the_second(
    store, clients, two_rerankers_server, second_model
):
    """MiniLM-then-LLM in miniature: the first reranker reads all 16 candidates, the second (another
    model, selected by name on the same server) only the first's best 5; hits carry its scores."""
    from sentence_transformers import CrossEncoder

    embed, _ = clients
    url = two_rerankers_server.grpc_url
    with TritonRerankFunction(url) as first, TritonRerankFunction(url, model_name="second") as second:
        cascade = RerankPipeline(store, embed, first, cascade=[(second, 5)]).search(QUERY, retrieve_k=16, top_k=3)
        best_five = RerankPipeline(store, embed, first).search(QUERY, retrieve_k=16, top_k=5).hits
        with pytest.raises(RerankInputError, match=r"top_k \(6\) cannot exceed the 5 candidates the last cascade"):
            RerankPipeline(store, embed, first, cascade=[(second, 5)]).search(QUERY, top_k=6)
        for bad in ([(second, 0)], [("second", 5)], [second]):
            with pytest.raises(RerankInputError, match="cascade stage"):
                RerankPipeline(store, embed, first, cascade=bad)
    expected = CrossEncoder(str(second_model)).predict(
        [(QUERY, hit.text) for hit in best_five], activation_fn=torch.nn.Identity()
    )
    order = np.argsort(-expected, kind="stable")[:3]
    assert [h.id for h in cascade.hits] == [best_five[i].id for i in order]
    assert [h.first_stage_rank for h in cascade.hits] == [best_five[i].first_stage_rank for i in order]
    np.testing.assert_allclose([h.rerank_score for h in cascade.hits], expected[order], atol=TOLERANCE)
    assert len(cascade.candidates) == 16  # the first stage's list stays whole
    async with AsyncTritonRerankFunction(url) as first, AsyncTritonRerankFunction(url, model_name="second") as second:
        async with AsyncTritonEmbedFunction(url) as async_embed:
            pipeline = AsyncRerankPipeline(store, async_embed, first, cascade=[(second, 5)])
            (twin,) = await pipeline.search_batch([QUERY], retrieve_k=16, top_k=3)
    assert [h.id for h in twin.hits] == [h.id for h in cascade.hits]


def test_a_batch_of_queries_equals_single_searches(pipeline):
    queries = [QUERY, "What makes the sea level go up?", "python threads"]
    batch = pipeline.search_batch(queries, retrieve_k=8, top_k=4)
    for query, result in zip(queries, batch, strict=True):
        single = pipeline.search(query, retrieve_k=8, top_k=4)
        assert [h.id for h in result.hits] == [h.id for h in single.hits]


async def test_async_pipeline_equals_the_sync_one(pipeline, store, triton_server):
    async with (
        AsyncTritonEmbedFunction(triton_server.http_url) as embed,
        AsyncTritonRerankFunction(triton_server.http_url) as rerank,
    ):
        pipeline_async = AsyncRerankPipeline(store, embed, rerank, first_stage="dense")
        results = await pipeline_async.search_batch([QUERY, "bread"], top_k=3)
    for result in results:
        expected = pipeline.search(result.query, top_k=3)
        assert [h.id for h in result.hits] == [h.id for h in expected.hits]


def test_an_interrupted_ingest_resumes_with_every_document_once(triton_server, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as out:
        for i in range(300):
            out.write(json.dumps({"_id": f"doc-{i:03d}", "text": f"document {i} about topic {i % 7}"}) + "\n")
    database = tmp_path / "resume.db"
    command = [
        sys.executable,
        "-m",
        "triton_rerank.cli",
        "ingest",
        str(corpus),
        "--milvus-uri",
        str(database),
        "--triton-url",
        triton_server.grpc_url,
        "--batch-size",
        "10",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:  # let a few batches land, then kill it without warning
        if line.startswith("batch 5:"):
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    time.sleep(1)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "read 300" in rerun.stdout and "holds 300 documents" in rerun.stdout
    with MilvusStore(str(database)) as store:
        ids = store.ids()
    assert len(ids) == 300 and sorted(ids) == [f"doc-{i:03d}" for i in range(300)]


@pytest.mark.xdist_group("milvus-server")  # one Milvus server, on its fixed ports
def test_the_pipeline_runs_against_a_real_milvus_server(milvus_server, clients, sample_corpus):
    embed, rerank = clients
    with pytest.raises(StoreError, match=r"BM25 needs Milvus 2\.5\+.*ingest --no-bm25"):  # v2.3.5 has no BM25
        MilvusStore(milvus_server, collection="pipeline_bm25", index="HNSW", dimension=384)  # made at once
    with MilvusStore(milvus_server, collection="pipeline_test", index="HNSW", bm25=False) as store:
        try:
            ingest(read_documents(sample_corpus), store, embed, batch_size=16)
            assert ingest(read_documents(sample_corpus), store, embed).written == 0
            result = RerankPipeline(store, embed, rerank).search(QUERY, retrieve_k=10, top_k=3)
            assert len(result.hits) == 3 and result.candidates[0].id.startswith("vaccines")
        finally:
            store.drop()


def test_the_blocking_pipeline_takes_components_of_another_kind_too(tmp_path):
    """An in-process embedder (``encode``) or reranker (``score_details``) still works beside the
    shared loop: it is called in a worker thread."""
    from triton_rerank.client import Scores

    class Embedder:
        def encode(self, texts):
            return np.array([[1.0, 0.0] if "a" in text else [0.0, 1.0] for text in texts], np.float32)

    class ByLength:
        def score_details(self, query, documents, **options):
            return Scores(np.array([len(d) for d in documents], np.float32))

    texts = {"1": "a b", "2": "a bbbbb", "3": "c"}
    with MilvusStore(str(tmp_path / "other.db"), collection="other", dimension=2) as store:
        store.upsert([Document(i, t) for i, t in texts.items()], Embedder().encode(list(texts.values())))
        result = RerankPipeline(store, Embedder(), ByLength()).search("a", retrieve_k=3, top_k=2)
    assert [hit.id for hit in result.hits] == ["2", "1"]
    assert [hit.rerank_score for hit in result.hits] == [7.0, 3.0]
