"""What ``POST /v1/search`` adds over the pipeline in-process (``triton-rerank benchmark
--search-route``): SciFact ingested through the served embedder into Milvus Lite, then each test
query searched both ways, interleaved (the order swapped every query), on one Triton:

- in-process: ``RerankPipeline.search`` (embed, hybrid retrieve, rerank the top 100), as a user's
  Python runs it;
- the route: the same search through the rerank API (served by uvicorn on a thread of this process,
  so that it reads the very same Milvus Lite), its JSON answer read whole by an HTTP client.

The overhead is the median of the per-query differences (each pair meets the same machine state),
beside both p50s. The reranker is the int8 export: its noise is smaller than fp32's. Score cache: off.
Writes search-route-benchmark.json and .md.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.config import BenchmarkConfig, machine
from benchmarks.harness import percentiles_ms
from benchmarks.report import latency_table, save

RETRIEVE_K, TOP_K = 100, 10
WARM_UP_QUERIES = 3


def run_search_route_benchmark(config: BenchmarkConfig) -> int:
    import httpx

    from triton_rerank import TritonEmbedFunction, TritonRerankFunction
    from triton_rerank.api.app import serving
    from triton_rerank.api.settings import ApiSettings
    from triton_rerank.beir import load_beir
    from triton_rerank.ingest import ingest
    from triton_rerank.model_sources import DEFAULT_EMBEDDER
    from triton_rerank.pipeline import RerankPipeline
    from triton_rerank.serving.server import free_port, triton_for
    from triton_rerank.store import MilvusStore

    started = time.perf_counter()
    collection = load_beir(config.first_stage_data, "test")
    queries = list(collection.queries.values())[: 30 if config.quick else 100]
    exports = [(str(config.model), "cross-encoder", {"precision": "int8"}), (DEFAULT_EMBEDDER, "bi-encoder", {})]
    with (
        tempfile.TemporaryDirectory(prefix="triton-rerank-search-route-") as milvus_dir,
        triton_for(None, config.workdir() / "repository-search-route", exports) as (url, _),
        TritonEmbedFunction(url) as embed,
        TritonRerankFunction(url) as rerank,
    ):
        path = str(Path(milvus_dir) / "bench.db")
        with MilvusStore(path, collection="bench") as store:
            ingested = ingest(collection.documents, store, embed, batch_size=128)
            print(f"ingested {ingested.written} documents in {time.perf_counter() - started:.0f} s", flush=True)
            pipeline = RerankPipeline(store, embed, rerank)
            settings = ApiSettings(triton_url=url, port=free_port(), milvus_uri=path, collection="bench")
            with serving(settings) as api, httpx.Client(base_url=api, timeout=120) as http:
                ways = {
                    "pipeline in-process": lambda q: _in_process(pipeline.search(q, top_k=TOP_K)),
                    "POST /v1/search": lambda q: _answered(_route(http, q)),
                }
                latencies, outside, same = measure(ways, queries, config.rounds)
    result = summary(config, f"{len(collection.documents)} documents, {len(queries)} test queries", latencies, outside)
    result |= {"same_hits": same, "wall_s": time.perf_counter() - started}
    config.out.mkdir(parents=True, exist_ok=True)
    return save(config.out, "search-route-benchmark", result, markdown(result))


def summary(config: BenchmarkConfig, data: str, latencies: dict, outside: dict) -> dict:
    route, in_process = latencies["POST /v1/search"], latencies["pipeline in-process"]
    differences = [a - b for a, b in zip(route, in_process, strict=True)]
    beyond = [a - b for a, b in zip(outside["POST /v1/search"], outside["pipeline in-process"], strict=True)]
    return {
        "mode": "search-route",
        "machine": machine(),
        "data": f"{config.first_stage_data.name}: {data}",
        "search": f"hybrid (the pipeline's default), top {RETRIEVE_K} reranked by {config.model.name} (int8)",
        "score_cache": "off: every call cold",
        "rounds": config.rounds,
        "latency": {name: percentiles_ms(values) for name, values in latencies.items()},
        "overhead_ms": {
            "p50_of_differences": statistics.median(differences) * 1000,
            "p50_difference": (statistics.median(route) - statistics.median(in_process)) * 1000,
            # the time around the stages (embed, retrieve, rerank), where the route's own work is: HTTP,
            # parsing, rendering, the middlewares; free of the reranker's noise (tens of ms at 2 s)
            "p50_outside_the_stages": statistics.median(beyond) * 1000,
        },
    }


def _in_process(result) -> tuple[list[str], float]:
    return [hit.id for hit in result.hits], sum(result.timings_ms.values()) / 1000


def _answered(answer: dict) -> tuple[list[str], float]:
    return [hit["id"] for hit in answer["hits"]], sum(answer["timings_ms"].values()) / 1000


def _route(http, query: str) -> dict:
    response = http.post("/v1/search", json={"query": query, "retrieve_k": RETRIEVE_K, "top_k": TOP_K})
    response.raise_for_status()
    return response.json()


def measure(ways: dict, queries: list[str], rounds: int) -> tuple[dict, dict, str]:
    """Each query's time each way, and its time outside the stages, the ways' order swapped every
    query; and whether they agreed."""
    for query in queries[:WARM_UP_QUERIES]:
        for way in ways.values():
            way(query)
    latencies: dict[str, list[float]] = {name: [] for name in ways}
    outside: dict[str, list[float]] = {name: [] for name in ways}
    agreed = 0
    for round_ in range(rounds):
        for i, query in enumerate(queries):
            order = list(ways.items()) if (i + round_) % 2 == 0 else list(ways.items())[::-1]
            hits = {}
            for name, way in order:
                begun = time.perf_counter()
                hits[name], stages_s = way(query)
                latencies[name].append(time.perf_counter() - begun)
                outside[name].append(latencies[name][-1] - stages_s)
            agreed += len({tuple(ids) for ids in hits.values()}) == 1
    return latencies, outside, f"{agreed} of {rounds * len(queries)} searches gave the same hits both ways"


def markdown(result: dict) -> str:
    lines = [
        f"`POST /v1/search` against the pipeline in-process on {result['data']}; {result['search']}; "
        f"score cache {result['score_cache']}; {result['machine']}; {result['same_hits']}.",
        "",
        *latency_table("way", result["latency"]),
    ]
    overhead = result["overhead_ms"]
    lines += [
        "",
        f"Overhead of the route: {overhead['p50_outside_the_stages']:+.1f} ms around the stages (median of the "
        "per-query differences of the time outside embed, retrieve and rerank: HTTP, parsing, rendering); "
        f"{overhead['p50_of_differences']:+.1f} ms whole queries (median of the per-query differences); "
        f"{overhead['p50_difference']:+.1f} ms between the p50s.",
    ]
    return "\n".join(lines) + "\n"
