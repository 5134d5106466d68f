"""Request ids and OpenTelemetry spans, shared by the rerank API, the clients and the pipeline.

A request id names one request everywhere it goes: the API takes it from ``X-Request-Id`` (or
makes one), the clients take ``request_id=``, and every Triton call made for that request carries
it as Triton's own inference request id, however many calls the documents are split into. It
lives in a context variable, so it follows the request through asyncio tasks and into the blocking
clients' event loop (``loop.run`` carries the caller's context).

Spans are OpenTelemetry's, and OpenTelemetry is optional (the ``trace`` extra): without it,
``span`` is a null context and ``trace_headers`` is empty, so nothing changes. With it, each Triton
call gets a ``triton.infer`` span and the W3C ``traceparent`` of that span in its headers (HTTP) or
metadata (gRPC), so that a Triton started in OpenTelemetry trace mode puts its own spans (the
ensemble, each step, queue and compute) under it. ``configure`` installs the SDK's exporter as
the standard ``OTEL_*`` variables say.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

from triton_rerank.errors import RerankInputError

try:  # the `trace` extra
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - exercised by tests/unit/test_tracing.py with the import blocked
    propagate = trace = None

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
REQUEST_ID_ATTRIBUTE = "triton_rerank.request_id"
TRACER_NAME = "triton_rerank"

# Made once (it follows the provider set later, as OpenTelemetry's proxy does): span() is on the hot path.
_tracer = trace.get_tracer(TRACER_NAME) if trace is not None else None
_request_id: ContextVar[str | None] = ContextVar("triton_rerank_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def check_request_id(value: object) -> str:
    """A request id as given, when it is 1 to 128 visible ASCII characters (it goes into headers,
    logs and Triton's request id); anything else is refused, naming what is wrong."""
    if not isinstance(value, str) or not value:
        raise RerankInputError(f"request_id must be a non-empty string, got {value!r}")
    if len(value) > MAX_REQUEST_ID_LENGTH:
        raise RerankInputError(f"request_id must be at most {MAX_REQUEST_ID_LENGTH} characters, got {len(value)}")
    if not all("!" <= c <= "~" for c in value):
        raise RerankInputError(f"request_id must be visible ASCII characters (no spaces), got {value!r}")
    return value


def request_id() -> str | None:
    """The id of the request being served here, if any."""
    return _request_id.get()


@contextlib.contextmanager
def requested(request_id: str | None) -> Iterator[str | None]:
    """Everything inside runs for ``request_id`` (checked; ``None`` keeps the current one)."""
    if request_id is None:
        yield _request_id.get()
        return
    token = _request_id.set(check_request_id(request_id))
    try:
        yield request_id
    finally:
        _request_id.reset(token)


def enabled() -> bool:
    """Whether OpenTelemetry is installed (spans may record, if a provider is configured)."""
    return trace is not None


@contextlib.contextmanager
def span(name: str, **attributes) -> Iterator[object | None]:
    """A span named ``name`` under the current one, with ``attributes`` (None values left out) and
    the request id; a null context without OpenTelemetry."""
    if trace is None:
        yield None
        return
    attributes = {key: value for key, value in attributes.items() if value is not None}
    if (current := _request_id.get()) is not None:
        attributes[REQUEST_ID_ATTRIBUTE] = current
    with _tracer.start_as_current_span(name, attributes=attributes) as opened:
        yield opened


def annotate(**attributes) -> None:
    """Set ``attributes`` on the current span (the API's SERVER span, say); nothing without one."""
    if trace is not None:
        trace.get_current_span().set_attributes({k: v for k, v in attributes.items() if v is not None})


def trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``) for a call out;
    empty without OpenTelemetry or outside a recorded span."""
    if propagate is None:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def trace_id() -> str | None:
    """The current trace's id in hex (for log lines), or None."""
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def exporter_configured() -> bool:
    """Whether the standard variables ask for traces to be exported: an OTLP endpoint, or an
    explicit ``OTEL_TRACES_EXPORTER`` other than ``none`` (and the SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(service_name: str) -> bool:
    """Install the SDK's tracer provider with the exporters the ``OTEL_*`` variables name
    (``otlp``, the default, over ``OTEL_EXPORTER_OTLP_PROTOCOL``; or ``console``), the sampler
    ``OTEL_TRACES_SAMPLER`` names and the resource ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
    describe (``service_name`` when they name none). True when traces will be exported; False,
    changing nothing, when the variables ask for none. Asking without the ``trace`` extra is an error."""
    if not exporter_configured():
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise RerankInputError(
            "OTEL_* variables ask for traces, but OpenTelemetry is not installed: pip install 'triton-rerank[trace]'"
        ) from None
    defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(defaults))
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    for name in names:
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        elif name != "none":
            raise RerankInputError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; this service takes otlp, console")
    trace.set_tracer_provider(provider)
    log.warning("exporting traces (%s) as service %s", ", ".join(names), provider.resource.attributes[SERVICE_NAME])
    return True


def _otlp_exporter():
    """OTLP over ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL``: http/protobuf (the default, as the
    specification says) or grpc; endpoint, headers and timeout from their own variables."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise RerankInputError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc installed; "
                "or use http/protobuf (the trace extra's)"
            ) from None
        return OTLPSpanExporter()
    if protocol != "http/protobuf":
        raise RerankInputError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def check_triton_tracing(url: str | None, rate: int) -> None:
    """Settings for Triton's OpenTelemetry trace mode, as ``triton_flags`` takes them."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"trace_url must be an OTLP/HTTP URL (http://host:4318/v1/traces), got {url!r}")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
        raise ValueError(f"trace_rate must be 0 (only requests with a trace context) or more, got {rate!r}")


def triton_flags(url: str, rate: int) -> list[str]:
    """``tritonserver``'s flags for its OpenTelemetry trace mode, exporting OTLP/HTTP to ``url``: every
    request that arrives with a W3C trace context is traced under it (Triton 24.01+), and 1 in
    ``rate`` of the others (0: none)."""
    return [
        "--trace-config=mode=opentelemetry",
        "--trace-config=level=TIMESTAMPS",
        f"--trace-config=rate={rate}",
        "--trace-config=count=-1",
        f"--trace-config=opentelemetry,url={url}",
        "--trace-config=opentelemetry,resource=service.name=triton-inference-server",
    ]
