"""The routes of the rerank API, one handler per API at module level. Each reads what it needs from
``request.app.state`` (``settings``, ``service``, ``metrics``) and answers errors in its own API's
format (``schemas.Dialect``): a handler raises ``ApiError``, ``answers_in`` turns it into that
API's status and body, and turns a bug into a 500 that says "internal error" and is logged with its
traceback, never fatal to the service. A rerank handler ends with its caller: once the body is read,
the connection is watched, and a caller that goes away cancels the work, its Triton calls included
(vLLM's ``with_cancellation``).

Bodies are parsed here, not by a framework, because ``/rerank`` takes two shapes. ``relevance_score``
is the sigmoid of the model's logit, in [0, 1], as Cohere and Jina users expect; TEI's ``raw_scores``
gives the logit. Every document is scored; ``top_n`` only cuts the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import uuid
from collections.abc import Awaitable, Callable

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

import triton_rerank.tracing as tracing
from triton_rerank.api.openapi import docs_page
from triton_rerank.api.schemas import (
    COHERE,
    JINA,
    RETRY_AFTER_S,
    TEI,
    ApiError,
    Body,
    CohereRerank,
    Dialect,
    JinaRerank,
    TeiRerank,
    describe,
)
from triton_rerank.api.search import SearchRequest
from triton_rerank.api.search import search as search_answer
from triton_rerank.api.service import ServedModel
from triton_rerank.client import activate, rank
from triton_rerank.playground import PUBLIC_PATHS

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
CLIENT_CLOSED = 499  # nginx's status for a request whose caller went away first: what the access log shows


def error_response(dialect: Dialect, err: ApiError) -> JSONResponse:
    retry = {"retry-after": str(RETRY_AFTER_S[err.problem])} if err.problem in RETRY_AFTER_S else None
    return JSONResponse(dialect.body(err.problem, err.message), status_code=dialect.status(err.problem), headers=retry)


def answers_in(dialect: Dialect, *, cancellable: bool = False) -> Callable[[Handler], Handler]:
    """A handler whose ``ApiError`` (and any bug) is answered in ``dialect``; a ``cancellable`` one
    stops when its caller goes away (``until_disconnected``)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                return await (until_disconnected(request, handler) if cancellable else handler(request))
            except ApiError as err:
                return error_response(dialect, err)
            except Exception:  # a bug of ours: answered, logged with its traceback, never fatal to the service
                log.exception("internal error on %s", request.url.path)
                return JSONResponse(dialect.body("backend", "internal error"), status_code=500)

        return endpoint

    return wrap


async def until_disconnected(request: Request, handler: Handler) -> Response:
    """``handler(request)``, cancelled if the caller disconnects first. The body is read (within its
    limit) before the connection is watched, so that watching takes none of it."""
    request.state.body = await read_bytes(request)
    work = asyncio.ensure_future(handler(request))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():  # the caller went away (or the server stops): the work stops with it
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    if work.cancelled():
        log.info("the caller of %s went away: its request was cancelled", request.url.path)
        return Response(status_code=CLIENT_CLOSED)
    return work.result()


async def _disconnected(request: Request) -> None:
    """Returns once the ASGI server says the caller has gone."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def read_bytes(request: Request) -> bytes:
    """The body, read up to the size limit."""
    limit = request.app.state.settings.max_body_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError("too_large", f"the body is {int(length):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    most_s = request.app.state.settings.body_timeout_s
    try:
        async with asyncio.timeout(most_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError("too_large", f"the body is over the limit of {limit:,} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError("too_slow", f"the body was not sent within {most_s:g} s ({size:,} bytes came)") from None
    return b"".join(chunks)


async def read_json(request: Request) -> dict:
    """The body (read already, or now) as a JSON object."""
    body = getattr(request.state, "body", None)
    try:
        data = orjson.loads(body if body is not None else await read_bytes(request))
    except orjson.JSONDecodeError as err:
        raise ApiError("malformed", f"the body is not valid JSON (UTF-8): {err}") from None
    if not isinstance(data, dict):
        raise ApiError("invalid", f"body: expected a JSON object, got {type(data).__name__}")
    return data


def parse(schema: type[Body], data: dict) -> Body:
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise ApiError("invalid", describe(err)) from None


async def read_body(request: Request, schema: type[Body] | Callable[[dict], type[Body]]) -> Body:
    """The body read and parsed by ``schema`` (or by the schema ``schema(data)`` picks), in a span."""
    with tracing.span("parse"):
        data = await read_json(request)
        return parse(schema if isinstance(schema, type) else schema(data), data)


class FastJSONResponse(JSONResponse):
    """JSON by orjson: a search's answer (100 candidates' texts, ~190 KB) renders in 0.03 ms instead of
    1.2 ms with the json module (measured here). Starlette's compact UTF-8 output, byte for byte."""

    def render(self, content) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def answer(content, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer, rendered to JSON in a span of its own."""
    with tracing.span("answer"):
        return FastJSONResponse(content, headers=headers)


def check_document_count(request: Request, documents: list[str], field_name: str) -> None:
    most = request.app.state.settings.max_documents
    if len(documents) > most:
        raise ApiError(
            "invalid",
            f"{field_name} holds {len(documents):,} documents; this service takes at most {most:,} per request",
        )


async def score(
    request: Request, route: str, body: Body, model: ServedModel, query: str, documents: list[str], **choices
) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, token counts or None), one per document, with the body's long-document policy and
    instruction within what the service allows."""
    service = request.app.state.service
    if body.instruction is not None:
        choices["instruction"] = body.instruction
    options, rows = service.options(model, query, documents, long_documents=body.long_documents, **choices)
    request.state.model, request.state.documents = model.name, len(documents)  # for the access log
    tracing.annotate(**{"rerank.model": model.name, "rerank.documents": len(documents)})
    request.app.state.metrics.count_documents(route, len(documents))
    with service.admitted(rows):  # rows, not requests, are the cost
        return await service.logits(model, query, documents, options)


# --- the rerank routes -----------------------------------------------------------------------------


@answers_in(COHERE, cancellable=True)
async def cohere_rerank(request: Request) -> Response:
    """Cohere v2: {id, results: [{index, relevance_score}], meta}."""
    body = await read_body(request, CohereRerank)
    model = await request.app.state.service.resolve(body.model)
    if not body.documents:
        raise ApiError("empty", "list of documents must not be empty")
    check_document_count(request, body.documents, "documents")
    truncation = {"max_tokens_per_doc": body.max_tokens_per_doc} if body.max_tokens_per_doc else {}
    logits, _ = await score(request, "/v2/rerank", body, model, body.query, body.documents, **truncation)
    results = rank(body.documents, activate(logits, "sigmoid"), body.top_n)
    return answer(
        {
            "id": str(uuid.uuid4()),
            "results": [{"index": r.index, "relevance_score": r.score} for r in results],
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"search_units": math.ceil(len(body.documents) / 100)},
            },
        }
    )


async def _jina_answer(request: Request, route: str, body: JinaRerank) -> Response:
    """Jina / vLLM: {id, model, results: [{index, relevance_score, document?}], usage}."""
    model = await request.app.state.service.resolve(body.model)
    documents = body.texts()
    check_document_count(request, documents, "documents")
    limit = body.truncate_prompt_tokens
    if limit not in (None, -1) and (model.max_length is None or limit < model.max_length):
        raise ApiError(
            "invalid",
            f"truncate_prompt_tokens={limit} is not supported: pairs are truncated at the model's max_length "
            f"({model.max_length}); send -1 or leave it out",
        )
    if documents:
        logits, tokens = await score(request, route, body, model, body.query, documents)
    else:
        logits, tokens = np.empty(0), np.empty(0)
    results = rank(documents, activate(logits, "sigmoid"), body.top_n or None)
    content = {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": body.model or model.name,
        "results": [
            {"index": r.index, "relevance_score": r.score}
            | ({"document": {"text": r.text}} if body.return_documents else {})
            for r in results
        ],
    }
    if tokens is not None:  # the tokens the model read, as Jina and vLLM report them
        content["usage"] = {"total_tokens": int(tokens.sum())}
    return answer(content)


@answers_in(JINA, cancellable=True)
async def jina_rerank(request: Request) -> Response:
    return await _jina_answer(request, "/v1/rerank", await read_body(request, JinaRerank))


def tei_schema(data: dict) -> type[Body]:
    """TEI's body, or vLLM's shape (``documents`` instead of ``texts``), which Milvus' vllm provider posts here."""
    return JinaRerank if "texts" not in data and "documents" in data else TeiRerank


@answers_in(TEI, cancellable=True)
async def tei_rerank(request: Request) -> Response:
    """TEI: [{index, score, text?}]; a vLLM-shaped body (``documents``) gets vLLM's answer."""
    body = await read_body(request, tei_schema)
    if isinstance(body, JinaRerank):
        return await _jina_answer(request, "/rerank", body)
    if not body.texts:
        raise ApiError("empty", "`texts` cannot be empty")
    check_document_count(request, body.texts, "texts")
    model = await request.app.state.service.resolve(None)
    truncate = request.app.state.settings.auto_truncate if body.truncate is None else body.truncate
    direction = body.truncation_direction.lower()
    logits, tokens = await score(
        request, "/rerank", body, model, body.query, body.texts, truncate=truncate, truncation_direction=direction
    )
    scores = logits if body.raw_scores else activate(logits, "sigmoid")
    headers = {"x-compute-tokens": str(int(tokens.sum()))} if tokens is not None else None  # as TEI
    return answer(
        [
            {"index": r.index, "score": r.score} | ({"text": r.text} if body.return_text else {})
            for r in rank(body.texts, scores, None)
        ],
        headers=headers,
    )


@answers_in(JINA, cancellable=True)
async def search(request: Request) -> Response:
    """The pipeline over HTTP (``api.search``): {hits, candidates, timings_ms, request_id, ...}."""
    return answer(await search_answer(request, await read_body(request, SearchRequest)))


# --- the other routes ------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """Liveness: 200 while this process answers. It asks Triton nothing, so a Triton restart does
    not get the API restarted too (that is readiness' job)."""
    return Response(status_code=200)


async def ready(request: Request) -> Response:
    """Readiness: 200 with the served models when Triton answers (looked at no more than every few
    seconds) and the default model is ready there; else 503 saying why."""
    settings, service = request.app.state.settings, request.app.state.service
    models = await service.current()
    if service.failure is not None:
        reason = "Triton cannot be reached or refused the service (see its log)"
    elif settings.default_model not in models:
        reason = f"the default model {settings.default_model!r} is not ready on Triton"
    else:
        return JSONResponse({"status": "ready", "models": service.names()})
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)


@answers_in(JINA)
async def info(request: Request) -> Response:
    settings, service = request.app.state.settings, request.app.state.service
    models = await service.current()
    default = models.get(settings.default_model)
    return JSONResponse(
        {
            "models": [
                {"name": m.name, "max_input_length": m.max_length, "max_rows_per_request": m.max_rows_per_request}
                for m in models.values()
            ],
            "aliases": {a: t for a, t in settings.aliases.items() if t in models},
            "default_model": settings.default_model,
            "model_id": settings.default_model,
            "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
            "max_input_length": default.max_length if default else None,
            "max_client_batch_size": settings.max_documents,
            "max_concurrent_requests": settings.max_concurrent_requests,
            "auto_truncate": settings.auto_truncate,
            "long_documents": settings.long_documents,
            "allowed_long_documents": list(settings.allowed_policies()),
            "max_chunks_per_doc": settings.max_chunks_per_doc,
            "max_rows_per_request": settings.max_rows_per_request,
            "routes": sorted(ROUTES),
        }
    )


@answers_in(JINA)
async def v1_models(request: Request) -> Response:
    service = request.app.state.service
    await service.current()
    models = [{"id": name, "object": "model", "created": 0, "owned_by": "triton"} for name in service.names()]
    return JSONResponse({"object": "list", "data": models})


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_page("/openapi.json"))


async def prometheus(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# path -> (method, handler, the API whose format its errors take). The rerank routes do the work, so
# only they count against the concurrency limit; probes and scrapers always get an answer.
ROUTES: dict[str, tuple[str, Handler, Dialect]] = {
    "/v2/rerank": ("POST", cohere_rerank, COHERE),
    "/v1/rerank": ("POST", jina_rerank, JINA),
    "/rerank": ("POST", tei_rerank, TEI),
    "/v1/search": ("POST", search, JINA),
    "/health": ("GET", health, TEI),
    "/ready": ("GET", ready, TEI),
    "/info": ("GET", info, JINA),
    "/metrics": ("GET", prometheus, JINA),
    "/v1/models": ("GET", v1_models, JINA),
    "/openapi.json": ("GET", openapi_json, JINA),
    "/docs": ("GET", docs, JINA),
}
RERANK_PATHS = frozenset({"/v2/rerank", "/v1/rerank", "/rerank", "/v1/search"})
# Probes, scrapers and the API's description need no key.
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/openapi.json", "/docs"}) | PUBLIC_PATHS
