"""Quick start: retrieve with Milvus, rerank with Triton, and see the order change.

1. exports the cross-encoder and the bi-encoder into --repository (generated/model_repository, which
   git ignores), when it lacks them;
2. starts the embedded Triton server on free loopback ports (unless --triton-url is given);
3. ingests a small sample corpus into Milvus Lite (a temporary file, unless --milvus-uri is given),
   embedding it through Triton;
4. runs a few queries and prints the first-stage order (hybrid: BM25 and dense fused in Milvus, with
   where each leg put each document) next to the reranked order, with scores and timings;
5. serves the rerank HTTP API (what ``triton-rerank api`` serves) in front of the same Triton and
   shows one ``curl`` against its Cohere route, with the answer; then stops what it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import tempfile
import time
import urllib.request
from pathlib import Path

from triton_rerank.commands.common import (
    add_first_stage,
    add_milvus,
    add_models,
    add_repository,
    add_triton_url,
    first_stage_options,
    open_store,
)
from triton_rerank.samples import SAMPLE_CORPUS, SAMPLE_QUERIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_models(parser)
    add_repository(parser, "model repository to export into and serve")
    add_triton_url(parser, embedded_default=True)
    add_milvus(parser, uri_default=None)
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS, help="documents to ingest (default: the sample)")
    parser.add_argument("--query", action="append", help="a query (repeatable; default: three sample queries)")
    parser.add_argument("--retrieve-k", type=int, default=10)
    parser.add_argument("--top-k", type=int, default=5)
    add_first_stage(parser)


def side_by_side(result, top_k: int, kind: str = "cross-encoder", first_stage: str = "dense") -> None:
    timings = ", ".join(f"{name} {ms:.0f} ms" for name, ms in result.timings_ms.items())
    print(f"\nquery: {result.query}   ({timings})")
    print(f"  {f'first stage (Milvus, {first_stage})':<52} {f'reranked (Triton {kind})':<52}")
    for position in range(top_k):
        left = right = ""
        if position < len(result.candidates):
            match = result.candidates[position]
            legs = " ".join(f"{leg} #{where.rank}" for leg, where in match.legs.items())
            left = f"{position + 1:>2}. {match.id:<16} {legs:<17} {match.text[:12]}"
        if position < len(result.hits):
            hit = result.hits[position]
            right = f"{position + 1:>2}. {hit.rerank_score:+6.2f} {hit.id:<16} (was #{hit.first_stage_rank})"
        print(f"  {left:<52} {right:<52}")


def show_rerank_api(triton_url: str, query: str, documents: list[str]) -> None:
    """The same reranker over HTTP, as the retrieval ecosystem calls it: one curl, and its answer."""
    try:
        from triton_rerank.api.app import serving
        from triton_rerank.api.settings import RERANK_API_KEY_ENV, ApiSettings
        from triton_rerank.serving.server import free_port
    except ImportError as err:
        print(f"\n(the rerank API needs the api extra: {err})")
        return
    body = json.dumps({"model": "reranker", "query": query, "documents": documents, "top_n": 2})
    key = os.environ.get(RERANK_API_KEY_ENV)
    settings = ApiSettings(triton_url=triton_url, port=free_port(), api_key=key or None)
    with serving(settings) as url:
        request = urllib.request.Request(f"{url}/v2/rerank", data=body.encode(), method="POST")
        request.add_header("content-type", "application/json")
        if key:
            request.add_header("authorization", f"Bearer {key}")
        answer = urllib.request.urlopen(request, timeout=60).read().decode()
        auth = f' -H "Authorization: Bearer ${RERANK_API_KEY_ENV}"' if key else ""
        print("\nThe same reranker over HTTP (triton-rerank api: Cohere /v2/rerank, Jina /v1/rerank, TEI /rerank):")
        print(f"  $ curl -s {url}/v2/rerank -H 'content-type: application/json'{auth} -d {shlex.quote(body)}")
        print(f"  {answer}")


def run(args: argparse.Namespace) -> int:
    from triton_rerank import TritonEmbedFunction, TritonRerankFunction
    from triton_rerank.ingest import ingest, read_documents
    from triton_rerank.pipeline import RerankPipeline
    from triton_rerank.serving.server import triton_for

    exports = [(args.reranker_model, args.reranker_kind, {}), (args.embedder_model, "bi-encoder", {})]
    with (
        tempfile.TemporaryDirectory(prefix="triton-rerank-quickstart-") as workdir,
        triton_for(args.triton_url, args.repository, exports) as (url, _),
    ):
        milvus_uri = args.milvus_uri or str(Path(workdir) / "quickstart.db")
        with (
            open_store(args, milvus_uri, collection="quickstart", index="FLAT") as store,
            TritonEmbedFunction(url) as embed,
            TritonRerankFunction(url) as rerank,
        ):
            started = time.perf_counter()
            report = ingest(read_documents(args.corpus), store, embed)
            print(
                f"Milvus ({milvus_uri}): ingested {report.written} new of {report.read} documents "
                f"in {time.perf_counter() - started:.1f} s; the collection holds {store.count()}"
            )
            pipeline = RerankPipeline(store, embed, rerank, **first_stage_options(args))
            pipeline.search("warm-up", retrieve_k=2, top_k=1)
            for query in args.query or SAMPLE_QUERIES:
                result = pipeline.search(query, retrieve_k=args.retrieve_k, top_k=args.top_k)
                side_by_side(result, args.top_k, args.reranker_kind, pipeline.first_stage.name)
        show_rerank_api(url, result.query, [c.text[:60] for c in result.candidates[:3]])
    return 0
