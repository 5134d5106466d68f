"""Serve a model repository with a real Triton Inference Server, in the foreground.

Prints one line once every model is ready; Ctrl-C (SIGINT) or SIGTERM stops it cleanly. With
$TRITON_RERANK_API_KEY set, every API but health needs that key (header x-api-key).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from triton_rerank.commands.common import add_repository
from triton_rerank.endpoints import TRITON_API_KEY_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repository(parser, "model repository to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--log-file", type=Path, help="keep the server log here (default: a temporary file)")
    parser.add_argument("--log-verbose", type=int, default=0, help="Triton's --log-verbose level")
    parser.add_argument(
        "--model-control",
        choices=["none", "explicit"],
        default="none",
        help="explicit: let `triton-rerank deploy` put a new reranker version in while serving (anyone who reaches "
        "the server, or holds its API key, may then load and unload models) (default: %(default)s)",
    )
    parser.add_argument(
        "--trace-url",
        default=otlp_traces_url(),
        help="trace in Triton's OpenTelemetry mode, exporting OTLP/HTTP here; requests that carry a trace context "
        "(the rerank API's, the clients') continue it (default: from $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "
        "$OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else off)",
    )
    parser.add_argument(
        "--trace-rate",
        type=int,
        default=0,
        help="with --trace-url, also trace 1 in N requests that carry no trace context (default: 0, none)",
    )
    parser.add_argument(
        "--response-cache-mb",
        type=int,
        default=0,
        help="size of Triton's response cache, for models exported with --response-cache (default: off)",
    )


def otlp_traces_url() -> str | None:
    """The OTLP/HTTP traces URL the standard variables name, if any (as the SDKs read them)."""
    if url := os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return url
    if base := os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return base.rstrip("/") + "/v1/traces"
    return None


def run(args: argparse.Namespace) -> int:
    from triton_rerank.serving.install import InterruptedExportError
    from triton_rerank.serving.server import EmbeddedTritonServer, ServerSettings, ServerStartError

    # While the models load, Ctrl-C and SIGTERM unwind the start as anywhere else on the command line
    # (the server it began is stopped); once it serves, they end the wait below.
    try:
        settings = ServerSettings(
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
            log_file=args.log_file,
            log_verbose=args.log_verbose,
            response_cache_bytes=args.response_cache_mb * 2**20,
            model_control=args.model_control,
            trace_url=args.trace_url or None,
            trace_rate=args.trace_rate,
            api_key=os.environ.get(TRITON_API_KEY_ENV)
            or None,  # from the environment only: argv shows in ps and history
        )
        server = EmbeddedTritonServer(args.repository, settings).start()
    except (ValueError, ServerStartError, FileNotFoundError, ImportError, InterruptedExportError) as err:
        print(f"could not start Triton: {err}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"Triton ready: models {', '.join(server.ready_models())} | {server.http_url} {server.grpc_url} "
        f"metrics {server.metrics_url} | log {server.log_path}"
        + (f" | API key required (${TRITON_API_KEY_ENV}) for all but health" if settings.api_key else ""),
        flush=True,
    )
    while not stop.wait(0.5):
        if not server.running():
            print(f"Triton exited unexpectedly:\n{server.log_tail()}", file=sys.stderr)
            server.stop()
            return 1
    code = server.stop()
    print(f"Triton stopped (exit code {code})", flush=True)
    return 0
