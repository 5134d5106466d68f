"""A small OTLP/HTTP trace receiver on loopback: what the tests and the tracing-overhead benchmark
export to, in place of a collector. It takes ``POST /v1/traces`` in OTLP's protobuf (what the
Python SDK sends) or JSON (what Triton's OpenTelemetry mode sends) and keeps every span it was sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # hex
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict = field(hash=False)


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def parse_protobuf(body: bytes) -> list[ReceivedSpan]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return spans


def _json_value(value: dict) -> object:
    for kind, found in value.items():
        return int(found) if kind == "intValue" else found  # OTLP JSON writes 64-bit ints as strings
    return None


def parse_json(body: bytes) -> list[ReceivedSpan]:
    """OTLP's JSON encoding (ids in hex, as its specification says)."""
    spans = []
    for resource_spans in json.loads(body).get("resourceSpans", []):
        attributes = resource_spans.get("resource", {}).get("attributes", [])
        resource = {a["key"]: _json_value(a.get("value", {})) for a in attributes}
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.get("name", ""),
                        trace_id=span.get("traceId", ""),
                        span_id=span.get("spanId", ""),
                        parent_id=span.get("parentSpanId", ""),
                        attributes={a["key"]: _json_value(a.get("value", {})) for a in span.get("attributes", [])},
                    )
                )
    return spans


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` ... ``receiver.url`` (its /v1/traces), ``receiver.spans``."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                kind = self.headers.get("content-type", "")
                if kind.startswith("application/json"):  # Triton's exporter (opentelemetry-cpp) sends JSON
                    spans = parse_json(body)
                elif kind.startswith("application/x-protobuf"):  # the Python SDK's
                    spans = parse_protobuf(body)
                else:
                    self.send_error(415, "OTLP/HTTP takes application/x-protobuf or application/json")
                    return
                with receiver._lock:
                    receiver.spans.extend(spans)
                    receiver.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{self.endpoint}/v1/traces"

    def __enter__(self) -> OtlpReceiver:
        threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, predicate, timeout_s: float = 30.0) -> list[ReceivedSpan]:
        """The spans of ``trace_id`` once ``predicate(spans)`` holds (exporters send in batches)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.of_trace(trace_id)
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)
