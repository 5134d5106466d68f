"""What every request goes through before its route, as plain ASGI middleware: metrics (outermost,
so that refusals are counted too), the API key, and the concurrency limit of the rerank routes. A
refusal is answered in the format of the API the route belongs to (``routes.ROUTES``)."""

from __future__ import annotations

import hmac
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from triton_rerank.api.routes import OPEN_PATHS, RERANK_PATHS, ROUTES, error_response
from triton_rerank.api.schemas import JINA, ApiError


class Metrics:
    """Prometheus metrics of one app (its own registry, so that several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rerank_api_requests", "Requests by route and status code", ["route", "status"], registry=self.registry
        )
        self.documents = Counter(
            "rerank_api_documents", "Documents scored, by route", ["route"], registry=self.registry
        )
        self.documents_per_request = Histogram(
            "rerank_api_request_documents",
            "Documents per rerank request, by route",
            ["route"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.latency = Histogram(
            "rerank_api_request_seconds",
            "Time from request to response, by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )

        self.rows_in_flight = Gauge(
            "rerank_api_rows_in_flight",
            "Rows (pairs) the rerank requests have on Triton now, against --max-concurrent-rows",
            registry=self.registry,
        )

    def count_documents(self, route: str, documents: int) -> None:
        self.documents.labels(route).inc(documents)
        self.documents_per_request.labels(route).observe(documents)


class ScoreCacheCollector:
    """The score cache's lookups by result (hit, miss) and its store's errors, read at each scrape:
    the dashboard's hit ratio is hit / (hit + miss)."""

    def __init__(self, cache) -> None:
        self.cache = cache

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        counts = self.cache.counts
        lookups = CounterMetricFamily(
            "rerank_api_score_cache_lookups", "Score cache lookups of a pair, by result", labels=["result"]
        )
        lookups.add_metric(["hit"], counts.hits)
        lookups.add_metric(["miss"], counts.misses)
        yield lookups
        yield CounterMetricFamily(
            "rerank_api_score_cache_errors",
            "Score cache store failures (the pairs were computed instead)",
            value=counts.errors,
        )


def refuse(scope: Scope, err: ApiError):
    """The refusal of a request to ``scope``'s route, in its API's format."""
    dialect = ROUTES[scope["path"]][2] if scope["path"] in ROUTES else JINA
    return error_response(dialect, err)


class MetricsMiddleware:
    """Counts each request to a known route by status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in ROUTES:
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(scope["path"], str(status)).inc()
            self.metrics.latency.labels(scope["path"]).observe(time.perf_counter() - started)


class ApiKeyMiddleware:
    """``Authorization: Bearer <key>`` on every route but the probes', compared in constant time; the
    key is never echoed."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            scheme, _, given = Request(scope).headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.key):
                refusal = ApiError("unauthorized", "missing or wrong API key (send Authorization: Bearer <key>)")
                await refuse(scope, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ConcurrencyLimitMiddleware:
    """At most ``limit`` rerank requests at once; more are answered 429 at once. Other routes (the
    probes, /metrics) are never limited, so a busy pod is not taken for a dead one."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit, self.in_flight = app, limit, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in RERANK_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            refusal = ApiError("overloaded", "too many requests at once; try again later")
            await refuse(scope, refusal)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
