"""The rerank HTTP API (``triton-rerank api``) in front of a real embedded Triton, called by the
ecosystem's real clients: the cohere SDK, pymilvus' TEIRerankFunction, Haystack's TEI ranker, and
Milvus Lite reranking server-side through it."""

from __future__ import annotations

import contextlib
import threading

import httpx
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration
TOLERANCE = 1e-4
QUERY = "what is the capital of france?"
DOCUMENTS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "",  # empty
    "the quick brown fox jumps over the lazy dog " * 20,  # longer than the tiny model's 48 tokens
    "unicode: café, naïve, 東京, emoji 🦊",
    "how do vaccines work",
]
API_KEY = "api-secret-5d1e"


def free_port() -> int:
    from triton_rerank.serving.server import free_ports

    return free_ports(1)[0]


@contextlib.contextmanager
def rerank_api(triton_url: str, *args: str, env: dict | None = None):
    """``triton-rerank api`` as a user starts it, on a free port; yields (base URL, the process)."""
    from benchmarks.api_process import ApiProcess

    with ApiProcess(triton_url, *args, env=env) as api:
        yield api.url, api


def sigmoid(x) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.fixture(scope="module")
def api(two_rerankers_server) -> str:
    with rerank_api(two_rerankers_server.grpc_url, "--model-alias", "rerank-v3.5=reranker") as (base, _):
        yield base


@pytest.fixture(scope="module")
def keyed_api(two_rerankers_server) -> str:
    with rerank_api(two_rerankers_server.grpc_url, env={"RERANK_API_KEY": API_KEY}) as (base, process):
        yield base, process


@pytest.fixture(scope="module")
def expected(reference) -> np.ndarray:
    """sentence-transformers' logits for (QUERY, DOCUMENTS), truncated as it truncates."""
    cross_encoder, _ = reference
    return cross_encoder.predict([(QUERY, d) for d in DOCUMENTS], activation_fn=torch.nn.Identity())


# --- the real clients ---------------------------------------------------------------------------


def test_the_cohere_sdk_reranks_through_the_api_with_sigmoid_scores(api, expected):
    import cohere

    co = cohere.ClientV2(api_key="any", base_url=api)
    response = co.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=3)
    order = np.argsort(-expected, kind="stable")
    assert [r.index for r in response.results] == list(order[:3])
    np.testing.assert_allclose(
        [r.relevance_score for r in response.results], sigmoid(expected[order[:3]]), atol=TOLERANCE
    )
    assert response.id and response.meta.api_version.version == "2"
    everything = co.rerank(model="reranker", query=QUERY, documents=DOCUMENTS)  # no top_n: every document
    assert sorted(r.index for r in everything.results) == list(range(len(DOCUMENTS)))


def test_the_cohere_sdk_sees_its_own_errors(api):
    import cohere
    from cohere.core.api_error import ApiError

    co = cohere.ClientV2(api_key="any", base_url=api)
    with pytest.raises(ApiError) as unknown:
        co.rerank(model="rerank-english-v2.0", query=QUERY, documents=DOCUMENTS)
    assert unknown.value.status_code == 404
    assert "reranker" in unknown.value.body["message"] and "second" in unknown.value.body["message"]
    with pytest.raises(ApiError) as empty:
        co.rerank(model="reranker", query=QUERY, documents=[])
    assert empty.value.status_code == 400
    assert empty.value.body["message"] == "invalid request: list of documents must not be empty"


def test_cohere_max_tokens_per_doc_cuts_each_document(api, reference):
    import cohere

    cross_encoder, _ = reference
    tokenizer = cross_encoder.tokenizer
    document = "paris is the capital of france and the largest city of the country by far"
    co = cohere.ClientV2(api_key="any", base_url=api)
    response = co.rerank(model="reranker", query=QUERY, documents=[document], max_tokens_per_doc=4)
    ids = tokenizer(document, add_special_tokens=False)["input_ids"][:4]
    cut = tokenizer.decode(ids)  # the tiny vocabulary is lower-case words: decoding gives the first 4 words
    want = cross_encoder.predict([(QUERY, cut)], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(response.results[0].relevance_score, sigmoid(want[0]), atol=TOLERANCE)
    whole = co.rerank(model="reranker", query=QUERY, documents=[document])
    assert abs(whole.results[0].relevance_score - response.results[0].relevance_score) > 1e-6


def test_pymilvus_tei_rerank_function_reranks_through_the_api(api, expected):
    from pymilvus.model.reranker import TEIRerankFunction

    results = TEIRerankFunction(api)(QUERY, DOCUMENTS)
    order = np.argsort(-expected, kind="stable")[:5]  # it keeps the first five
    assert [r.index for r in results] == list(order)
    assert [r.text for r in results] == [DOCUMENTS[i] for i in order]
    np.testing.assert_allclose([r.score for r in results], sigmoid(expected[order]), atol=TOLERANCE)


def test_haystacks_tei_ranker_with_a_bearer_key_and_raw_scores(keyed_api, expected, monkeypatch):
    monkeypatch.setenv("HAYSTACK_TELEMETRY_ENABLED", "False")
    from haystack import Document
    from haystack.components.rankers import HuggingFaceTEIRanker
    from haystack.utils import Secret

    base, _ = keyed_api
    ranker = HuggingFaceTEIRanker(url=base, top_k=4, raw_scores=True, token=Secret.from_token(API_KEY))
    documents = [Document(content=text, id=str(i)) for i, text in enumerate(DOCUMENTS) if text]
    ranked = ranker.run(query=QUERY, documents=documents)["documents"]
    kept = [i for i, text in enumerate(DOCUMENTS) if text]
    want = sorted(kept, key=lambda i: -expected[i])[:4]
    assert [d.id for d in ranked] == [str(i) for i in want]
    np.testing.assert_allclose([d.score for d in ranked], expected[want], atol=TOLERANCE)  # the raw logits
    wrong = HuggingFaceTEIRanker(url=base, token=Secret.from_token("not-the-key"))
    with pytest.raises(Exception) as refused:
        wrong.run(query=QUERY, documents=documents)
    assert "401" in str(refused.value)


def _documents_scored(api: str, route: str) -> float:
    import re

    found = re.search(rf'rerank_api_documents_total{{route="{route}"}} ([0-9.e+]+)', httpx.get(f"{api}/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_milvus_lite_reranks_server_side_through_the_api_as_the_pipeline_does(
    api, two_rerankers_server, tmp_path, sample_corpus
):
    from pymilvus import Function, FunctionType, MilvusClient

    from triton_rerank import TritonEmbedFunction, TritonRerankFunction
    from triton_rerank.ingest import ingest, read_documents
    from triton_rerank.pipeline import RerankPipeline
    from triton_rerank.store import MilvusStore

    query, limit = "How do vaccines train the immune system?", 3
    # Milvus Lite reranks 10 x limit nearest candidates, then keeps limit: the pipeline does the same
    # with retrieve_k=30 (the API's document count below checks the 30).
    uri = str(tmp_path / "milvus.db")
    with (
        TritonEmbedFunction(two_rerankers_server.grpc_url) as embed,
        TritonRerankFunction(two_rerankers_server.grpc_url) as rerank,
        MilvusStore(uri, collection="sample", index="FLAT") as store,
    ):
        ingest(read_documents(sample_corpus), store, embed, batch_size=16)
        expected = RerankPipeline(store, embed, rerank, first_stage="dense").search(  # Milvus' ranker follows dense
            query, retrieve_k=10 * limit, top_k=limit
        )
        ranker = Function(
            name="triton_rerank",
            input_field_names=["text"],
            function_type=FunctionType.RERANK,
            params={
                "reranker": "model",
                "provider": "cohere",
                "queries": [query],
                "model_name": "rerank-v3.5",
                "base_url": f"{api}/v2",
                "api_key": "unused",
            },
        )
        client = MilvusClient(uri)
        before = _documents_scored(api, "/v2/rerank")
        try:
            hits = client.search(
                "sample",
                data=[embed([query])[0].tolist()],
                anns_field="vector",
                limit=limit,
                output_fields=["text"],
                search_params={"metric_type": "COSINE"},
                ranker=ranker,
            )[0]
        finally:
            client.close()
    assert _documents_scored(api, "/v2/rerank") - before == 10 * limit
    assert [h["id"] for h in hits] == [h.id for h in expected.hits]
    np.testing.assert_allclose(
        [h["distance"] for h in hits], sigmoid([h.rerank_score for h in expected.hits]), atol=TOLERANCE
    )


# --- the routes' shapes and parity ----------------------------------------------------------------


def test_jina_and_vllm_shapes_on_v1_rerank(api, expected, reference):
    body = {"model": "reranker", "query": QUERY, "documents": [DOCUMENTS[0], {"text": DOCUMENTS[1]}], "top_n": 1}
    answer = httpx.post(f"{api}/v1/rerank", json=body).json()
    best = int(np.argmax(expected[:2]))
    assert answer["model"] == "reranker" and answer["id"]
    assert answer["results"] == [
        {
            "index": best,
            "relevance_score": pytest.approx(float(sigmoid(expected[best])), abs=TOLERANCE),
            "document": {"text": DOCUMENTS[best]},
        }
    ]
    cross_encoder, _ = reference
    encoded = cross_encoder.tokenizer([QUERY] * 2, DOCUMENTS[:2], truncation=True, max_length=48)
    assert answer["usage"] == {"total_tokens": sum(len(ids) for ids in encoded["input_ids"])}
    bare = httpx.post(f"{api}/v1/rerank", json={**body, "return_documents": False, "top_n": 0}).json()
    assert [set(r) for r in bare["results"]] == [{"index", "relevance_score"}] * 2  # top_n 0 (vLLM): all
    empty = httpx.post(f"{api}/v1/rerank", json={"query": QUERY, "documents": []})
    assert empty.status_code == 200 and empty.json()["results"] == []


def test_tei_route_raw_scores_return_text_and_the_vllm_body_milvus_posts_there(api, expected):
    tei = httpx.post(
        f"{api}/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True, "return_text": True}
    )
    order = np.argsort(-expected, kind="stable")
    assert [r["index"] for r in tei.json()] == list(order)
    np.testing.assert_allclose([r["score"] for r in tei.json()], expected[order], atol=TOLERANCE)
    assert [r["text"] for r in tei.json()] == [DOCUMENTS[i] for i in order]
    vllm = httpx.post(f"{api}/rerank", json={"query": QUERY, "documents": DOCUMENTS, "top_n": 2}).json()
    assert [r["index"] for r in vllm["results"]] == list(order[:2])
    np.testing.assert_allclose(
        [r["relevance_score"] for r in vllm["results"]], sigmoid(expected[order[:2]]), atol=TOLERANCE
    )


def test_tei_truncate_false_refuses_a_pair_over_max_length_and_direction_left_is_honoured(api, reference):
    cross_encoder, _ = reference
    long_text = DOCUMENTS[3]
    refused = httpx.post(f"{api}/rerank", json={"query": QUERY, "texts": [DOCUMENTS[0], long_text], "truncate": False})
    assert refused.status_code == 422
    assert refused.json()["error_type"] == "Validation"
    assert "more than this model's 48 (max_length)" in refused.json()["error"]
    fits = httpx.post(f"{api}/rerank", json={"query": QUERY, "texts": [DOCUMENTS[0]], "truncate": False})
    assert fits.status_code == 200
    left = httpx.post(
        f"{api}/rerank",
        json={"query": QUERY, "texts": [long_text + " paris"], "truncation_direction": "Left", "raw_scores": True},
    ).json()
    cross_encoder.tokenizer.truncation_side = "left"
    try:
        want = cross_encoder.predict([(QUERY, long_text + " paris")], activation_fn=torch.nn.Identity())
    finally:
        cross_encoder.tokenizer.truncation_side = "right"
    np.testing.assert_allclose(left[0]["score"], want[0], atol=TOLERANCE)


def test_two_rerankers_side_by_side_selected_by_model(api, second_model, zoo):
    from sentence_transformers import CrossEncoder

    names = [m["id"] for m in httpx.get(f"{api}/v1/models").json()["data"]]
    assert names == [*sorted(zoo.names), "rerank-v3.5"]
    info = httpx.get(f"{api}/info").json()
    lengths = {name: 160 if name == "qwen3" else 48 for name in zoo.names}  # each model's own max_length
    assert {m["name"]: m["max_input_length"] for m in info["models"]} == lengths
    second = CrossEncoder(str(second_model), device="cpu")
    want = second.predict([(QUERY, d) for d in DOCUMENTS], activation_fn=torch.nn.Identity())
    answer = httpx.post(f"{api}/v1/rerank", json={"model": "second", "query": QUERY, "documents": DOCUMENTS}).json()
    got = dict((r["index"], r["relevance_score"]) for r in answer["results"])
    np.testing.assert_allclose([got[i] for i in range(len(DOCUMENTS))], sigmoid(want), atol=TOLERANCE)


def test_more_documents_than_one_triton_request_takes_are_split_not_refused(api, reference):
    cross_encoder, _ = reference
    documents = [f"{DOCUMENTS[i % 6]} {i}" for i in range(300)]  # the tiny server takes 128 per request
    answer = httpx.post(f"{api}/rerank", json={"query": QUERY, "texts": documents, "raw_scores": True}).json()
    got = dict((r["index"], r["score"]) for r in answer)
    want = cross_encoder.predict([(QUERY, d) for d in documents], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose([got[i] for i in range(300)], want, atol=TOLERANCE)


def test_health_and_metrics(api):
    assert httpx.get(f"{api}/health").status_code == 200
    httpx.post(f"{api}/v2/rerank", json={"model": "reranker", "query": QUERY, "documents": ["a", "b"]})
    text = httpx.get(f"{api}/metrics").text
    assert 'rerank_api_requests_total{route="/v2/rerank",status="200"}' in text
    assert 'rerank_api_documents_total{route="/v2/rerank"}' in text
    assert 'rerank_api_request_seconds_bucket{le="0.005",route="/v2/rerank"}' in text


# --- bad input, limits, keys, and a Triton that is down -----------------------------------------------


BAD_INPUT = [  # (what, route, body, headers, status, the error's key, words the message must hold)
    ("malformed JSON", "/v2/rerank", b'{"query": "q", "documents": [', {}, 400, "message", "not valid JSON"),
    ("non-UTF-8 bytes", "/rerank", b'{"query": "q\xff", "texts": ["a"]}', {}, 400, "error", "not valid JSON"),
    (
        "wrong type",
        "/v2/rerank",
        {"model": "reranker", "query": "q", "documents": [1, 2]},
        {},
        400,
        "message",
        "documents.0: Input should be a valid string",
    ),
    ("missing field", "/rerank", {"query": "q"}, {}, 422, "error", "texts: Field required"),
    (
        "bool as int",
        "/v1/rerank",
        {"query": "q", "documents": ["a"], "top_n": True},
        {},
        422,
        "detail",
        "top_n: Input should be a valid integer",
    ),
    ("not an object", "/rerank", [1, 2], {}, 422, "error", "expected a JSON object"),
    (
        "10,000 documents",
        "/v2/rerank",
        {"model": "reranker", "query": "q", "documents": ["d"] * 10_000},
        {},
        400,
        "message",
        "at most 1,000 per request",
    ),
    (
        "2 MB document",
        "/rerank",
        {"query": "q", "texts": ["x" * 2_000_000]},
        {},
        422,
        "error",
        "at most 1,048,576 bytes",
    ),
    (
        "unknown model",
        "/v1/rerank",
        {"model": "nope", "query": "q", "documents": ["a"]},
        {},
        404,
        "detail",
        "qwen3, reranker, second, rerank-v3.5",  # the models served, the aliases after them
    ),
    ("empty texts", "/rerank", {"query": "q", "texts": []}, {}, 400, "error", "`texts` cannot be empty"),
    ("12 MB body", "/v1/rerank", b"x" * (12 * 2**20), {}, 413, "detail", "limit"),
]


@pytest.mark.parametrize(
    ("what", "route", "body", "headers", "status", "key", "words"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT]
)
def test_bad_input_gets_its_status_and_a_json_error_naming_it(api, what, route, body, headers, status, key, words):
    if isinstance(body, bytes):
        response = httpx.post(f"{api}{route}", content=body, headers={"content-type": "application/json", **headers})
    else:
        response = httpx.post(f"{api}{route}", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert words in response.json()[key]


def test_a_client_reranking_meanwhile_sees_no_failure(api, expected):
    import cohere

    co = cohere.ClientV2(api_key="any", base_url=api)
    failures: list[BaseException] = []
    stop = threading.Event()

    def steady() -> None:
        while not stop.is_set():
            try:
                got = co.rerank(model="reranker", query=QUERY, documents=DOCUMENTS)
                assert got.results[0].index == int(np.argmax(expected))
            except BaseException as err:  # noqa: BLE001  (any failure is the finding)
                failures.append(err)

    worker = threading.Thread(target=steady)
    worker.start()
    try:
        for _what, route, body, headers, status, _key, _words in BAD_INPUT * 2:
            if isinstance(body, bytes):
                r = httpx.post(f"{api}{route}", content=body, headers={"content-type": "application/json"})
            else:
                r = httpx.post(f"{api}{route}", json=body, headers=headers)
            assert r.status_code == status
    finally:
        stop.set()
        worker.join(timeout=60)
    assert failures == []
    assert httpx.get(f"{api}/health").status_code == 200


def test_the_key_is_required_compared_and_never_echoed(keyed_api):
    base, process = keyed_api
    body = {"model": "reranker", "query": QUERY, "documents": ["a"]}
    assert httpx.post(f"{base}/v2/rerank", json=body).status_code == 401
    wrong = httpx.post(f"{base}/v2/rerank", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Bearer" in wrong.json()["message"]
    assert httpx.post(f"{base}/v2/rerank", json=body, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert httpx.get(f"{base}/health").status_code == 200  # probes need no key
    assert httpx.get(f"{base}/info").status_code == 401
    assert API_KEY not in "".join(process.output)


def test_the_triton_key_is_forwarded_and_never_logged(tiny_repository):
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    triton_key = "triton-secret-77aa"
    with EmbeddedTritonServer(tiny_repository, free_port_settings(api_key=triton_key)) as locked:
        body = {"model": "reranker", "query": QUERY, "documents": ["a", "b"]}
        with rerank_api(locked.grpc_url, env={"TRITON_RERANK_API_KEY": triton_key}) as (base, process):
            assert httpx.post(f"{base}/v2/rerank", json=body).status_code == 200
        with rerank_api(locked.grpc_url, env={"TRITON_RERANK_API_KEY": "wrong-key-3f"}) as (base, wrong):
            refused = httpx.post(f"{base}/v2/rerank", json=body)
            assert refused.status_code == 500 and "not authorised" in refused.json()["message"]
    assert triton_key not in "".join(process.output) and "wrong-key-3f" not in "".join(wrong.output)


def test_triton_down_is_503_on_every_route(tmp_path):
    dead = f"grpc://127.0.0.1:{free_port()}"
    with rerank_api(dead) as (base, _):
        cohere_body = {"model": "reranker", "query": QUERY, "documents": ["a"]}
        assert httpx.post(f"{base}/v2/rerank", json=cohere_body).status_code == 503
        assert httpx.post(f"{base}/v1/rerank", json={"query": QUERY, "documents": ["a"]}).status_code == 503
        tei = httpx.post(f"{base}/rerank", json={"query": QUERY, "texts": ["a"]})
        assert tei.status_code == 503 and tei.json()["error_type"] == "Unhealthy"
        assert httpx.get(f"{base}/ready").status_code == 503
        assert httpx.get(f"{base}/health").status_code == 200  # alive: liveness asks Triton nothing


def test_a_long_document_through_the_api_is_read_in_windows_when_asked(api, two_rerankers_server):
    from triton_rerank import TritonRerankFunction

    document = "the quick brown fox " * 30 + "paris is the capital of france " + "the lazy dog " * 30
    body = {"model": "reranker", "query": QUERY, "documents": [document, DOCUMENTS[1]], "long_documents": "max"}
    answer = httpx.post(f"{api}/v2/rerank", json=body).json()
    got = {r["index"]: r["relevance_score"] for r in answer["results"]}
    with TritonRerankFunction(two_rerankers_server.grpc_url) as rf:
        want = rf.score(QUERY, [document, DOCUMENTS[1]], long_documents="max")
        first = rf.score(QUERY, [document, DOCUMENTS[1]])
    np.testing.assert_allclose([got[0], got[1]], sigmoid(want), atol=TOLERANCE)
    assert abs(got[0] - sigmoid(first[0])) > 1e-6  # not today's truncated score
