#!/usr/bin/env python
"""Serve a model repository with a real Triton Inference Server, in the foreground.

    python scripts/serve.py --repository model_repository --http-port 8000 --grpc-port 8001 --metrics-port 8002

Prints one line once every model is ready; Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from triton_rerank.server import EmbeddedTritonServer, ServerSettings, ServerStartError


def main(argv: list[str] | None = None) -> int:
    defaults = ServerSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", default="model_repository", help="model repository (default: %(default)s)")
    parser.add_argument("--host", default=defaults.host, help="address to bind (default: %(default)s, loopback only)")
    parser.add_argument("--http-port", type=int, default=defaults.http_port)
    parser.add_argument("--grpc-port", type=int, default=defaults.grpc_port)
    parser.add_argument("--metrics-port", type=int, default=defaults.metrics_port)
    parser.add_argument("--log-file", type=Path, help="keep the server log here (default: a temporary file)")
    parser.add_argument("--log-verbose", type=int, default=0, help="Triton's --log-verbose level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    settings = ServerSettings(
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_file=args.log_file,
        log_verbose=args.log_verbose,
    )
    server = EmbeddedTritonServer(args.repository, settings)
    try:
        server.start()
    except (ServerStartError, FileNotFoundError, ImportError) as err:
        print(f"could not start Triton: {err}", file=sys.stderr)
        return 1
    print(
        f"Triton ready: models {', '.join(server.ready_models())} | {server.http_url} {server.grpc_url} "
        f"metrics {server.metrics_url} | log {server.log_path}",
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


if __name__ == "__main__":
    sys.exit(main())
