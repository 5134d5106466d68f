"""triton-rerank: serve models with Triton, ingest documents into Milvus, search and rerank.

    triton-rerank serve  --repository model_repository
    triton-rerank ingest path/to/corpus.jsonl --milvus-uri documents.db
    triton-rerank search "how do vaccines work?" --milvus-uri documents.db

ingest and search talk to a running Triton server (--triton-url, default $TRITON_RERANK_URL
or grpc://127.0.0.1:8001) that serves the embedder and reranker ensembles.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from triton_rerank.errors import RerankError
from triton_rerank.transport import API_KEY_ENV

DEFAULT_TRITON_URL = "grpc://127.0.0.1:8001"


def _add_milvus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--milvus-uri",
        default="documents.db",
        help="a Milvus Lite file, or a server URI like http://host:19530 (default: %(default)s)",
    )
    parser.add_argument(
        "--milvus-token", default=os.environ.get("MILVUS_TOKEN"), help="Milvus token (default: $MILVUS_TOKEN)"
    )
    parser.add_argument("--milvus-ca-file", help="CA certificate (PEM) of a Milvus server with TLS by a private CA")
    parser.add_argument("--collection", default="documents", help="collection name (default: %(default)s)")
    parser.add_argument(
        "--triton-url",
        default=os.environ.get("TRITON_RERANK_URL", DEFAULT_TRITON_URL),
        help="Triton server, http://... or grpc://...; replicas separated by commas "
        "(default: $TRITON_RERANK_URL or %(default)s)",
    )
    parser.add_argument("--timeout-s", type=float, default=60.0, help="Triton request timeout (default: %(default)s)")


def configure_logging() -> None:
    """Warnings and errors once: pymilvus' errors reach the user as ours, and Milvus Lite's
    in-process server logs a harmless "Method not implemented" for calls it does not serve."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import pymilvus  # noqa: F401  (it configures its own loggers when imported: do it first)
    except ImportError:
        pass
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-rerank", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{serve,ingest,search}")

    serve = commands.add_parser(
        "serve",
        help="run Triton on a model repository, in the foreground; with $TRITON_RERANK_API_KEY set, every "
        "API but health needs that key",
    )
    serve.add_argument("--repository", default="model_repository", help="model repository (default: %(default)s)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    serve.add_argument("--http-port", type=int, default=8000)
    serve.add_argument("--grpc-port", type=int, default=8001)
    serve.add_argument("--metrics-port", type=int, default=8002)
    serve.add_argument("--log-file", type=Path, help="keep the server log here (default: a temporary file)")
    serve.add_argument("--log-verbose", type=int, default=0, help="Triton's --log-verbose level")
    serve.add_argument(
        "--response-cache-mb",
        type=int,
        default=0,
        help="size of Triton's response cache, for models exported with --response-cache (default: off)",
    )

    ingest = commands.add_parser("ingest", help="embed documents through Triton and upsert them into Milvus")
    ingest.add_argument("source", type=Path, help="a .jsonl[.gz] file, a BEIR folder, or a folder of .txt/.md files")
    _add_milvus_options(ingest)
    ingest.add_argument(
        "--index",
        choices=["HNSW", "FLAT", "IVF_FLAT"],
        default="HNSW",
        help="vector index when the collection is created (default: %(default)s)",
    )
    ingest.add_argument("--dimension", type=int, default=384, help="embedding size (default: %(default)s)")
    ingest.add_argument("--batch-size", type=int, default=256, help="documents per batch (default: %(default)s)")
    ingest.add_argument("--refresh", action="store_true", help="re-embed documents that are already present")

    search = commands.add_parser("search", help="retrieve from Milvus and rerank with Triton")
    search.add_argument("queries", nargs="+", help="one or more queries")
    _add_milvus_options(search)
    search.add_argument("--retrieve-k", type=int, default=100, help="first-stage candidates (default: %(default)s)")
    search.add_argument("--top-k", type=int, default=10, help="results after reranking (default: %(default)s)")
    search.add_argument("--filter", help="Milvus filter expression, e.g. 'metadata[\"year\"] > 2015'")
    search.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


def serve(args: argparse.Namespace) -> int:
    from triton_rerank.server import EmbeddedTritonServer, ServerSettings, ServerStartError

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        settings = ServerSettings(
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
            log_file=args.log_file,
            log_verbose=args.log_verbose,
            response_cache_bytes=args.response_cache_mb * 2**20,
            api_key=os.environ.get(API_KEY_ENV) or None,  # from the environment only: argv shows in ps and history
        )
    except ValueError as err:
        print(f"could not start Triton: {err}", file=sys.stderr)
        return 1
    server = EmbeddedTritonServer(args.repository, settings)
    try:
        server.start()
    except (ServerStartError, FileNotFoundError, ImportError) as err:
        print(f"could not start Triton: {err}", file=sys.stderr)
        return 1
    print(
        f"Triton ready: models {', '.join(server.ready_models())} | {server.http_url} {server.grpc_url} "
        f"metrics {server.metrics_url} | log {server.log_path}"
        + (f" | API key required (${API_KEY_ENV}) for all but health" if settings.api_key else ""),
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


def _store(args: argparse.Namespace, **options):
    from triton_rerank.store import MilvusStore

    if args.milvus_ca_file:
        options["client_options"] = {"server_pem_path": args.milvus_ca_file}
    return MilvusStore(args.milvus_uri, collection=args.collection, token=args.milvus_token, **options)


def ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from triton_rerank.embed import TritonEmbedFunction
    from triton_rerank.ingest import ingest as run_ingest
    from triton_rerank.ingest import read_documents

    with (
        _store(args, dimension=args.dimension, index=args.index) as store,
        TritonEmbedFunction(args.triton_url, timeout_s=args.timeout_s) as embed,
        tqdm(unit="doc", desc="ingest", file=sys.stderr) as progress,
    ):

        def show(report) -> None:
            progress.update(report.read - progress.n)
            progress.set_postfix(written=report.written, skipped=report.skipped)
            print(f"batch {report.batches}: read {report.read}", flush=True)

        report = run_ingest(
            read_documents(args.source),
            store,
            embed,
            batch_size=args.batch_size,
            refresh=args.refresh,
            on_batch=show,
        )
        total = store.count()
    print(
        f"ingested {args.source}: read {report.read}, written {report.written}, "
        f"already present {report.skipped}; collection {args.collection!r} holds {total} documents"
    )
    return 0


def search(args: argparse.Namespace) -> int:
    from triton_rerank.client import TritonRerankFunction
    from triton_rerank.embed import TritonEmbedFunction
    from triton_rerank.pipeline import RerankPipeline

    with (
        _store(args) as store,
        TritonEmbedFunction(args.triton_url, timeout_s=args.timeout_s) as embed,
        TritonRerankFunction(args.triton_url, timeout_s=args.timeout_s) as rerank,
    ):
        results = RerankPipeline(store, embed, rerank).search_batch(
            args.queries, retrieve_k=args.retrieve_k, top_k=args.top_k, filter=args.filter
        )
    for result in results:
        if args.json:
            for hit in result.hits:
                print(json.dumps({"query": result.query, **hit.__dict__}, ensure_ascii=False))
            continue
        timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
        print(f"\n{result.query}  ({timings})")
        for position, hit in enumerate(result.hits, 1):
            print(
                f"  {position:>2}. {hit.rerank_score:+7.3f}  (first stage #{hit.first_stage_rank}, "
                f"cos {hit.first_stage_score:.3f})  [{hit.id}] {hit.text[:80]}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        return {"serve": serve, "ingest": ingest, "search": search}[args.command](args)
    except RerankError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
