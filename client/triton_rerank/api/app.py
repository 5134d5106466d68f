"""The rerank HTTP API: Cohere's, Jina's / vLLM's and TEI's rerank routes in front of Triton.

    POST /v2/rerank    Cohere v2     -> {id, results: [{index, relevance_score}], meta}
    POST /v1/rerank    Jina / vLLM   -> {id, model, results: [{index, relevance_score, document?}], usage}
    POST /rerank       TEI           -> [{index, score, text?}]   (a vLLM-shaped body: vLLM's answer)
    GET  /health  /info  /metrics  /v1/models

Built on Starlette (the ASGI toolkit under FastAPI, vLLM's and Infinity's servers) and served by
uvicorn. Bodies are parsed here, not by a framework, because ``/rerank`` takes two shapes and every
route answers errors in its own API's format (``schemas.Dialect``). ``relevance_score`` is the
sigmoid of the model's logit, in [0, 1], as Cohere and Jina users expect; TEI's ``raw_scores`` gives
the logit. Every document is scored; ``top_n`` only cuts the answer.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from triton_rerank.api.schemas import (
    COHERE,
    JINA,
    TEI,
    ApiError,
    Body,
    CohereRerank,
    Dialect,
    JinaRerank,
    TeiRerank,
    describe,
)
from triton_rerank.api.service import RerankService, ServedModel
from triton_rerank.api.settings import ApiSettings
from triton_rerank.client import activate, rank

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health", "/metrics")  # probes and scrapers need no key


class _Metrics:
    """Prometheus metrics of one app (its own registry, so that several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rerank_api_requests", "Requests by route and status code", ["route", "status"], registry=self.registry
        )
        self.documents = Counter(
            "rerank_api_documents", "Documents scored, by route", ["route"], registry=self.registry
        )
        self.latency = Histogram(
            "rerank_api_request_seconds",
            "Time from request to response, by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )


def create_app(settings: ApiSettings, service: RerankService | None = None) -> Starlette:
    """The ASGI app for ``settings``; ``service`` defaults to one on ``settings.triton_url``."""
    service = service or RerankService(
        settings.triton_url,
        default_model=settings.default_model,
        aliases=dict(settings.aliases),
        timeout_s=settings.timeout_s,
        batch_size=settings.batch_size,
    )
    metrics = _Metrics()
    in_flight = 0

    async def read(request: Request) -> dict:
        """The body as a JSON object, read up to the size limit."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            raise ApiError("too_large", f"the body is {int(length):,} bytes; the limit is {settings.max_body_bytes:,}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise ApiError("too_large", f"the body is over the limit of {settings.max_body_bytes:,} bytes")
            chunks.append(chunk)
        try:
            data = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as err:
            raise ApiError("malformed", f"the body is not valid JSON (UTF-8): {err}") from None
        if not isinstance(data, dict):
            raise ApiError("invalid", f"body: expected a JSON object, got {type(data).__name__}")
        return data

    def validate(schema: type[Body], data: dict) -> Body:
        try:
            return schema.model_validate(data)
        except ValidationError as err:
            raise ApiError("invalid", describe(err)) from None

    def check_documents(documents: list[str], field_name: str) -> None:
        if len(documents) > settings.max_documents:
            raise ApiError(
                "invalid",
                f"{field_name} holds {len(documents):,} documents; this service takes at most "
                f"{settings.max_documents:,} per request",
            )

    async def score(route: str, body: Body, model: ServedModel, query: str, documents: list[str], **options):
        """(logits, token counts or None), one per document; long documents as the body or the service says."""
        metrics.documents.labels(route).inc(len(documents))
        policy = body.long_documents or settings.long_documents
        if policy in ("max", "mean"):
            options.update(long_documents=policy, max_chunks_per_doc=settings.max_chunks_per_doc)
        elif policy == "error":
            options.update(long_documents=policy)
        if body.instruction is not None:
            options.update(instruction=body.instruction)
        return await service.logits(model, query, documents, **options)

    # --- the rerank routes ---------------------------------------------------------------------

    async def cohere_rerank(request: Request) -> Response:
        body = validate(CohereRerank, await read(request))
        model = await service.resolve(body.model)
        if not body.documents:
            raise ApiError("empty", "list of documents must not be empty")
        check_documents(body.documents, "documents")
        truncation = {"max_tokens_per_doc": body.max_tokens_per_doc} if body.max_tokens_per_doc else {}
        logits, _ = await score("/v2/rerank", body, model, body.query, body.documents, **truncation)
        relevance = activate(logits, "sigmoid")
        results = rank(body.documents, relevance, body.top_n)
        return JSONResponse(
            {
                "id": str(uuid.uuid4()),
                "results": [{"index": r.index, "relevance_score": r.score} for r in results],
                "meta": {
                    "api_version": {"version": "2"},
                    "billed_units": {"search_units": math.ceil(len(body.documents) / 100)},
                },
            }
        )

    async def jina_rerank(route: str, body: JinaRerank) -> Response:
        model = await service.resolve(body.model)
        documents = body.texts()
        check_documents(documents, "documents")
        limit = body.truncate_prompt_tokens
        if limit not in (None, -1) and (model.max_length is None or limit < model.max_length):
            raise ApiError(
                "invalid",
                f"truncate_prompt_tokens={limit} is not supported: pairs are truncated at the model's max_length "
                f"({model.max_length}); send -1 or leave it out",
            )
        logits, tokens = (
            await score(route, body, model, body.query, documents) if documents else (np.empty(0), np.empty(0))
        )
        results = rank(documents, activate(logits, "sigmoid"), body.top_n or None)
        answer = {
            "id": f"rerank-{uuid.uuid4().hex}",
            "model": body.model or model.name,
            "results": [
                {"index": r.index, "relevance_score": r.score}
                | ({"document": {"text": r.text}} if body.return_documents else {})
                for r in results
            ],
        }
        if tokens is not None:  # the tokens the model read, as Jina and vLLM report them
            answer["usage"] = {"total_tokens": int(tokens.sum())}
        return JSONResponse(answer)

    async def v1_rerank(request: Request) -> Response:
        return await jina_rerank("/v1/rerank", validate(JinaRerank, await read(request)))

    async def tei_rerank(request: Request) -> Response:
        data = await read(request)
        if "texts" not in data and "documents" in data:  # vLLM's shape (Milvus' vllm provider posts it here)
            return await jina_rerank("/rerank", validate(JinaRerank, data))
        body = validate(TeiRerank, data)
        if not body.texts:
            raise ApiError("empty", "`texts` cannot be empty")
        check_documents(body.texts, "texts")
        model = await service.resolve(None)
        truncate = settings.auto_truncate if body.truncate is None else body.truncate
        logits, tokens = await score(
            "/rerank",
            body,
            model,
            body.query,
            body.texts,
            truncate=truncate,
            truncation_direction=body.truncation_direction.lower(),
        )
        scores = logits if body.raw_scores else activate(logits, "sigmoid")
        headers = {"x-compute-tokens": str(int(tokens.sum()))} if tokens is not None else None  # as TEI
        return JSONResponse(
            [
                {"index": r.index, "score": r.score} | ({"text": r.text} if body.return_text else {})
                for r in rank(body.texts, scores, None)
            ],
            headers=headers,
        )

    # --- the other routes ------------------------------------------------------------------------

    async def health(request: Request) -> Response:
        if await service.ready():
            return Response(status_code=200)
        raise ApiError("unavailable", f"the default model {settings.default_model!r} is not ready on Triton")

    async def info(request: Request) -> Response:
        models = await service.refresh()
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
                "max_chunks_per_doc": settings.max_chunks_per_doc,
                "routes": sorted(handlers),
            }
        )

    async def v1_models(request: Request) -> Response:
        await service.refresh()
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "triton"} for name in service.names()
                ],
            }
        )

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- what every request goes through -----------------------------------------------------------

    handlers: dict[str, tuple[Dialect, Callable[[Request], Awaitable[Response]], str]] = {
        "/v2/rerank": (COHERE, cohere_rerank, "POST"),
        "/v1/rerank": (JINA, v1_rerank, "POST"),
        "/rerank": (TEI, tei_rerank, "POST"),
        "/health": (TEI, health, "GET"),
        "/info": (JINA, info, "GET"),
        "/metrics": (JINA, prometheus, "GET"),
        "/v1/models": (JINA, v1_models, "GET"),
    }

    def guarded(path: str):
        dialect, handler, _ = handlers[path]

        async def endpoint(request: Request) -> Response:
            nonlocal in_flight
            started = time.perf_counter()
            in_flight += 1
            try:
                if in_flight > settings.max_concurrent_requests:
                    raise ApiError("overloaded", "too many requests at once; try again later")
                if settings.api_key and path not in OPEN_PATHS:
                    check_key(request.headers.get("authorization", ""), settings.api_key)
                response = await handler(request)
            except ApiError as err:
                response = JSONResponse(dialect.body(err.problem, err.message), status_code=dialect.status(err.problem))
            except Exception:  # a bug of ours: answered, logged, never fatal to the service
                log.exception("unexpected error on %s", path)
                response = JSONResponse(dialect.body("backend", "internal error"), status_code=500)
            finally:
                in_flight -= 1
            metrics.requests.labels(path, str(response.status_code)).inc()
            metrics.latency.labels(path).observe(time.perf_counter() - started)
            return response

        return endpoint

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await service.refresh()
        if service.models:
            log.warning("serving rerankers %s from Triton at %s", ", ".join(service.names()), settings.triton_url)
        else:
            state = f"cannot be used ({service.failure})" if service.failure else "serves no reranker"
            log.warning("Triton at %s %s yet; looking again when asked", settings.triton_url, state)
        yield
        await service.close()

    routes = [Route(path, guarded(path), methods=[method]) for path, (_, _, method) in handlers.items()]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


def check_key(authorization: str, key: str) -> None:
    """``Authorization: Bearer <key>``, compared in constant time; the key is never echoed."""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise ApiError("unauthorized", "missing or wrong API key (send Authorization: Bearer <key>)")
