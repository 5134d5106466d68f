"""Evaluate retrieval + reranking through the real stack, next to the in-process reference.

Served: the corpus is embedded by Triton's embedder into Milvus (HNSW by default), each query is
embedded by Triton, Milvus returns the top --retrieve-k, and Triton's reranker reorders them.
Reference (in-process): exact cosine search over sentence-transformers embeddings, and
CrossEncoder.predict on the candidates, both for the exact candidates and for the very candidates
Milvus returned (so the reranking itself is compared on the same lists). Prints a Markdown table of
nDCG@10, MRR@10 and Recall@100 and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from triton_rerank.client import rank
from triton_rerank.commands.common import add_milvus, add_models, add_repository, add_triton_url, open_store, triton
from triton_rerank.ingest import ingest, read_documents
from triton_rerank.metrics import evaluate


def load_beir(folder: Path, split: str, max_queries: int | None):
    """(documents, {query id: text}, {query id: {doc id: grade}}) for the queries judged in ``split``."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (folder / "qrels" / f"{split}.tsv").open() as lines:
        for row in csv.DictReader(lines, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    queries = {}
    with (folder / "queries.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            if row["_id"] in qrels:
                queries[row["_id"]] = row["text"]
    ids = sorted(queries)[:max_queries] if max_queries else sorted(queries)
    return list(read_documents(folder)), {q: queries[q] for q in ids}, {q: qrels[q] for q in ids}


def ranked_ids(ids: list[str], scores) -> list[str]:
    """``ids`` best score first, ties in input order: the client's own ``rank``."""
    return [ids[result.index] for result in rank(ids, scores, None)]


def served_runs(args, documents, queries, url: str, milvus_uri: str):
    from triton_rerank import TritonEmbedFunction, TritonRerankFunction

    timings = {}
    with (
        open_store(args, milvus_uri, collection="evaluation", index=args.index) as store,
        TritonEmbedFunction(url) as embed,
        TritonRerankFunction(url) as rerank,
    ):
        started = time.perf_counter()
        report = ingest(documents, store, embed, batch_size=128)
        timings["ingest_s"] = time.perf_counter() - started
        print(f"served: ingested {report.written} documents in {timings['ingest_s']:.0f} s", flush=True)
        started = time.perf_counter()
        query_ids = list(queries)
        vectors = embed([queries[q] for q in query_ids])
        candidates = dict(zip(query_ids, store.search(vectors, limit=args.retrieve_k), strict=True))
        timings["retrieve_s"] = time.perf_counter() - started
        started = time.perf_counter()
        reranked = {}
        for q in query_ids:
            texts = [m.text for m in candidates[q]]
            reranked[q] = ranked_ids([m.id for m in candidates[q]], rerank.score(queries[q], texts))
        timings["rerank_s"] = time.perf_counter() - started
        pairs = sum(len(c) for c in candidates.values())
        print(f"served: reranked {pairs} pairs in {timings['rerank_s']:.0f} s", flush=True)
    first_stage = {q: [m.id for m in matches] for q, matches in candidates.items()}
    return first_stage, reranked, timings


def reference_runs(args, documents, queries, served_candidates):
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from triton_rerank.models import resolve_model

    timings = {}
    started = time.perf_counter()
    embedder = SentenceTransformer(resolve_model(args.embedder_model), device="cpu")
    corpus = embedder.encode([d.text for d in documents], normalize_embeddings=True, batch_size=64)
    query_ids = list(queries)
    similarity = embedder.encode([queries[q] for q in query_ids], normalize_embeddings=True) @ corpus.T
    doc_ids = [d.id for d in documents]
    top = np.argsort(-similarity, axis=1, kind="stable")[:, : args.retrieve_k]
    exact = {q: [doc_ids[i] for i in top[n]] for n, q in enumerate(query_ids)}
    timings["exact_search_s"] = time.perf_counter() - started
    print(f"reference: exact search in {timings['exact_search_s']:.0f} s", flush=True)

    started = time.perf_counter()
    cross_encoder = CrossEncoder(resolve_model(args.reranker_model), device="cpu")
    texts = {d.id: d.text for d in documents}
    scores: dict[tuple[str, str], float] = {}  # each (query, document) pair scored once
    for q in query_ids:
        todo = [d for d in dict.fromkeys(exact[q] + served_candidates[q]) if (q, d) not in scores]
        predicted = cross_encoder.predict(
            [(queries[q], texts[d]) for d in todo], activation_fn=torch.nn.Identity(), batch_size=32
        )
        scores.update({(q, d): float(s) for d, s in zip(todo, predicted, strict=True)})
    timings["rerank_s"] = time.perf_counter() - started
    print(f"reference: scored {len(scores)} pairs in {timings['rerank_s']:.0f} s", flush=True)

    def rerank(runs):
        return {q: ranked_ids(ids, [scores[(q, d)] for d in ids]) for q, ids in runs.items()}

    return exact, rerank(exact), rerank(served_candidates), timings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="a BEIR folder (corpus, queries.jsonl, qrels/)")
    parser.add_argument("--split", default="test", help="qrels split (default: %(default)s)")
    add_models(parser)
    parser.add_argument(
        "--precision", choices=["fp32", "int8", "fp16"], default="fp32", help="the served reranker's export precision"
    )
    add_repository(parser, "model repository to export into and serve")
    add_triton_url(parser, embedded_default=True)
    add_milvus(parser, uri_default=None)
    parser.add_argument("--index", choices=["HNSW", "FLAT", "IVF_FLAT"], default="HNSW")
    parser.add_argument("--retrieve-k", type=int, default=100)
    parser.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries (quick runs)")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-process reference")
    parser.add_argument("--out", type=Path, default=Path("generated/evaluation.json"), help="(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    documents, queries, qrels = load_beir(args.data, args.split, args.max_queries)
    print(f"{args.data.name}: {len(documents)} documents, {len(queries)} judged queries ({args.split})", flush=True)
    exports = [
        (args.reranker_model, "cross-encoder", {"precision": args.precision}),
        (args.embedder_model, "bi-encoder", {}),
    ]
    with (
        tempfile.TemporaryDirectory(prefix="triton-rerank-eval-") as workdir,
        triton(args.triton_url, args.repository, exports) as (url, _),
    ):
        milvus_uri = args.milvus_uri or str(Path(workdir) / "evaluation.db")
        first_stage, reranked, served_timings = served_runs(args, documents, queries, url, milvus_uri)
    rows = {
        f"first stage: Milvus {args.index} (served)": evaluate(first_stage, qrels),
        f"reranked: Triton on Milvus top-{args.retrieve_k} (served)": evaluate(reranked, qrels),
    }
    timings = {"served": served_timings}
    if not args.no_reference:
        exact, exact_reranked, same_candidates, timings["reference"] = reference_runs(
            args, documents, queries, first_stage
        )
        rows = {
            "first stage: exact cosine (in-process)": evaluate(exact, qrels),
            **rows,
            f"reranked: CrossEncoder on exact top-{args.retrieve_k} (in-process)": evaluate(exact_reranked, qrels),
            f"reranked: CrossEncoder on Milvus top-{args.retrieve_k} (in-process)": evaluate(same_candidates, qrels),
        }
    print(f"\n| {args.data.name} {args.split} ({len(queries)} queries) | nDCG@10 | MRR@10 | Recall@100 |")
    print("| --- | --- | --- | --- |")
    for name, scores in rows.items():
        print(f"| {name} | {scores['ndcg@10']:.4f} | {scores['mrr@10']:.4f} | {scores['recall@100']:.4f} |")
    write_report(args, len(queries), len(documents), rows, timings)
    return 0


def write_report(args: argparse.Namespace, queries: int, documents: int, rows: dict, timings: dict) -> None:
    report = {
        "data": str(args.data),
        "split": args.split,
        "queries": queries,
        "documents": documents,
        "reranker_model": args.reranker_model,
        "reranker_precision": args.precision,
        "embedder_model": args.embedder_model,
        "index": args.index,
        "retrieve_k": args.retrieve_k,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "results": rows,
        "timings": timings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
