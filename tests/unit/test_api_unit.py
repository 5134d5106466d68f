"""The rerank API's own logic, in process, with a stand-in for Triton: how each failure is
answered on each route, the concurrency limit, and the settings' flags. The real service in front
of a real Triton, with the real clients, is tests/integration/test_rerank_api.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time

import httpx
import numpy as np
import orjson
import pytest

from triton_rerank.api.app import create_app
from triton_rerank.api.schemas import COHERE, JINA, STATUS, TEI
from triton_rerank.api.service import RerankService, ServedModel, api_error
from triton_rerank.api.settings import ApiSettings
from triton_rerank.errors import (
    InvalidScoresError,
    ModelNotReadyError,
    RerankAuthError,
    RerankInputError,
    RerankTimeoutError,
    ServerOverloadedError,
    ServerResponseError,
    ServerUnavailableError,
)

MODEL = ServedModel("reranker", max_length=512, max_rows_per_request=128)


class StandIn(RerankService):
    """Serves one model; ``logits`` raises ``failure`` or waits for ``gate``, then scores by length
    (and counts a token per character)."""

    def __init__(self, failure: Exception | None = None, gate: asyncio.Event | None = None) -> None:
        super().__init__("grpc://127.0.0.1:1")
        self.models = {"reranker": MODEL}
        self.failure, self.gate = failure, gate
        self.calls: list[dict] = []
        self.refreshes = 0

    async def refresh(self):
        self.refreshes += 1
        self._refreshed_at = time.monotonic()
        return self.models

    async def logits(self, model, query, documents, options):
        self.calls.append({"model": model.name, "documents": documents, **dataclasses.asdict(options)})
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise api_error(self.failure)
        return np.array([len(d) / 10 for d in documents], dtype=np.float32), np.array([len(d) for d in documents])


def client_for(service: RerankService, **settings) -> httpx.AsyncClient:
    app = create_app(ApiSettings(**settings), service)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


COHERE_BODY = {"model": "reranker", "query": "q", "documents": ["a", "bbb", "cc"]}
TEI_BODY = {"query": "q", "texts": ["a", "bbb", "cc"]}


@pytest.mark.parametrize(
    ("failure", "status", "tei_type"),
    [
        (ServerOverloadedError("queue full"), 429, "Overloaded"),
        (RerankTimeoutError("slow"), 504, "Backend"),
        (ServerUnavailableError("down"), 503, "Unhealthy"),
        (ModelNotReadyError("loading", model_name="reranker"), 503, "Unhealthy"),
        (RerankAuthError("key"), 500, "Backend"),
        (ServerResponseError("odd"), 500, "Backend"),
        (InvalidScoresError("reranker scored 1 of 3 documents NaN"), 500, "Backend"),
        (RerankInputError("DOCUMENTS[0] is not valid UTF-8"), 400, "Validation"),
    ],
)
async def test_each_triton_failure_has_its_status_on_every_route(failure, status, tei_type):
    async with client_for(StandIn(failure)) as client:
        cohere = await client.post("/v2/rerank", json=COHERE_BODY)
        jina = await client.post("/v1/rerank", json=COHERE_BODY)
        tei = await client.post("/rerank", json=TEI_BODY)
    assert cohere.status_code == status and set(cohere.json()) == {"id", "message"}
    # An input error is 422 where the reference answers a bad body so (Jina's FastAPI, TEI's axum).
    assert jina.status_code == (422 if status == 400 else status) and set(jina.json()) == {"detail"}
    tei_status = {400: 422, 500: 424}.get(status, status)
    assert tei.status_code == tei_status and tei.json()["error_type"] == tei_type
    assert "grpc://127.0.0.1:1" not in cohere.text + jina.text + tei.text  # Triton's address stays inside


async def test_scores_are_sigmoid_ordered_and_every_document_is_scored_whatever_top_n():
    service = StandIn()
    async with client_for(service) as client:
        answer = (await client.post("/v2/rerank", json={**COHERE_BODY, "top_n": 1})).json()
        raw = (await client.post("/rerank", json={**TEI_BODY, "raw_scores": True})).json()
    assert service.calls[0]["documents"] == ["a", "bbb", "cc"]  # all three scored for top_n 1
    assert answer["results"] == [{"index": 1, "relevance_score": pytest.approx(1 / (1 + np.exp(-0.3)))}]
    assert answer["meta"] == {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    assert [r["index"] for r in raw] == [1, 2, 0] and raw[0]["score"] == pytest.approx(0.3)


async def test_usage_is_the_tokens_the_model_read():
    async with client_for(StandIn()) as client:
        jina = (await client.post("/v1/rerank", json=COHERE_BODY)).json()
        tei = await client.post("/rerank", json=TEI_BODY)
    assert jina["usage"] == {"total_tokens": 6}
    assert tei.headers["x-compute-tokens"] == "6"


async def test_truncation_choices_reach_the_client_as_each_api_promises():
    service = StandIn()
    async with client_for(service, auto_truncate=False) as client:
        await client.post("/v2/rerank", json={**COHERE_BODY, "max_tokens_per_doc": 64})
        await client.post("/rerank", json={**TEI_BODY, "truncation_direction": "Left"})
        await client.post("/rerank", json={**TEI_BODY, "truncate": True})
        refused = await client.post("/v1/rerank", json={**COHERE_BODY, "truncate_prompt_tokens": 100})
    assert service.calls[0]["max_tokens_per_doc"] == 64
    assert service.calls[1]["truncate"] is False and service.calls[1]["truncation_direction"] == "left"
    assert service.calls[2]["truncate"] is True
    assert refused.status_code == 422 and "truncate_prompt_tokens=100 is not supported" in refused.json()["detail"]


async def test_requests_over_the_concurrency_limit_are_answered_429_at_once():
    gate = asyncio.Event()
    async with client_for(StandIn(gate=gate), max_concurrent_requests=1) as client:
        first = asyncio.create_task(client.post("/v2/rerank", json=COHERE_BODY))
        await asyncio.sleep(0.05)
        second = await client.post("/v2/rerank", json=COHERE_BODY)
        gate.set()
        assert (await first).status_code == 200
    assert second.status_code == 429 and "too many requests" in second.json()["message"]


async def test_a_bug_is_answered_500_and_the_service_goes_on():
    class Broken(StandIn):
        async def logits(self, model, query, documents, options):
            raise KeyError("oops")

    async with client_for(Broken()) as client:
        broken = await client.post("/rerank", json=TEI_BODY)
        health = await client.get("/metrics")
    assert broken.status_code == 500 and broken.json() == {"error": "internal error", "error_type": "Backend"}
    assert health.status_code == 200 and 'status="500"' in health.text


async def test_admission_counts_rows_so_a_large_request_weighs_what_it_costs():
    """With 100 rows on Triton at most, an 80-document request in flight leaves room for 20 more
    documents, not for another request of 30: that one is refused at once, and never reaches Triton."""
    gate = asyncio.Event()
    service = StandIn(gate=gate)
    budget = {"max_concurrent_rows": 100, "max_documents": 100, "max_rows_per_request": 100}
    body = {"model": "reranker", "query": "q"}
    async with client_for(service, **budget) as client:
        large = asyncio.create_task(client.post("/v2/rerank", json=body | {"documents": ["d"] * 80}))
        await asyncio.sleep(0.05)
        refused = await client.post("/v2/rerank", json=body | {"documents": ["d"] * 30})
        fits = asyncio.create_task(client.post("/v2/rerank", json=body | {"documents": ["d"] * 20}))
        await asyncio.sleep(0.05)
        scrape = (await client.get("/metrics")).text
        gate.set()
        assert (await large).status_code == 200 and (await fits).status_code == 200
        after = (await client.get("/metrics")).text
    assert refused.status_code == 429 and "busy with 80 of its 100 rows" in refused.json()["message"]
    assert [len(call["documents"]) for call in service.calls] == [80, 20]
    assert "rerank_api_rows_in_flight 100.0" in scrape and "rerank_api_rows_in_flight 0.0" in after


def test_settings_refuse_a_row_budget_the_largest_request_would_never_fit():
    with pytest.raises(RerankInputError, match="the largest request would never be admitted"):
        ApiSettings(max_concurrent_rows=2000)  # below the 4,096 rows a request may become


async def test_a_rerank_handler_is_cancelled_when_its_caller_disconnects():
    """The ASGI server says http.disconnect once the body is in: the handler's work (its Triton
    call) is cancelled at once, and the access log gets 499."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    class Slow(StandIn):
        async def logits(self, model, query, documents, options):
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    app = create_app(ApiSettings(), Slow())
    body = orjson.dumps(COHERE_BODY)
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await started.wait()  # the caller goes away while Triton scores
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v2/rerank", "raw_path": b"/v2/rerank", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("api", 80),
    }  # fmt: skip
    await asyncio.wait_for(app(scope, receive, send), timeout=5)  # not the 60 s the work would take
    assert cancelled.is_set()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499


def test_dialects_follow_their_references():
    assert COHERE.body("empty", "list of documents must not be empty")["message"] == (
        "invalid request: list of documents must not be empty"
    )
    assert TEI.body("empty", "`texts` cannot be empty") == {"error": "`texts` cannot be empty", "error_type": "Empty"}
    assert JINA.body("not_found", "no such model") == {"detail": "no such model"}
    assert [COHERE.status(p) for p in ("invalid", "too_large", "unauthorized")] == [400, 413, 401]
    assert [TEI.status(p) for p in ("invalid", "empty", "backend")] == [422, 400, 424]
    assert set(STATUS) == {"malformed", "invalid", "empty", "unauthorized", "not_found", "too_large", "too_slow",
                           "overloaded", "unavailable", "timeout", "backend"}  # fmt: skip
    assert [JINA.status(p) for p in ("too_slow", "overloaded", "unavailable")] == [408, 429, 503]


def test_api_error_keeps_the_servers_words_for_input_errors_only():
    assert api_error(RerankInputError("documents[2] must be a str")).message == "documents[2] must be a str"
    unavailable = api_error(ServerUnavailableError("Triton at grpc://10.0.0.5:8001 is unreachable"))
    assert (unavailable.problem, unavailable.message) == ("unavailable", "the reranker is unavailable; try again later")


def test_api_flags_are_the_settings_fields():
    from triton_rerank.cli import build_parser

    args = build_parser().parse_args(["api", "--port", "9000", "--no-auto-truncate", "--model-alias", "a=reranker"])
    assert (args.port, args.auto_truncate, args.max_documents, args.model_alias) == (9000, False, 1000, ["a=reranker"])


async def test_long_documents_come_from_the_request_or_else_the_service():
    service = StandIn()
    async with client_for(service, long_documents="max", max_chunks_per_doc=8) as client:
        await client.post("/v2/rerank", json=COHERE_BODY)
        await client.post("/rerank", json={**TEI_BODY, "long_documents": "first"})
        bad = await client.post("/v1/rerank", json={**COHERE_BODY, "long_documents": "sum"})
    assert service.calls[0]["long_documents"] == "max" and service.calls[0]["max_chunks_per_doc"] == 8
    assert service.calls[1]["long_documents"] == "first"  # today's path
    assert bad.status_code == 422 and bad.json()["detail"].startswith("long_documents: Input should be")


async def test_probes_and_scrapers_answer_while_the_rerank_routes_are_at_their_limit():
    """A pod busy with reranks is not a dead pod: liveness (/health) and readiness (/ready) answer."""
    gate = asyncio.Event()
    async with client_for(StandIn(gate=gate), max_concurrent_requests=1) as client:
        busy = asyncio.create_task(client.post("/v2/rerank", json=COHERE_BODY))
        await asyncio.sleep(0.05)
        probes = [await client.get(path) for path in ("/metrics", "/health", "/ready", "/info", "/v1/models")]
        refused = await client.post("/rerank", json=TEI_BODY)
        gate.set()
        assert (await busy).status_code == 200
    assert [p.status_code for p in probes] == [200, 200, 200, 200, 200]
    assert refused.status_code == 429 and refused.json()["error_type"] == "Overloaded"


async def test_a_request_may_choose_only_the_long_document_policies_the_operator_allows():
    service = StandIn()
    async with client_for(service, allowed_long_documents="first,error") as client:
        refused = await client.post("/v2/rerank", json={**COHERE_BODY, "long_documents": "max"})
        tei = await client.post("/rerank", json={**TEI_BODY, "long_documents": "mean"})
        allowed = await client.post("/v2/rerank", json={**COHERE_BODY, "long_documents": "error"})
    assert refused.status_code == 400
    assert "long_documents 'max' is not allowed by this service; allowed: first, error" in refused.json()["message"]
    assert tei.status_code == 422 and tei.json()["error_type"] == "Validation"
    assert allowed.status_code == 200 and [c["long_documents"] for c in service.calls] == ["error"]


async def test_the_services_own_policy_is_always_allowed():
    service = StandIn()
    async with client_for(service, long_documents="max", allowed_long_documents="first") as client:
        assert (await client.post("/v2/rerank", json=COHERE_BODY)).status_code == 200
    assert service.calls[0]["long_documents"] == "max"


async def test_a_request_that_may_become_more_rows_than_the_budget_is_refused_before_triton():
    service = StandIn()
    long = "many words " * 100  # 1,100 bytes: may be longer than the 512 tokens the model reads
    body = {"model": "reranker", "query": "q", "long_documents": "max"}
    async with client_for(service, max_rows_per_request=64, max_chunks_per_doc=8) as client:
        fits = await client.post("/v2/rerank", json={**body, "documents": [long] * 8})  # 8 x 8 windows = 64
        over = await client.post("/v2/rerank", json={**body, "documents": [long] * 8 + ["short"]})
        truncated = await client.post("/v2/rerank", json={**COHERE_BODY, "documents": [long] * 100})
    assert fits.status_code == 200 and truncated.status_code == 200
    assert over.status_code == 400 and "as 65 windows" in over.json()["message"]
    assert "at most 64 per request" in over.json()["message"]
    assert len(service.calls) == 2  # the refused one never reached Triton


def test_settings_refuse_unknown_policies_and_a_budget_below_one_document():
    with pytest.raises(ValueError, match="unknown policies .'sum'."):
        ApiSettings(allowed_long_documents="first,sum")
    with pytest.raises(ValueError, match="must be at least --max-chunks-per-doc"):
        ApiSettings(max_rows_per_request=8, max_chunks_per_doc=32)


def test_the_api_key_never_shows_in_a_repr():
    settings = ApiSettings(api_key="s3cret-key")
    assert "s3cret-key" not in repr(settings) and "s3cret-key" not in str(settings)
    assert settings.api_key == "s3cret-key"


async def test_info_and_models_look_at_triton_at_most_once_per_refresh_interval():
    service = StandIn()
    async with client_for(service) as client:
        for _ in range(20):
            assert (await client.get("/info")).status_code == 200
            assert (await client.get("/v1/models")).status_code == 200
    assert service.refreshes == 1


async def test_the_access_log_line_names_the_request_route_status_model_and_documents(caplog):
    from triton_rerank.api.observe import ACCESS_LOGGER

    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        async with client_for(StandIn()) as client:
            answer = await client.post("/v2/rerank", json=COHERE_BODY, headers={"x-request-id": "abc-1"})
            refused = await client.post("/v2/rerank", json={**COHERE_BODY, "model": "absent"})
    assert answer.headers["x-request-id"] == "abc-1"
    ok, missing = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    # (trace_id too, where a tracer provider records: another test in this process may have set one)
    assert re.fullmatch(r"POST /v2/rerank 200 request_id=abc-1 (trace_id=[0-9a-f]{32} )?ms=[0-9.]+ model=reranker "
                        r"documents=3", ok.getMessage()), ok.getMessage()  # fmt: skip
    assert (missing.status, missing.request_id) == (404, refused.headers["x-request-id"])
    assert missing.model is None  # refused before a model was chosen
