"""The levers, one at a time: each changed alone against the int8 served default (N = 100,
4 clients), so that every default of the repository and the client is a measured choice."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks.harness import Cell, measure, served_scorer
from benchmarks.servers import Served, lever_repository
from benchmarks.workload import Request
from triton_rerank.serving.statistics import triton_stats


def _instances(count, threads):
    from tritonclient.grpc import model_config_pb2 as mc

    def edit(name, config):
        if name == "cross_encoder":
            del config.instance_group[:]
            config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=count)
            config.parameters["intra_op_thread_count"].string_value = str(threads)

    return edit


def _parameter(key, value):
    def edit(name, config):
        if name == "cross_encoder":
            config.parameters[key].string_value = str(value)

    return edit


def _dynamic_batching(us):
    def edit(name, config):
        if name == "cross_encoder":
            config.dynamic_batching.SetInParent()
            config.dynamic_batching.max_queue_delay_microseconds = us

    return edit


def _queue_limits(name, config):  # this project's defaults until measured here; the policy needs the batcher
    from triton_rerank.serving import layout
    from triton_rerank.serving import repository as repo

    limits = layout.RepositorySettings(max_queue_size=512, queue_timeout_s=30)
    if name == "tokenizer":
        config.dynamic_batching.default_queue_policy.CopyFrom(repo.queue_policy(limits))
    elif name == "cross_encoder":
        config.dynamic_batching.CopyFrom(repo.model_config(limits).dynamic_batching)


SERVER_LEVERS = {
    "threads split operators (one row at a time)": _parameter("runner_parallelism", "operators"),
    "queue limits (512 requests, 30 s) and the batcher they need": _queue_limits,
    "no length grouping (whole batch, arrival order)": _parameter("runner_slice_rows", 0),
    "length-sorted slices of 4 rows": _parameter("runner_slice_rows", 4),
    "length-sorted slices of 16 rows": _parameter("runner_slice_rows", 16),
    "length-sorted slices of 32 rows": _parameter("runner_slice_rows", 32),
    "1 instance x 2 threads": _instances(1, 2),
    "2 instances x 1 thread": _instances(2, 1),
    "dynamic batching, max_queue_delay 0 us": _dynamic_batching(0),
    "dynamic batching, max_queue_delay 1000 us": _dynamic_batching(1000),
}


def measure_levers(int8: Served, requests_for, work: Path, protocol: str, batch_size: int, rounds: int) -> list[dict]:
    """Each lever changed alone against the int8 served default, at N = 100 and 4 clients."""
    n, clients = 100, 4
    results = []

    def measure_lever(name: str, make_scorer, stats_url) -> None:
        cell = Cell(name, n, clients)
        for round_index in range(rounds):
            measure(cell, make_scorer, requests_for(n, clients, round_index), clients, stats_url)
        results.append(cell.summary())
        print(f"lever  {name:<48} {results[-1]['pairs_per_s_median']:7.1f} pairs/s", flush=True)

    measure_lever("int8 default", served_scorer(int8.url(protocol), batch_size), int8.server.http_url)
    other = "http" if protocol == "grpc" else "grpc"
    measure_lever(f"{other} instead of {protocol}", served_scorer(int8.url(other), batch_size), int8.server.http_url)
    for size in (16, 32, 64, 128):
        if size != batch_size:
            measure_lever(f"client batch_size {size}", served_scorer(int8.url(protocol), size), int8.server.http_url)
    for name, edit in SERVER_LEVERS.items():
        lever = Served(name, lever_repository(int8.repository, work / "lever", edit)).start()
        try:
            measure_lever(name, served_scorer(lever.url(protocol), batch_size), lever.server.http_url)
        finally:
            lever.stop()
    results.append(measure_response_cache(int8.repository, work, requests_for(n, 1, 0)[0], protocol))
    return results


def measure_response_cache(repository: Path, work: Path, request: Request, protocol: str) -> dict:
    """Latency of a repeated identical request, with Triton's response cache off and on."""

    def enable(name, config):
        if name == "reranker":
            config.response_cache.enable = True

    out = {"variant": "response cache (same request repeated, 1 client)", "n": request.pairs}
    for label, repo, cache_bytes in (
        ("off", repository, 0),
        ("on", lever_repository(repository, work / "lever-cache", enable), 256 * 2**20),
    ):
        served = Served(label, repo).start(response_cache_bytes=cache_bytes)
        try:
            score = served_scorer(served.url(protocol))()
            score(request.query, request.documents)  # the first call fills the cache
            times = []
            for _ in range(10):
                began = time.perf_counter()
                score(request.query, request.documents)
                times.append(time.perf_counter() - began)
            out[f"p50_ms_cache_{label}"] = statistics.median(times) * 1000
            out[f"cache_hits_{label}"] = triton_stats(served.server.http_url).get("reranker", {}).get("cache_hits", 0)
        finally:
            served.stop()
    print(f"lever  response cache: p50 {out['p50_ms_cache_off']:.0f} ms off, {out['p50_ms_cache_on']:.1f} ms on")
    return out
