"""``POST /v1/search`` against a real Triton and a real Milvus Lite collection: its hits equal
``RerankPipeline.search`` for every first stage, bad input is refused in the route's format before
anything reaches Triton, and without ``--milvus-uri`` the route says how to turn it on."""

from __future__ import annotations

import httpx
import pytest

from benchmarks.api_process import ApiProcess
from tests.triton_counts import settled_stats
from triton_rerank import TritonEmbedFunction, TritonRerankFunction
from triton_rerank.ingest import ingest, read_documents
from triton_rerank.pipeline import RerankPipeline
from triton_rerank.store import MilvusStore

pytestmark = pytest.mark.integration

QUERY = "How do vaccines train the immune system?"
FILTER = 'metadata["topic"] != "health"'
STAGES = [
    {"first_stage": "dense"},
    {"first_stage": "bm25"},
    {"first_stage": "hybrid"},
    {"first_stage": "hybrid", "fusion": "rrf"},
    {"first_stage": "hybrid", "fusion": "weighted", "weights": [0.6, 0.4]},
]


@pytest.fixture(scope="module")
def collection(tmp_path_factory, triton_server, sample_corpus):
    """A Milvus Lite file with the sample corpus (dense and BM25), and the pipeline's answers for
    each first stage, taken before the API opens the file (Milvus Lite is one process's)."""
    path = str(tmp_path_factory.mktemp("search") / "docs.db")
    expected = {}
    with (
        TritonEmbedFunction(triton_server.grpc_url) as embed,
        TritonRerankFunction(triton_server.grpc_url) as rerank,
        MilvusStore(path, collection="sample", index="FLAT") as store,
    ):
        ingest(read_documents(sample_corpus), store, embed, batch_size=16)
        for i, stage in enumerate(STAGES):
            keywords = {**stage, "weights": tuple(stage["weights"])} if "weights" in stage else stage
            pipeline = RerankPipeline(store, embed, rerank, **keywords)
            expected[i] = pipeline.search(QUERY, retrieve_k=12, top_k=5)
        expected["filtered"] = RerankPipeline(store, embed, rerank, first_stage="dense").search(
            QUERY, retrieve_k=8, top_k=8, filter=FILTER
        )
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)  # this process' Milvus Lite lets go of the file
    return path, expected


@pytest.fixture(scope="module")
def api(triton_server, collection):
    with ApiProcess(triton_server.grpc_url, "--milvus-uri", collection[0], "--collection", "sample") as process:
        yield process.url


def requests_of(server) -> int:
    """Every model's request count on Triton, once it stops moving."""
    return sum(model["requests"] for model in settled_stats(server.http_url).values())


@pytest.mark.parametrize("stage", range(len(STAGES)))
def test_its_hits_are_the_pipelines_for_every_first_stage(api, collection, stage):
    expected = collection[1][stage]
    response = httpx.post(f"{api}/v1/search", json={"query": QUERY, "retrieve_k": 12, "top_k": 5, **STAGES[stage]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [h["id"] for h in answer["hits"]] == [h.id for h in expected.hits]
    for got, hit in zip(answer["hits"], expected.hits, strict=True):
        assert got["rerank_score"] == pytest.approx(hit.rerank_score, abs=1e-6)
        assert got["first_stage_score"] == pytest.approx(hit.first_stage_score, abs=1e-6)
        assert (got["first_stage_rank"], got["text"], got["metadata"]) == (hit.first_stage_rank, hit.text, hit.metadata)
        assert {leg: where["rank"] for leg, where in got["legs"].items()} == {
            leg: where.rank for leg, where in hit.legs.items()
        }
    assert [c["id"] for c in answer["candidates"]] == [c.id for c in expected.candidates]
    assert [c["rank"] for c in answer["candidates"]] == list(range(1, len(expected.candidates) + 1))
    assert set(answer["timings_ms"]) == {"embed", "retrieve", "rerank"}
    assert answer["request_id"] == response.headers["x-request-id"]


def test_a_filter_and_the_pipelines_defaults_hold(api, collection):
    expected = collection[1]["filtered"]
    body = {"query": QUERY, "retrieve_k": 8, "top_k": 8, "first_stage": "dense", "filter": FILTER}
    answer = httpx.post(f"{api}/v1/search", json=body).json()
    assert [h["id"] for h in answer["hits"]] == [h.id for h in expected.hits]
    defaults = httpx.post(f"{api}/v1/search", json={"query": QUERY}).json()
    assert len(defaults["hits"]) == 10 and defaults["first_stage"].startswith("hybrid")  # auto: BM25 is there


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "  "}, 400, "query must not be empty"),
        ({"query": QUERY, "retrieve_k": 5, "top_k": 6}, 422, "top_k (6) cannot exceed retrieve_k (5)"),
        ({"query": QUERY, "first_stage": "sparse"}, 422, "first_stage"),
        ({"query": QUERY, "filter": "no_such_field > 3"}, 422, "no_such_field"),
        ({"query": QUERY, "collection": "nope"}, 404, "has no collection 'nope'"),
        ({"query": QUERY, "model": "nope"}, 404, "model 'nope' is not served"),
        ({"query": QUERY, "retrieve_k": 5000}, 422, "at most 1,000"),
        ({"query": QUERY, "first_stage": "dense", "fusion": "rrf"}, 422, "has one leg"),
    ],
)
def test_bad_input_is_refused_before_it_reaches_triton(api, triton_server, body, status, words):
    before = requests_of(triton_server)
    response = httpx.post(f"{api}/v1/search", json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert requests_of(triton_server) == before


def test_without_milvus_the_route_says_how_to_turn_it_on(triton_server):
    with ApiProcess(triton_server.grpc_url) as process:
        response = httpx.post(f"{process.url}/v1/search", json={"query": QUERY})
        assert response.status_code == 404
        assert "--milvus-uri" in response.json()["detail"]
        assert "/v1/search" in httpx.get(f"{process.url}/openapi.json").json()["paths"]


def test_with_a_key_the_route_asks_for_it_and_the_page_does_not(triton_server):
    key = "search-key"
    with ApiProcess(triton_server.grpc_url, env={"RERANK_API_KEY": key}) as process:
        assert httpx.post(f"{process.url}/v1/search", json={"query": QUERY}).status_code == 401
        keyed = {"authorization": f"Bearer {key}"}
        with_key = httpx.post(f"{process.url}/v1/search", json={"query": QUERY}, headers=keyed)
        assert with_key.status_code == 404 and "--milvus-uri" in with_key.json()["detail"]  # past the key: no Milvus
        assert httpx.get(f"{process.url}/playground").status_code == 200  # the page holds no data
        script = httpx.get(f"{process.url}/playground/playground.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert httpx.get(f"{process.url}/playground/judgements").status_code == 401  # the judgements are data
