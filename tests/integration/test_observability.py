"""Operating the service: request ids, one trace from the API through every Triton call (and into
Triton's own spans), the OpenAPI description checked against real answers, readiness, JSON logs,
against a real embedded Triton."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

pytestmark = pytest.mark.integration
QUERY = "what is the capital of france?"
DOCUMENTS = ["paris is the capital of france", "berlin is in germany", "a fox", "the sea", "how vaccines work"]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def memory_spans():
    """The process' tracer provider, exporting to memory (set once per process, as OpenTelemetry allows)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.fail("another tracer provider was set in this process first")
    yield exporter


def in_process_api(triton_url: str, **settings) -> httpx.AsyncClient:
    from triton_rerank.api.app import create_app
    from triton_rerank.api.settings import ApiSettings

    app = create_app(ApiSettings(triton_url=triton_url, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def hexid(number: int, width: int) -> str:
    return format(number, f"0{width}x")


async def test_a_request_split_across_triton_calls_is_one_trace_carrying_its_id(triton_server, memory_spans):
    memory_spans.clear()
    async with in_process_api(triton_server.grpc_url, batch_size=2) as api:
        answer = await api.post(
            "/v1/rerank",
            json={"query": QUERY, "documents": DOCUMENTS},
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01", "x-request-id": "order-42"},
        )
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "order-42"
    spans = [s for s in memory_spans.get_finished_spans() if hexid(s.context.trace_id, 32) == TRACE_ID]
    by_name = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (server,) = by_name["POST /v1/rerank"]
    assert hexid(server.parent.span_id, 16) == CALLER_SPAN  # the caller's traceparent was honoured
    calls = by_name["triton.infer"]
    assert len(calls) == 3  # 5 documents, 2 per Triton request
    assert sum(call.attributes["triton.rows"] for call in calls) == len(DOCUMENTS)
    for child in [*calls, *by_name["parse"], *by_name["answer"]]:
        assert child.parent.span_id == server.context.span_id
        assert child.attributes["triton_rerank.request_id"] == "order-42"
    assert server.attributes["triton_rerank.request_id"] == "order-42"
    assert server.attributes["rerank.documents"] == len(DOCUMENTS)


async def test_a_request_without_an_id_gets_one_and_a_bad_id_is_refused_in_the_routes_format(triton_server):
    async with in_process_api(triton_server.grpc_url) as api:
        made = await api.post("/rerank", json={"query": QUERY, "texts": ["a"]})
        assert made.status_code == 200 and len(made.headers["x-request-id"]) == 32
        other = await api.post("/rerank", json={"query": QUERY, "texts": ["a"]})
        assert other.headers["x-request-id"] != made.headers["x-request-id"]
        refused = await api.post("/rerank", json={"query": QUERY, "texts": ["a"]}, headers={"x-request-id": "a b"})
        assert refused.status_code == 400 and refused.json()["error_type"] == "Validation"
        assert "X-Request-Id" in refused.json()["error"] and refused.headers["x-request-id"]
        too_long = await api.post("/v2/rerank", json={}, headers={"x-request-id": "x" * 129})
        assert too_long.status_code == 400 and "at most 128" in too_long.json()["message"]


def test_the_blocking_client_carries_its_request_id_and_trace_into_every_triton_call(triton_server, memory_spans):
    from opentelemetry import trace

    from triton_rerank import TritonRerankFunction

    memory_spans.clear()
    rf = TritonRerankFunction(triton_server.grpc_url, batch_size=2)
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        rf(QUERY, DOCUMENTS, top_k=2, request_id="batch-7")
    calls = [s for s in memory_spans.get_finished_spans() if s.name == "triton.infer"]
    assert len(calls) == 3  # from the client's own event-loop thread, still under the caller's span
    assert all(c.parent.span_id == caller.get_span_context().span_id for c in calls)
    assert all(c.attributes["triton_rerank.request_id"] == "batch-7" for c in calls)
    from triton_rerank.errors import RerankInputError

    with pytest.raises(RerankInputError, match="visible ASCII"):
        rf(QUERY, DOCUMENTS, request_id="tab\there")


def _traced_rerank(api_url: str, trace_id: str) -> None:
    answer = httpx.post(
        f"{api_url}/v2/rerank",
        json={"model": "reranker", "query": QUERY, "documents": DOCUMENTS},
        headers={"traceparent": f"00-{trace_id}-{CALLER_SPAN}-01", "x-request-id": "req-triton-1"},
    )
    assert answer.status_code == 200


def _under_the_calls(spans) -> list:
    """Triton's root spans whose parent is one of the API's ``triton.infer`` spans."""
    calls = {s.span_id for s in spans if s.name == "triton.infer"}
    return [s for s in spans if s.service == "triton-inference-server" and s.parent_id in calls]


@pytest.fixture(scope="module")
def traced_triton(tiny_repository):
    """Triton in OpenTelemetry mode and the API exporting by the standard OTEL_* variables, both to
    one OTLP receiver; the API talks to Triton over HTTP (see the gRPC test below for why)."""
    from benchmarks.otlp_receiver import OtlpReceiver
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    fast_export = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
    with OtlpReceiver() as receiver:
        # --log-verbose 1: Triton's log names each request by its id, which shows it arrived as Triton's own.
        settings = free_port_settings(trace_url=receiver.url, env=fast_export, log_verbose=1)
        with EmbeddedTritonServer(tiny_repository, settings) as server:
            yield server, receiver, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **fast_export}


def test_tritons_own_spans_land_under_the_apis_trace(traced_triton):
    """Triton's spans are children of the API's Triton calls, one tree per call, and carry the id."""
    from benchmarks.api_process import ApiProcess

    server, receiver, env = traced_triton
    with ApiProcess(server.http_url, "--batch-size", "2", env=env) as api:  # 5 documents: 3 calls
        _traced_rerank(api.url, TRACE_ID)
        spans = receiver.wait_for(TRACE_ID, lambda spans: len(_under_the_calls(spans)) == 3, timeout_s=15)
    services = {s.service for s in spans}
    assert services == {"triton-rerank-api", "triton-inference-server"}, services
    calls = {s.span_id: s for s in spans if s.name == "triton.infer"}
    assert len(calls) == 3, [s.name for s in spans]
    triton_roots = _under_the_calls(spans)
    assert len(triton_roots) == 3, [(s.service, s.name, s.span_id, s.parent_id) for s in spans]
    assert {s.parent_id for s in triton_roots} == set(calls)
    triton_spans = [s for s in spans if s.service == "triton-inference-server"]
    # Under each request: the ensemble, each of its steps, and their compute.
    assert {s.name for s in triton_spans} >= {"InferRequest", "reranker", "tokenizer", "cross_encoder", "compute"}
    assert "[request id: req-triton-1]" in server.log_path.read_text()  # not on Triton 2.51's spans; its log has it


def test_the_trace_context_reaches_triton_over_grpc_too(traced_triton):
    """Triton's gRPC endpoint reads a ``traceparent`` past its end (``GrpcServerCarrier::Get`` in
    src/grpc/infer_handler.h returns a ``grpc::string_ref``'s ``data()``, which is not NUL-terminated),
    so 2-14 % of gRPC requests start a trace of their own (measured here on 2026-12-07: 0 of 177 over
    HTTP). Eight traced requests, one call each: the context does reach Triton, for most of them."""
    from benchmarks.api_process import ApiProcess

    server, receiver, env = traced_triton
    trace_ids = [f"{n:x}" * 32 for n in range(1, 9)]
    with ApiProcess(server.grpc_url, env=env) as api:
        for trace_id in trace_ids:
            _traced_rerank(api.url, trace_id)
        deadline = time.monotonic() + 15  # Triton exports every 100 ms, later on a busy machine
        while len(joined := [t for t in trace_ids if _under_the_calls(receiver.of_trace(t))]) < 4:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert len(joined) >= 4, f"Triton joined {len(joined)} of 8 traces over gRPC"


def test_readiness_means_triton_and_the_default_model_while_liveness_asks_nothing(triton_server):
    from benchmarks.api_process import ApiProcess
    from triton_rerank.serving.server import free_port

    with ApiProcess(triton_server.grpc_url) as api:
        assert httpx.get(f"{api.url}/health").status_code == 200
        ready = httpx.get(f"{api.url}/ready")
        assert ready.status_code == 200 and "reranker" in ready.json()["models"]
    with ApiProcess(f"grpc://127.0.0.1:{free_port()}") as dead:
        assert httpx.get(f"{dead.url}/health").status_code == 200  # alive: restarting it would not help
        not_ready = httpx.get(f"{dead.url}/ready")
        assert not_ready.status_code == 503 and "Triton" in not_ready.json()["reason"]
    with ApiProcess(triton_server.grpc_url, "--default-model", "absent") as misnamed:
        reason = httpx.get(f"{misnamed.url}/ready").json()["reason"]
        assert "'absent' is not ready" in reason


def test_json_logs_carry_the_request_fields(triton_server):
    from benchmarks.api_process import ApiProcess

    with ApiProcess(triton_server.grpc_url, "--log-format", "json", "--access-log") as api:
        body = {"model": "reranker", "query": QUERY, "documents": DOCUMENTS[:3]}
        assert httpx.post(f"{api.url}/v2/rerank", json=body, headers={"x-request-id": "log-me"}).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("log-me" in line for line in api.output):
            time.sleep(0.1)
    lines = [json.loads(line) for line in api.output if line.startswith("{")]
    (entry,) = [line for line in lines if line.get("request_id") == "log-me"]
    assert entry["route"] == "/v2/rerank" and entry["status"] == 200 and entry["model"] == "reranker"
    assert entry["documents"] == 3 and entry["ms"] > 0 and entry["level"] == "INFO" and entry["time"]


async def test_the_openapi_description_is_valid_and_real_answers_match_it(triton_server):
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest, MockResponse
    from openapi_core.validation.request.exceptions import InvalidRequestBody
    from openapi_spec_validator import validate

    async with in_process_api(triton_server.grpc_url) as api:
        document = (await api.get("/openapi.json")).json()
        validate(document)
        assert "swagger-ui" in (await api.get("/docs")).text
        spec = OpenAPI.from_dict(document)
        cases = [
            ("/v2/rerank", {"model": "reranker", "query": QUERY, "documents": DOCUMENTS, "top_n": 2}),
            ("/v2/rerank", {"model": "reranker", "query": QUERY, "documents": []}),  # 400
            ("/v1/rerank", {"query": QUERY, "documents": [{"text": "a"}, "b"], "return_documents": True}),
            ("/v1/rerank", {"query": QUERY, "documents": "not a list"}),  # 422
            ("/rerank", {"query": QUERY, "texts": DOCUMENTS, "raw_scores": True, "return_text": True}),
            ("/rerank", {"query": QUERY, "documents": ["a", "b"]}),  # vLLM's shape
            ("/v2/rerank", {"model": "absent", "query": QUERY, "documents": ["a"]}),  # 404
        ]
        statuses = set()
        for path, body in cases:
            answer = await api.post(path, json=body)
            statuses.add(answer.status_code)
            request = MockRequest("http://api", "post", path, data=json.dumps(body), content_type="application/json")
            response = MockResponse(answer.content, status_code=answer.status_code, content_type="application/json")
            if body.get("documents") == "not a list":  # the description refuses what the service refuses
                with pytest.raises(InvalidRequestBody):
                    spec.validate_request(request)
            else:
                spec.validate_request(request)
            spec.validate_response(request, response)
        for path in ("/ready", "/info", "/v1/models"):
            answer = await api.get(path)
            request = MockRequest("http://api", "get", path)
            spec.validate_response(request, MockResponse(answer.content, status_code=answer.status_code))
    assert statuses == {200, 400, 404, 422}


def scraped_names(url: str) -> set[str]:
    """The series names of a scrape as Prometheus stores them. (prometheus_client's parser would add
    ``_total`` to Triton's counters, which Prometheus does not.)"""
    lines = httpx.get(url, timeout=10).text.splitlines()
    return {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group() for line in lines if line and not line.startswith("#")}


@pytest.mark.xdist_group("milvus-server")  # one Milvus server, on its fixed ports
def test_every_metric_the_dashboard_and_alerts_read_is_in_a_real_scrape(triton_server, milvus_server):
    """The API's, the embedded Triton's and a real Milvus server's /metrics, after one request
    each; names come from the dashboard JSON and the rules, parsed as PromQL."""
    from monitoring_assets import GPU_ONLY_PREFIX, NOT_SCRAPED, alert_expressions, dashboard_expressions, metric_names
    from pymilvus import MilvusClient

    from benchmarks.api_process import ApiProcess

    with ApiProcess(triton_server.grpc_url, "--score-cache", "memory") as api:  # the cache panel too
        body = {"model": "reranker", "query": QUERY, "documents": DOCUMENTS}
        assert httpx.post(f"{api.url}/v2/rerank", json=body).status_code == 200
        httpx.post(f"{api.url}/v2/rerank", json={"model": "reranker", "query": QUERY, "documents": []})  # a 4xx
        scraped = scraped_names(f"{api.url}/metrics")
    scraped |= scraped_names(triton_server.metrics_url)
    milvus = MilvusClient(milvus_server)
    milvus.create_collection("metrics_probe", dimension=4)
    milvus.insert("metrics_probe", [{"id": i, "vector": [float(i), 1.0, 0.0, 0.5]} for i in range(8)])
    milvus.search("metrics_probe", data=[[1.0, 1.0, 0.0, 0.5]], limit=3)
    milvus.drop_collection("metrics_probe")
    scraped |= scraped_names("http://127.0.0.1:9091/metrics")
    read = metric_names(dashboard_expressions() + alert_expressions())
    missing = {name for name in read - scraped - NOT_SCRAPED if not name.startswith(GPU_ONLY_PREFIX)}
    assert not missing, missing
    assert {n for n in read if n.startswith(GPU_ONLY_PREFIX)} == {"nv_gpu_utilization"}  # the only exception


def test_a_pipeline_search_is_one_trace_with_embed_milvus_and_rerank_under_it(
    triton_server, memory_spans, sample_corpus, tmp_path
):
    from triton_rerank import TritonEmbedFunction, TritonRerankFunction
    from triton_rerank.ingest import ingest, read_documents
    from triton_rerank.pipeline import RerankPipeline
    from triton_rerank.store import MilvusStore

    embed, rerank = TritonEmbedFunction(triton_server.grpc_url), TritonRerankFunction(triton_server.grpc_url)
    with MilvusStore(str(tmp_path / "docs.db"), collection="traced", index="FLAT") as store:
        ingest(read_documents(sample_corpus), store, embed, batch_size=8)
        memory_spans.clear()
        RerankPipeline(store, embed, rerank).search(QUERY, retrieve_k=10, top_k=3, request_id="search-9")
    spans = memory_spans.get_finished_spans()
    (search,) = [s for s in spans if s.name == "search"]
    children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == search.context.span_id}
    assert set(children) == {"embed", "milvus.search", "rerank"}
    assert children["milvus.search"].attributes["first_stage"] == "hybrid"  # auto, on a BM25 collection
    for step in ("embed", "rerank"):  # each Triton call under the step that made it, with the request id
        calls = [s for s in spans if s.name == "triton.infer" and s.parent.span_id == children[step].context.span_id]
        assert calls and all(c.attributes["triton_rerank.request_id"] == "search-9" for c in calls)
    assert {s.context.trace_id for s in spans} == {search.context.trace_id}
