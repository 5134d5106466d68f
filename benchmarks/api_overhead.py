"""What the rerank API costs: the int8 export through ``triton-rerank api``'s Cohere route (an HTTP
client per thread) against the direct gRPC client, N = 10 and 100 with 1, 4 and 16 clients,
interleaved in the same run; writes api-benchmark.json and api-benchmark.md.
"""

from __future__ import annotations

import time

from benchmarks.config import BenchmarkConfig, data_description, machine
from benchmarks.grid import Workload, measure_grid, never

API_GRID = [(n, c) for n in (10, 100) for c in (1, 4, 16)]


def run_api_benchmark(config: BenchmarkConfig) -> int:
    """The rerank API against the direct gRPC client, on one int8 server, interleaved."""
    from benchmarks.api_process import ApiProcess
    from benchmarks.harness import accuracy, api_scorer, served_scorer
    from benchmarks.report import api_markdown, api_overhead, save
    from benchmarks.servers import Served, export_repositories

    started = time.perf_counter()
    data, work = config.dl19(), config.workdir()
    workload = Workload.plan(config.quick, data, config.rounds, grid=API_GRID)
    int8 = Served("served int8", export_repositories(config.model, work)["int8"]).start()
    try:
        with ApiProcess(int8.url("grpc")) as api:
            variants = {
                "direct gRPC": (served_scorer(int8.url("grpc"), config.batch_size), int8.server.http_url, never),
                "via API": (api_scorer(api.url), int8.server.http_url, never),
            }
            sample = workload.sample[:4]
            for make_scorer, _, _ in variants.values():  # warm-up
                make_scorer()(sample[0].query, sample[0].documents)
            direct, through_api = (variants[name][0]() for name in variants)
            agreement = accuracy(
                [direct(r.query, r.documents) for r in sample], [through_api(r.query, r.documents) for r in sample]
            )
            cells = measure_grid(variants, workload, config.rounds)
    finally:
        int8.stop()
    report = {
        "mode": "api",
        "machine": machine(),
        "model": f"{config.model.name} (int8)",
        "data": data_description(data),
        "rounds": config.rounds,
        "api_vs_direct_scores": agreement,
        "cells": [cell.summary() for cell in cells],
        "overhead": api_overhead(cells),
        "wall_s": time.perf_counter() - started,
    }
    return save(config.out, "api-benchmark", report, api_markdown(report))
