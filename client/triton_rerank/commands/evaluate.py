"""Evaluate retrieval + reranking through the real stack, next to the in-process reference.

Served: the corpus is embedded by Triton's embedder into Milvus (HNSW by default), each query is
embedded by Triton, Milvus returns the top --retrieve-k, and Triton's reranker reorders them.
Reference (in-process): exact cosine search over sentence-transformers embeddings, and
CrossEncoder.predict on the candidates, both for the exact candidates and for the very candidates
Milvus returned (so the reranking itself is compared on the same lists). Prints a Markdown table of
nDCG@10, MRR@10 and Recall@100 and writes the figures as JSON.

Long documents: ``--rerank-data`` names a BEIR folder with the same ids whose texts the reranker
reads instead (``triton-rerank long-corpus`` writes one), and ``--long-documents first,max,mean``
reranks the same first-stage candidates once per policy, with the rows the cross-encoder scored and
the seconds each took.

A cascade: ``--cascade-model M --cascade-k K`` exports a second reranker beside the first (named
``cascade``); it reads the first one's best K of each list, and, for comparison, the whole lists
alone. Both rows, and what each stage cost (pairs and seconds), go into the report. An LLM reranker
takes ``--reranker-kind llm-reranker`` (or ``--cascade-kind``); its in-process reference is its
model card's code.

Peers: ``--peers st-onnx-int8,st-openvino-int8`` has sentence-transformers' own ONNX and OpenVINO
backends (the benchmark's in-process peers, ``make peers``) rerank the very candidates the served
reranker read, so that each peer's accuracy tier is measured on the collection, as the served
precisions' are. NNCF's int8 peer calibrates on the export's built-in sample pairs.

Score noise: with the reference, the served scores' differences to it are put back in random order
300 times (``metrics.noise_band``), which says how far nDCG@10 moves by chance at that error size:
a reduced precision's change inside that band is near-ties changing places, not a ranking loss.
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

from triton_rerank.bench.peers import PEERS
from triton_rerank.client import rank
from triton_rerank.commands.common import (
    PEERS_PYTHON,
    add_milvus,
    add_models,
    add_repository,
    add_triton_url,
    open_store,
    triton,
)
from triton_rerank.ingest import ingest, read_documents
from triton_rerank.metrics import evaluate, noise_band
from triton_rerank.protocol import LONG_DOCUMENT_POLICIES
from triton_rerank.serving.export_options import PRECISIONS
from triton_rerank.serving.repository import RepositorySettings

CASCADE_NAME = "cascade"  # the second reranker's ensemble in the evaluation's repository


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


def served_runs(args, documents, queries, url: str, milvus_uri: str, stats_url: str | None):
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
        reranked, scores = {}, {}  # scores: the collection's own texts, read as the reference reads them
        if args.rerank_data is None:  # the collection's own texts, under each policy
            for policy in args.long_documents:
                kept = scores if policy == "first" else None
                reranked[policy] = rerank_run(rerank, queries, candidates, None, policy, stats_url, timings, kept)
        else:  # the collection's own texts as they are (the short figure), then the other texts under each policy
            reranked["short"] = rerank_run(rerank, queries, candidates, None, "first", stats_url, timings, scores)
            texts = {d.id: d.text for d in read_documents(args.rerank_data)}
            for policy in args.long_documents:
                reranked[policy] = rerank_run(rerank, queries, candidates, texts, policy, stats_url, timings)
        if args.cascade_model:
            with TritonRerankFunction(url, model_name=CASCADE_NAME) as strong:
                first = next(iter(reranked.values()))
                reranked.update(cascade_runs(strong, queries, candidates, first, args.cascade_k, timings))
    first_stage = {q: [m.id for m in matches] for q, matches in candidates.items()}
    return first_stage, reranked, scores, timings


def cascade_runs(strong, queries, candidates, first: dict, keep: int, timings: dict) -> dict:
    """The strong reranker on the first one's best ``keep`` of each list (the rest keep the first
    one's order), and on the whole lists alone; the seconds and pairs each stage read."""
    texts = {m.id: m.text for matches in candidates.values() for m in matches}
    runs = {}
    for name, depth in ((f"cascade top-{keep}", keep), ("cascade model alone", None)):
        started = time.perf_counter()
        run, pairs = {}, 0
        for q, ids in first.items():
            head = ids[:depth] if depth else [m.id for m in candidates[q]]
            read = set(head)
            run[q] = ranked_ids(head, strong.score(queries[q], [texts[d] for d in head]))
            run[q] += [d for d in ids if d not in read]
            pairs += len(head)
        timings[f"rerank_{name}_s"] = time.perf_counter() - started
        timings[f"rerank_{name}_pairs"] = pairs
        print(f"served ({name}): reranked {pairs} pairs in {timings[f'rerank_{name}_s']:.0f} s", flush=True)
        runs[name] = run
    return runs


def rerank_run(
    rerank, queries, candidates, texts: dict | None, policy: str, stats_url: str | None, timings: dict, scores=None
):
    """Each query's candidates reranked (with ``texts`` instead of theirs, when given) under one
    long-document policy; records the seconds and the rows the cross-encoder scored, and each
    (query, document) pair's score in ``scores`` when given."""
    from triton_rerank.bench.stats import triton_stats

    name = policy if texts is not None else "short" if policy == "first" else f"short {policy}"
    before = triton_stats(stats_url) if stats_url else None
    started = time.perf_counter()
    run = {}
    for q, matches in candidates.items():
        documents = [texts.get(m.id, m.text) if texts else m.text for m in matches]
        got = rerank.score(queries[q], documents, long_documents=policy)
        run[q] = ranked_ids([m.id for m in matches], got)
        if scores is not None:
            scores.update({(q, m.id): float(score) for m, score in zip(matches, got, strict=True)})
    timings[f"rerank_{name}_s"] = time.perf_counter() - started
    pairs = sum(len(c) for c in candidates.values())
    if before is not None:
        rows = (
            triton_stats(stats_url).get("cross_encoder", {}).get("inferences", 0)
            - before["cross_encoder"]["inferences"]
        )
        timings[f"rerank_{name}_rows"] = rows
    shown = f", {timings[f'rerank_{name}_rows']} rows scored" if before is not None else ""
    print(f"served ({name}): reranked {pairs} pairs in {timings[f'rerank_{name}_s']:.0f} s{shown}", flush=True)
    return run


def reference_runs(args, documents, queries, served_candidates):
    from sentence_transformers import SentenceTransformer

    from triton_rerank.models import resolve_model
    from triton_rerank.serving.export import reference_reranker

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
    predict = reference_reranker(args.reranker_model, args.reranker_kind, args.instruction)
    texts = {d.id: d.text for d in documents}
    scores: dict[tuple[str, str], float] = {}  # each (query, document) pair scored once
    for q in query_ids:
        todo = [d for d in dict.fromkeys(exact[q] + served_candidates[q]) if (q, d) not in scores]
        predicted = predict([(queries[q], texts[d]) for d in todo])
        scores.update({(q, d): float(s) for d, s in zip(todo, predicted, strict=True)})
    timings["rerank_s"] = time.perf_counter() - started
    print(f"reference: scored {len(scores)} pairs in {timings['rerank_s']:.0f} s", flush=True)

    def rerank(runs):
        return {q: ranked_ids(ids, [scores[(q, d)] for d in ids]) for q, ids in runs.items()}

    return exact, rerank(exact), rerank(served_candidates), scores, timings


def peer_runs(args, queries: dict, first_stage: dict, texts: dict, timings: dict) -> dict:
    """Each peer's ranking of the served first stage's very candidates (the collection's own texts),
    one worker process at a time, so that no peer competes with another for the cores."""
    from triton_rerank.bench.peers import PEER_NAMES, PeerProcess
    from triton_rerank.bench.workload import Request
    from triton_rerank.models import resolve_model
    from triton_rerank.serving.export.precision import builtin_calibration_pairs

    model = resolve_model(args.reranker_model)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="triton-rerank-peers-") as work:
        for kind in args.peers:
            peer = PeerProcess(kind, Path(model), Path(work) / kind, args.peers_python).start(
                builtin_calibration_pairs()
            )
            try:
                started = time.perf_counter()
                run = {}
                for q, ids in first_stage.items():
                    (scores,) = peer.score([Request(queries[q], [texts[d] for d in ids])])
                    run[q] = ranked_ids(ids, scores)
            finally:
                peer.stop()
            seconds = time.perf_counter() - started
            pairs = sum(len(ids) for ids in first_stage.values())
            timings[kind] = {"s": seconds, "pairs": pairs}
            print(f"peer {PEER_NAMES[kind]}: reranked {pairs} pairs in {seconds:.0f} s", flush=True)
            runs[PEER_NAMES[kind]] = run
    return runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="a BEIR folder (corpus, queries.jsonl, qrels/)")
    parser.add_argument("--split", default="test", help="qrels split (default: %(default)s)")
    add_models(parser)
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="the served reranker's export precision"
    )
    parser.add_argument(
        "--model-format",
        choices=["onnx", "openvino"],
        default="onnx",
        help="the served reranker's format: with --precision int8, openvino is NNCF's static int8 (default: onnx)",
    )
    parser.add_argument("--instruction", help="an LLM reranker's instruction (default: the model card's)")
    parser.add_argument(
        "--cascade-model",
        help=f"a second reranker that reads the first one's best --cascade-k, exported as {CASCADE_NAME!r} "
        f"(with --triton-url: that server's {CASCADE_NAME!r} model)",
    )
    parser.add_argument("--cascade-kind", choices=["cross-encoder", "llm-reranker"], default="cross-encoder")
    parser.add_argument(
        "--cascade-precision", choices=PRECISIONS, default="fp32", help="the second reranker's export precision"
    )
    parser.add_argument("--cascade-k", type=int, default=20, help="candidates the second reranker reads (default: 20)")
    add_repository(parser, "model repository to export into and serve")
    add_triton_url(parser, embedded_default=True)
    add_milvus(parser, uri_default=None)
    parser.add_argument("--index", choices=["HNSW", "FLAT", "IVF_FLAT"], default="HNSW")
    parser.add_argument("--retrieve-k", type=int, default=100)
    parser.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries (quick runs)")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-process reference")
    parser.add_argument(
        "--rerank-data",
        type=Path,
        help="a BEIR folder with the same ids whose texts the reranker reads instead (the long-document variant)",
    )
    parser.add_argument(
        "--long-documents",
        type=_names_of("policies", LONG_DOCUMENT_POLICIES),
        default=["first"],
        help="long-document policies to rerank with, comma-separated: first,max,mean (default: first)",
    )
    parser.add_argument(
        "--peers",
        type=_names_of("peers", PEERS),
        default=[],
        help=f"in-process peers that rerank the same candidates, comma-separated: {', '.join(PEERS)} "
        "(sentence-transformers' backends; `make peers`)",
    )
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_PYTHON,
        help="the Python of the peers' environment, built by `make peers` (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("generated/evaluation.json"), help="(default: %(default)s)")


def _names_of(what: str, choices):
    """An argparse type: comma-separated names, each one of ``choices``."""

    def parse(value: str) -> list[str]:
        names = value.split(",")
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} {unknown}: choose from {', '.join(choices)}")
        return names

    return parse


def run(args: argparse.Namespace) -> int:
    documents, queries, qrels = load_beir(args.data, args.split, args.max_queries)
    print(f"{args.data.name}: {len(documents)} documents, {len(queries)} judged queries ({args.split})", flush=True)
    if args.cascade_model and not 10 <= args.cascade_k <= args.retrieve_k:
        raise SystemExit(f"--cascade-k must be from 10 (nDCG@10 reads 10) to --retrieve-k, got {args.cascade_k}")
    if args.cascade_model and args.rerank_data:
        raise SystemExit("--cascade-model reranks the collection's own texts: leave out --rerank-data")
    if args.peers and (args.rerank_data or args.reranker_kind != "cross-encoder"):
        raise SystemExit(
            "--peers are sentence-transformers cross-encoders on the collection's own texts: "
            "leave out --rerank-data and --reranker-kind llm-reranker"
        )
    if args.peers and not args.peers_python.exists():
        raise SystemExit(
            f"--peers run in the peers' environment, and there is none at {args.peers_python}: "
            "run `make peers` first (or name one with --peers-python)"
        )

    def kind(kind: str) -> dict:  # an instruction is an LLM reranker's only
        return {
            "kind": kind,
            **({"instruction": args.instruction} if args.instruction and kind == "llm-reranker" else {}),
        }

    exports = [
        (
            args.reranker_model,
            args.reranker_kind,
            {
                "precision": args.precision,
                "settings": RepositorySettings(model_format=args.model_format, **kind(args.reranker_kind)),
            },
        ),
        (args.embedder_model, "bi-encoder", {}),
    ]
    if args.cascade_model:
        settings = RepositorySettings(name=CASCADE_NAME, **kind(args.cascade_kind))
        exports.append(
            (args.cascade_model, args.cascade_kind, {"precision": args.cascade_precision, "settings": settings})
        )
    with (
        tempfile.TemporaryDirectory(prefix="triton-rerank-eval-") as workdir,
        triton(args.triton_url, args.repository, exports) as (url, server),
    ):
        milvus_uri = args.milvus_uri or str(Path(workdir) / "evaluation.db")
        stats_url = server.http_url if server is not None else None
        first_stage, reranked, served_scores, served_timings = served_runs(
            args, documents, queries, url, milvus_uri, stats_url
        )
    first_scores = evaluate(first_stage, qrels)
    scored = {name: evaluate(run, qrels) for name, run in reranked.items()}  # each run's metrics, once
    rows = {f"first stage: Milvus {args.index} (served)": first_scores}
    for name, scores in scored.items():
        if name.startswith("cascade"):
            on = f"the reranker's top-{args.cascade_k}" if name.startswith("cascade top") else "them alone"
            rows[f"reranked: cascade ({args.cascade_model}) on {on} (served)"] = scores
            continue
        if args.rerank_data is not None and name != "short":
            what = f", {args.rerank_data.name} texts, long_documents={name}"
        else:
            what = "" if name in ("short", "first") else f", long_documents={name}"
        rows[f"reranked: Triton on Milvus top-{args.retrieve_k} (served{what})"] = scores
    if args.rerank_data is not None:  # how much of the short documents' gain over the first stage each policy keeps
        first = first_scores["ndcg@10"]
        gain = scored["short"]["ndcg@10"] - first
        for name, scores in scored.items():
            if name == "short":
                continue
            if gain <= 0:  # the reranker does not beat the first stage here: there is no gain to keep
                served_timings[f"gain_kept_{name}"] = None
                kept_of_short = scores["ndcg@10"] / scored["short"]["ndcg@10"]
                print(
                    f"long_documents={name}: {kept_of_short:.0%} of the short documents' nDCG@10 "
                    "(they score below the first stage: no gain to keep)",
                    flush=True,
                )
                continue
            kept = (scores["ndcg@10"] - first) / gain
            served_timings[f"gain_kept_{name}"] = kept
            print(f"long_documents={name}: keeps {kept:.0%} of the short documents' nDCG@10 gain", flush=True)
    timings = {"served": served_timings}
    if args.peers:
        texts = {d.id: d.text for d in documents}
        timings["peers"] = {}
        for name, run in peer_runs(args, queries, first_stage, texts, timings["peers"]).items():
            rows[f"reranked: {name} on Milvus top-{args.retrieve_k} (in-process peer)"] = evaluate(run, qrels)
    if not args.no_reference:
        exact, exact_reranked, same_candidates, reference_scores, timings["reference"] = reference_runs(
            args, documents, queries, first_stage
        )
        reference = "CrossEncoder" if args.reranker_kind == "cross-encoder" else "the model card's code"
        rows = {
            "first stage: exact cosine (in-process)": evaluate(exact, qrels),
            **rows,
            f"reranked: {reference} on exact top-{args.retrieve_k} (in-process)": evaluate(exact_reranked, qrels),
            f"reranked: {reference} on Milvus top-{args.retrieve_k} (in-process)": evaluate(same_candidates, qrels),
        }
    print(f"\n| {args.data.name} {args.split} ({len(queries)} queries) | nDCG@10 | MRR@10 | Recall@100 |")
    print("| --- | --- | --- | --- |")
    for name, scores in rows.items():
        print(f"| {name} | {scores['ndcg@10']:.4f} | {scores['mrr@10']:.4f} | {scores['recall@100']:.4f} |")
    band = None
    if served_scores and not args.no_reference:  # the served scores against the reference's, same candidates
        band = noise_band(reference_scores, served_scores, first_stage, qrels)
        print(
            f"\nserved - in-process scores: RMS {band['rms_error']:.2g}; nDCG@10 moves by {band['observed']:+.4f}. "
            f"Those errors in random order ({band['draws']} draws) move it by {band['mean']:+.4f} on average "
            f"(5-95%: {band['p5']:+.4f} to {band['p95']:+.4f}): a change inside that band is near-ties changing places."
        )
    write_report(args, len(queries), len(documents), rows, timings, band)
    return 0


def write_report(
    args: argparse.Namespace, queries: int, documents: int, rows: dict, timings: dict, band: dict | None
) -> None:
    report = {
        "data": str(args.data),
        "split": args.split,
        "queries": queries,
        "documents": documents,
        "reranker_model": args.reranker_model,
        "reranker_kind": args.reranker_kind,
        "instruction": args.instruction,
        "cascade": {
            "model": args.cascade_model,
            "kind": args.cascade_kind,
            "precision": args.cascade_precision,
            "k": args.cascade_k,
        }
        if args.cascade_model
        else None,
        "reranker_precision": args.precision,
        "reranker_format": args.model_format if args.precision != "bf16" else "openvino",
        "embedder_model": args.embedder_model,
        "index": args.index,
        "retrieve_k": args.retrieve_k,
        "rerank_data": str(args.rerank_data) if args.rerank_data else None,
        "long_documents": args.long_documents,
        "peers": args.peers,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "results": rows,
        "noise_band": band,
        "timings": timings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
