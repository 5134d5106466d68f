"""What each first stage costs (``triton-rerank benchmark --first-stages``): SciFact ingested
through the served embedder into Milvus Lite (HNSW and BM25), then, per test query and interleaved
so that every first stage meets the same machine state:

- the search alone (the query vector embedded beforehand): dense, bm25, hybrid as the pipeline runs
  it (the default relative score fusion: both legs, fused here), hybrid by Milvus' RRF as the
  pipeline runs it (Milvus' fused search plus each leg on its own, for the hits' leg ranks), and
  Milvus' fused search alone (what the leg ranks cost there);
- the whole query through ``RerankPipeline``: embed (not for bm25) + retrieve + rerank the top 100
  with the served cross-encoder.

Writes first-stages-benchmark.json and .md with p50/p95 latencies.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.config import BenchmarkConfig, machine
from benchmarks.harness import percentiles_ms
from benchmarks.report import latency_table
from triton_rerank.first_stage import FirstStage, fuse, retrieve

STAGES = ("dense", "bm25", "hybrid")
RETRIEVE_K, TOP_K = 100, 10


def run_first_stages_benchmark(config: BenchmarkConfig) -> int:
    from triton_rerank import TritonEmbedFunction, TritonRerankFunction
    from triton_rerank.beir import load_beir
    from triton_rerank.ingest import ingest
    from triton_rerank.model_sources import DEFAULT_EMBEDDER
    from triton_rerank.pipeline import RerankPipeline
    from triton_rerank.serving.server import triton_for
    from triton_rerank.store import MilvusStore

    started = time.perf_counter()
    collection = load_beir(config.first_stage_data, "test")
    documents, queries = collection.documents, collection.queries
    texts = list(queries.values())
    whole = texts[: 30 if config.quick else 100]
    exports = [(str(config.model), "cross-encoder", {}), (DEFAULT_EMBEDDER, "bi-encoder", {})]
    with (
        tempfile.TemporaryDirectory(prefix="triton-rerank-first-stages-") as milvus_dir,
        triton_for(None, config.workdir() / "repository-first-stages", exports) as (url, _),
        TritonEmbedFunction(url) as embed,
        TritonRerankFunction(url) as rerank,
        MilvusStore(str(Path(milvus_dir) / "bench.db"), collection="bench") as store,
    ):
        report = ingest(documents, store, embed, batch_size=128)
        print(f"ingested {report.written} documents in {time.perf_counter() - started:.0f} s", flush=True)
        vectors = embed(texts)
        search = search_latencies(store, texts, vectors, config.rounds)
        pipelines = {kind: RerankPipeline(store, embed, rerank, first_stage=kind) for kind in STAGES}
        query = whole_query_latencies(pipelines, whole)
    result = {
        "mode": "first-stages",
        "machine": machine(),
        "data": f"{config.first_stage_data.name}: {len(documents)} documents, {len(texts)} test queries",
        "milvus": "Milvus Lite (HNSW + BM25 sparse inverted index), one process",
        "reranker": f"{config.model.name} (fp32), top {RETRIEVE_K} reranked",
        "search": search,
        "whole_query": {"queries": len(whole), **query},
        "wall_s": time.perf_counter() - started,
    }
    (config.out / "first-stages-benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (config.out / "first-stages-benchmark.md").write_text(table)
    print("\n" + table + f"\nwrote first-stages-benchmark.json, .md to {config.out}")
    return 0


def search_latencies(store, texts: list[str], vectors, rounds: int) -> dict[str, dict]:
    """Per first stage, p50/p95 of one query's search, queries interleaved across the stages."""
    stages = [stage.resolve(store) for stage in (*map(FirstStage, STAGES), FirstStage("hybrid", fusion="rrf"))]
    runs = {
        stage.name: (
            lambda i, stage=stage: retrieve(store, stage, texts[i : i + 1], vectors[i : i + 1], limit=RETRIEVE_K)
        )
        for stage in stages
    }
    runs[f"{stages[-1].name}, Milvus' fused search only"] = (
        lambda i: fuse(  # Milvus' hybrid search without the legs read again
            store, stages[-1], texts[i : i + 1], vectors[i : i + 1], limit=RETRIEVE_K
        )
    )
    latencies: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for i in range(len(texts)):
            for name, run in runs.items():
                started = time.perf_counter()
                run(i)
                latencies[name].append(time.perf_counter() - started)
    return {name: percentiles_ms(values) for name, values in latencies.items()}


def whole_query_latencies(pipelines: dict, queries: list[str]) -> dict[str, dict]:
    """Per first stage, p50/p95 of a whole query (embed + retrieve + rerank), interleaved, and the
    mean of each part."""
    latencies = {kind: [] for kind in pipelines}
    parts = {kind: {} for kind in pipelines}
    for pipeline in pipelines.values():  # warm-up
        pipeline.search(queries[0], retrieve_k=RETRIEVE_K, top_k=TOP_K)
    for query in queries:
        for kind, pipeline in pipelines.items():
            started = time.perf_counter()
            result = pipeline.search(query, retrieve_k=RETRIEVE_K, top_k=TOP_K)
            latencies[kind].append(time.perf_counter() - started)
            for part, ms in result.timings_ms.items():
                parts[kind][part] = parts[kind].get(part, 0.0) + ms / len(queries)
    return {kind: {**percentiles_ms(latencies[kind]), "mean_ms": parts[kind]} for kind in pipelines}


def markdown(result: dict) -> str:
    lines = [
        f"First stages on {result['data']}; {result['milvus']}; {result['machine']}.",
        "",
        *latency_table("search alone", result["search"]),
    ]
    whole = result["whole_query"]
    lines += [
        "",
        f"| whole query ({whole['queries']} queries; {result['reranker']}) | p50 ms | p95 ms "
        "| embed ms | retrieve ms | rerank ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind in STAGES:
        values, parts = whole[kind], whole[kind]["mean_ms"]
        lines.append(
            f"| {kind} | {values['p50_ms']:.1f} | {values['p95_ms']:.1f} | {parts.get('embed', 0):.1f} "
            f"| {parts.get('retrieve', 0):.1f} | {parts.get('rerank', 0):.1f} |"
        )
    return "\n".join(lines) + "\n"
