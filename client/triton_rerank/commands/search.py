"""Retrieve from Milvus and rerank with Triton: the best --top-k of the first --retrieve-k."""

from __future__ import annotations

import argparse
import dataclasses
import json

from triton_rerank.commands.common import (
    add_first_stage,
    add_long_documents,
    add_running_services,
    first_stage_options,
    long_document_options,
    open_store,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queries", nargs="+", help="one or more queries")
    add_running_services(parser)
    parser.add_argument("--retrieve-k", type=int, default=100, help="first-stage candidates (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=10, help="results after reranking (default: %(default)s)")
    parser.add_argument("--filter", help="Milvus filter expression, e.g. 'metadata[\"year\"] > 2015'")
    add_first_stage(parser)
    parser.add_argument(
        "--blend",
        type=float,
        help="rank by W x the reranker's score + (1 - W) x the first stage's, each z-scored per query: the weight "
        "`train` chose (its train-report.json) (default: the reranker alone)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    add_long_documents(parser)


def run(args: argparse.Namespace) -> int:
    from triton_rerank.client import TritonRerankFunction
    from triton_rerank.embed import TritonEmbedFunction
    from triton_rerank.pipeline import RerankPipeline

    with (
        open_store(args, collection=args.collection, create=False) as store,  # a misspelt name: an error
        TritonEmbedFunction(args.triton_url, timeout_s=args.timeout_s) as embed,
        TritonRerankFunction(args.triton_url, timeout_s=args.timeout_s) as rerank,
    ):
        pipeline = RerankPipeline(
            store, embed, rerank, blend=args.blend, options=long_document_options(args), **first_stage_options(args)
        )
        results = pipeline.search_batch(args.queries, retrieve_k=args.retrieve_k, top_k=args.top_k, filter=args.filter)
    for result in results:
        if args.json:
            for hit in result.hits:
                print(json.dumps({"query": result.query, **dataclasses.asdict(hit)}, ensure_ascii=False))
            continue
        timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
        print(f"\n{result.query}  ({pipeline.first_stage.name}; {timings})")
        for position, hit in enumerate(result.hits, 1):
            text = hit.text[hit.span[0] : hit.span[1]] if hit.span else hit.text  # the passage that decided
            legs = ", ".join(f"{leg} #{where.rank}" for leg, where in hit.legs.items())
            print(
                f"  {position:>2}. {hit.rerank_score:+7.3f}  (first stage #{hit.first_stage_rank}: {legs})  "
                f"[{hit.id}] {text[:80]}"
            )
    return 0
