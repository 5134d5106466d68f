"""Request ids and tracing without a server: ids are checked, the OTEL_* variables are read as the
specification says, Triton's trace flags are built, and without OpenTelemetry nothing changes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from triton_rerank import tracing
from triton_rerank.errors import RerankInputError


@pytest.mark.parametrize("good", ["a", "order-42", "x" * 128, "550e8400-e29b-41d4-a716-446655440000"])
def test_request_ids_of_visible_ascii_are_taken_as_given(good):
    assert tracing.check_request_id(good) == good


@pytest.mark.parametrize(
    ("bad", "message"),
    [("", "non-empty"), (None, "non-empty"), (42, "non-empty"), ("x" * 129, "at most 128"), ("a b", "visible ASCII"),
     ("café", "visible ASCII"), ("line\nbreak", "visible ASCII")],
)  # fmt: skip
def test_other_request_ids_are_refused_saying_why(bad, message):
    with pytest.raises(RerankInputError, match=message):
        tracing.check_request_id(bad)


def test_a_request_id_holds_inside_its_block_only():
    assert tracing.request_id() is None
    with tracing.requested("outer"):
        with tracing.requested(None):  # None keeps the current one
            assert tracing.request_id() == "outer"
        with tracing.requested("inner"):
            assert tracing.request_id() == "inner"
        assert tracing.request_id() == "outer"
    assert tracing.request_id() is None


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_traces_are_exported_only_when_the_standard_variables_ask(monkeypatch, env, wanted):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
                 "OTEL_SDK_DISABLED"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.exporter_configured() is wanted
    if not wanted:
        assert tracing.configure("svc") is False  # and nothing was installed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter 'zipkin'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
    ],
)
def test_an_exporter_this_service_cannot_make_is_refused_by_name(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RerankInputError, match=message):
        tracing.configure("svc")


def test_the_api_command_exports_traces_as_the_variables_say():
    """In a process of its own (a tracer provider is set once per process): a span reaches an OTLP
    receiver over HTTP, under the service name the variables give."""
    from benchmarks.otlp_receiver import OtlpReceiver

    code = (
        "from opentelemetry import trace; from triton_rerank import tracing; "
        "assert tracing.configure('triton-rerank-api'); "
        "span = tracing.span('probe', answer=42); span.__enter__(); span.__exit__(None, None, None); "
        "trace.get_tracer_provider().shutdown()"
    )
    with OtlpReceiver() as receiver:
        env = {"PATH": "/usr/bin:/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "mine"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    (span,) = receiver.spans
    assert (span.service, span.name, span.attributes) == ("mine", "probe", {"answer": 42})


def test_without_opentelemetry_requests_keep_their_ids_and_nothing_is_traced():
    """The API and the clients with the trace extra absent (its import blocked)."""
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if not installed
import asyncio, httpx
from triton_rerank import tracing
from triton_rerank.api.app import create_app
from triton_rerank.api.observe import server_span_middleware
from triton_rerank.api.settings import ApiSettings
assert not tracing.enabled() and tracing.trace_headers() == {} and tracing.trace_id() is None
assert server_span_middleware() == []
with tracing.span("x", a=1) as opened:
    assert opened is None
async def main():
    app = create_app(ApiSettings(triton_url="grpc://127.0.0.1:1"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        answer = await api.get("/health", headers={"x-request-id": "plain-1"})
        print(answer.status_code, answer.headers["x-request-id"])
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200", "plain-1"]


def test_triton_trace_flags_and_their_checks():
    flags = tracing.triton_flags("http://collector:4318/v1/traces", 0)
    assert "--trace-config=mode=opentelemetry" in flags and "--trace-config=rate=0" in flags
    assert "--trace-config=opentelemetry,url=http://collector:4318/v1/traces" in flags
    with pytest.raises(ValueError, match="OTLP/HTTP URL"):
        tracing.check_triton_tracing("collector:4317", 0)
    with pytest.raises(ValueError, match="trace_rate"):
        tracing.check_triton_tracing("http://c:4318/v1/traces", -1)


def test_serve_takes_the_trace_url_from_the_standard_variables(monkeypatch):
    from triton_rerank.commands.serve import otlp_traces_url

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert otlp_traces_url() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/")
    assert otlp_traces_url() == "http://jaeger:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:4318/v1/traces")
    assert otlp_traces_url() == "http://other:4318/v1/traces"
