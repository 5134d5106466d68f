"""Embed documents through Triton and upsert them into Milvus.

Sources: a .jsonl[.gz] file, a BEIR folder, or a folder of .txt/.md files. Idempotent and
resumable: documents already in the collection are skipped (--refresh re-embeds them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triton_rerank.analyzers import DEFAULT_ANALYZER
from triton_rerank.commands.common import add_running_services, open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="a .jsonl[.gz] file, a BEIR folder, or a folder of .txt/.md files")
    add_running_services(parser)
    parser.add_argument(
        "--index",
        choices=["HNSW", "FLAT", "IVF_FLAT"],
        default="HNSW",
        help="vector index when the collection is created (default: %(default)s)",
    )
    parser.add_argument(
        "--dimension", type=int, help="embedding size of a new collection (default: the embedder's, from its vectors)"
    )
    parser.add_argument(
        "--analyzer",
        default=DEFAULT_ANALYZER,
        help="how a new collection's text is cut into BM25 terms: english (stop words and stemming; Milvus Lite "
        "3.2.2 skips the stemmer), standard, or Milvus' analyzer_params as JSON (default: %(default)s)",
    )
    parser.add_argument(
        "--no-bm25",
        dest="bm25",
        action="store_false",
        help="a dense-only collection (Milvus servers before 2.5 have no BM25)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="documents per batch (default: %(default)s)")
    parser.add_argument("--refresh", action="store_true", help="re-embed documents that are already present")
    parser.add_argument(
        "--keep-first-duplicate",
        action="store_true",
        help="an id read twice: keep its first copy and count the others (default: refuse, naming both places)",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from triton_rerank.embed import TritonEmbedFunction
    from triton_rerank.ingest import ingest, read_documents

    with (
        open_store(
            args,
            collection=args.collection,
            dimension=args.dimension,
            index=args.index,
            bm25=args.bm25,
            analyzer=args.analyzer,
        ) as store,
        TritonEmbedFunction(args.triton_url, timeout_s=args.timeout_s) as embed,
        tqdm(unit="doc", desc="ingest", file=sys.stderr) as progress,
    ):

        def show(report) -> None:
            progress.update(report.read - progress.n)
            progress.set_postfix(written=report.written, skipped=report.skipped)
            print(f"batch {report.batches}: read {report.read}", flush=True)  # a line per batch, for logs

        report = ingest(
            read_documents(args.source),
            store,
            embed,
            batch_size=args.batch_size,
            refresh=args.refresh,
            duplicates="first" if args.keep_first_duplicate else "error",
            on_batch=show,
        )
        total = store.count()
    print(
        f"ingested {args.source}: read {report.read}, written {report.written}, "
        f"already present {report.skipped}"
        + (f", duplicates left out {report.duplicates}" if report.duplicates else "")
        + f"; collection {args.collection!r} holds {total} documents"
        + (" (dense and BM25)" if store.has_bm25 else " (dense only)")
    )
    return 0
