"""Serve the rerank HTTP API (Cohere /v2/rerank, Jina / vLLM /v1/rerank, TEI /rerank) in front of
a running Triton, in the foreground:

    triton-rerank api --triton-url grpc://127.0.0.1:8001 --port 8080 --model-alias rerank-v3.5=reranker
    curl -s localhost:8080/v2/rerank -H 'content-type: application/json' \\
        -d '{"model": "reranker", "query": "...", "documents": ["...", "..."]}'

With $RERANK_API_KEY set, every route but /health and /metrics needs ``Authorization: Bearer <key>``;
$TRITON_RERANK_API_KEY, when set, is sent on to Triton. Keys come from the environment only (argv
shows in ps and shell history). With the trace extra, the standard OTEL_* variables turn tracing on:
OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 exports each request's trace (docs/operating.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import triton_rerank.tracing as tracing
from triton_rerank.api.settings import RERANK_API_KEY_ENV, ApiSettings
from triton_rerank.commands.common import MILVUS_TOKEN_ENV, add_triton_url
from triton_rerank.errors import RerankInputError
from triton_rerank.flags import add_flags, from_flags
from triton_rerank.score_cache import check_reachable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_triton_url(parser)
    add_flags(parser, ApiSettings)
    parser.add_argument(
        "--model-alias",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="another name for a served model, e.g. rerank-v3.5=reranker (repeatable)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="one line per request: route, status, ms, model, documents, ids"
    )


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from triton_rerank.api.app import create_app
        from triton_rerank.api.observe import configure_logging
    except ImportError as err:
        print(f"the rerank API needs the api extra: pip install 'triton-rerank[api]' ({err})", file=sys.stderr)
        return 1
    aliases = {}
    for item in args.model_alias:
        name, sep, model = item.partition("=")
        if not sep or not name.strip() or not model.strip():
            print(f"--model-alias {item!r}: expected NAME=MODEL", file=sys.stderr)
            return 2
        aliases[name.strip()] = model.strip()
    settings = dataclasses.replace(
        from_flags(ApiSettings, args),
        triton_url=args.triton_url,
        aliases=aliases,
        api_key=os.environ.get(RERANK_API_KEY_ENV) or None,
        milvus_token=os.environ.get(MILVUS_TOKEN_ENV) or None,
    )
    configure_logging(settings.log_format, args.access_log)
    check_reachable(settings.score_cache)
    try:
        tracing.configure("triton-rerank-api")
        app = create_app(settings)  # reads --qrels: a bad file stops here, said
    except RerankInputError as err:
        print(err, file=sys.stderr)
        return 2
    print(
        f"rerank API on http://{settings.host}:{settings.port} (routes /v2/rerank /v1/rerank /rerank"
        + (f" /v1/search on {settings.collection}, page /playground" if settings.milvus_uri else "")
        + ") "
        f"-> Triton {settings.triton_url}" + (f" | key required (${RERANK_API_KEY_ENV})" if settings.api_key else ""),
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # the command's logging (configure_logging), not uvicorn's own
        access_log=False,  # the service writes its own access line, with the request id
        timeout_graceful_shutdown=30,
    )
    return 0
