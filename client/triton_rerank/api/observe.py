"""What an operator sees of each request: its id, its trace and its log line.

``RequestContextMiddleware`` gives every request an id (``X-Request-Id`` as sent, or a new one),
answers with it, runs the request inside it (``tracing.requested``: every Triton call made for it
carries it) and, with ``--access-log``, writes one line when it ends: route, status, milliseconds,
model, documents, request id and trace id. ``--log-format json`` makes every line of the service a
JSON object with those fields (python-json-logger). ``server_span_middleware`` is OpenTelemetry's
ASGI middleware (one SERVER span per request, honouring an incoming W3C ``traceparent``), when
the ``trace`` extra is installed.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import triton_rerank.tracing as tracing
from triton_rerank.api.middleware import refuse
from triton_rerank.api.schemas import ApiError
from triton_rerank.errors import RerankInputError

ACCESS_LOGGER = "triton_rerank.api.access"
access_log = logging.getLogger(ACCESS_LOGGER)
# Probes and scrapes: no server span (they would bury the requests), still an id and a log line.
UNTRACED_PATHS = ("/health", "/ready", "/metrics", "/openapi.json", "/docs")


class RequestContextMiddleware:
    """The request id, its response header and the access log line; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(tracing.REQUEST_ID_HEADER)
        request_id = tracing.new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", state["request_id"].encode())]
            await send(message)

        try:
            if given is not None:
                state["request_id"] = tracing.check_request_id(given)
        except RerankInputError as err:  # answered with the id made for it, so the refusal is traceable
            await refuse(scope, ApiError("malformed", f"X-Request-Id: {err}"))(scope, receive, send_with_id)
            self._log(scope, state, status, started)
            return
        with tracing.requested(state["request_id"]):
            tracing.annotate(**{tracing.REQUEST_ID_ATTRIBUTE: state["request_id"]})
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._log(scope, state, status, started)

    @staticmethod
    def _log(scope: Scope, state: dict, status: int, started: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        fields = {
            "request_id": state["request_id"],
            "trace_id": tracing.trace_id(),
            "method": scope["method"],
            "route": scope["path"],
            "status": status,
            "ms": round((time.perf_counter() - started) * 1e3, 3),
            "model": state.get("model"),
            "documents": state.get("documents"),
        }
        shown = " ".join(
            f"{k}={v}" for k, v in fields.items() if v is not None and k not in ("method", "route", "status")
        )
        access_log.info("%s %s %s %s", scope["method"], scope["path"], status, shown, extra=fields)


def server_span_middleware() -> list[Middleware]:
    """OpenTelemetry's ASGI middleware, outermost, when installed: the request's SERVER span, a
    child of the caller's ``traceparent`` if it sent one. Empty without the ``trace`` extra."""
    if not tracing.enabled():
        return []
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:  # the API alone, without the ASGI instrumentation: the client spans still record
        return []
    return [
        Middleware(OpenTelemetryMiddleware, excluded_urls=",".join(UNTRACED_PATHS), exclude_spans=["receive", "send"])
    ]


class _RequestFields(logging.Filter):
    """Puts the current request id and trace id on every record (a warning logged while serving
    a request names it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, current in (("request_id", tracing.request_id), ("trace_id", tracing.trace_id)):
            if getattr(record, name, None) is None and (value := current()) is not None:
                setattr(record, name, value)
        return True


def configure_logging(log_format: str, access: bool) -> None:
    """The service's log lines: ``text`` as every command writes them, or ``json`` (one object per
    line: time, level, logger, message, and the request's fields); ``access``: one line per request."""
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(_RequestFields())
        if log_format == "json":
            from pythonjsonlogger.json import JsonFormatter

            handler.setFormatter(
                JsonFormatter(
                    "%(asctime)s %(levelname)s %(name)s %(message)s",
                    rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                    datefmt="%Y-%m-%dT%H:%M:%S%z",
                )
            )
    access_log.setLevel(logging.INFO if access else logging.WARNING)
