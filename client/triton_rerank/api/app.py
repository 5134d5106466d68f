"""The rerank HTTP API: Cohere's, Jina's / vLLM's and TEI's rerank routes in front of Triton.

    POST /v2/rerank    Cohere v2     -> {id, results: [{index, relevance_score}], meta}
    POST /v1/rerank    Jina / vLLM   -> {id, model, results: [{index, relevance_score, document?}], usage}
    POST /rerank       TEI           -> [{index, score, text?}]   (a vLLM-shaped body: vLLM's answer)
    POST /v1/search    the pipeline  -> {hits, candidates, timings_ms, request_id}   (with --milvus-uri)
    GET  /health (liveness)  /ready (readiness)  /info  /metrics  /v1/models  /openapi.json  /docs

Every request gets an id (``X-Request-Id``), carried to Triton, and, with the ``trace`` extra and
the ``OTEL_*`` variables set, a trace from here through every Triton call (``observe``).

Built on Starlette (the ASGI toolkit under FastAPI, vLLM's and Infinity's servers) and served by
uvicorn. ``create_app`` only wires: the handlers are ``routes``, what every request goes through is
``middleware``, what the routes share (models, policies, the Triton client) is ``service``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from triton_rerank.api.middleware import (
    ApiKeyMiddleware,
    ConcurrencyLimitMiddleware,
    Metrics,
    MetricsMiddleware,
    ScoreCacheCollector,
)
from triton_rerank.api.observe import RequestContextMiddleware, server_span_middleware
from triton_rerank.api.openapi import openapi_document
from triton_rerank.api.routes import ROUTES
from triton_rerank.api.search import Collections
from triton_rerank.api.service import RerankService
from triton_rerank.api.settings import ApiSettings
from triton_rerank.playground import ROUTES as PLAYGROUND
from triton_rerank.playground import load_judgements
from triton_rerank.score_cache import score_cache

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings, service: RerankService | None = None) -> Starlette:
    """The ASGI app for ``settings``; ``service`` defaults to one on ``settings.triton_url``."""
    service = service or RerankService(
        settings.triton_url,
        default_model=settings.default_model,
        aliases=dict(settings.aliases),
        timeout_s=settings.timeout_s,
        batch_size=settings.batch_size,
        score_cache=score_cache(settings.score_cache, max_bytes=settings.score_cache_mb << 20),
    )
    service.settings = settings  # the operator's policies and row budget, for a service given too
    collections = None
    if settings.milvus_uri:  # POST /v1/search: the pipeline over HTTP
        from triton_rerank.embed import AsyncTritonEmbedFunction

        collections = Collections(settings, AsyncTritonEmbedFunction(settings.triton_url, timeout_s=settings.timeout_s))
    metrics = Metrics()
    metrics.rows_in_flight.set_function(lambda: service.rows_in_use)
    if service.score_cache is not None:
        metrics.registry.register(ScoreCacheCollector(service.score_cache))
    middleware = [
        *server_span_middleware(),
        Middleware(RequestContextMiddleware),
        Middleware(MetricsMiddleware, metrics=metrics),
    ]
    if settings.api_key:
        middleware.append(Middleware(ApiKeyMiddleware, key=settings.api_key))
    middleware.append(Middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrent_requests))

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if service.score_cache is not None:
            await service.score_cache.start()  # a Redis that does not answer now is refused, not skipped
            log.warning("score cache: %s", service.score_cache.kind)
        await service.refresh()
        if service.models:
            log.warning("serving rerankers %s from Triton at %s", ", ".join(service.names()), settings.triton_url)
        else:
            state = f"cannot be used ({service.failure})" if service.failure else "serves no reranker"
            log.warning("Triton at %s %s yet; looking again when asked", settings.triton_url, state)
        if collections is not None:
            log.warning("POST /v1/search searches %s in Milvus at %s", settings.collection, settings.milvus_uri)
        yield
        await service.close()
        if collections is not None:
            await collections.close()

    routes = [Route(path, handler, methods=[method]) for path, (method, handler, _) in ROUTES.items()]
    routes += [Route(path, handler, methods=["GET"]) for path, handler in PLAYGROUND.items()]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings, app.state.service, app.state.metrics = settings, service, metrics
    app.state.collections = collections
    app.state.judgements = load_judgements(settings.qrels)  # read now: a bad file stops the start
    app.state.openapi = openapi_document()
    return app


@contextlib.contextmanager
def serving(settings: ApiSettings, startup_timeout_s: float = 30.0):
    """The API served by uvicorn on a thread of this process, for as long as the ``with`` lasts:
    yields its URL (the quick start shows it to the user this way, with no process of its own)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="triton-rerank-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the rerank API did not start on {settings.host}:{settings.port}")
        time.sleep(0.05)
    try:
        yield f"http://{settings.host}:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
