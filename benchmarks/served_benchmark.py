"""The served reranker against what users run today, side by side in one run.

The baseline is pymilvus' CrossEncoderRerankFunction (sentence-transformers on PyTorch, batch 32) in
this process, on the CPU. The served path is TritonRerankFunction against the embedded Triton server,
once with the fp32 ONNX export and once with the int8 one. Each request is one query with N
documents; C clients send requests back to back, in interleaved rounds (``grid``). Reported per
(variant, N, clients): pairs/s, latency p50/p95/p99, errors, Triton's own statistics, and each
served variant's accuracy against the baseline. The full run also measures the levers one at a time
and runs Triton's perf_analyzer (when found). Writes benchmark.json, benchmark.md and benchmark.png.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from benchmarks.config import BenchmarkConfig, data_description, machine
from benchmarks.grid import Workload, measure_grid, never


def run_served_benchmark(config: BenchmarkConfig) -> int:
    """The baseline and the fp32 and int8 exports; 1 when a request failed."""
    from benchmarks.servers import Served, export_repositories

    started = time.perf_counter()
    data, work = config.dl19(), config.workdir()
    workload = Workload.plan(config.quick, data, config.rounds)
    repositories = export_repositories(config.model, work)
    fp32, int8 = (
        Served("served fp32", repositories["fp32"]).start(),
        Served("served int8", repositories["int8"]).start(),
    )
    try:
        results = _measure(config, workload, work, fp32, int8)
    finally:
        fp32.stop()
        int8.stop()
    return write_report(config, data, workload, repositories["fp32"], results, time.perf_counter() - started)


def _measure(config: BenchmarkConfig, workload: Workload, work: Path, fp32, int8) -> dict:
    """The baseline and both exports over the grid; the levers and perf_analyzer in a full run."""
    from benchmarks.harness import accuracy, baseline_scorer, served_scorer
    from benchmarks.levers import measure_levers
    from benchmarks.perf_analyzer import run_perf_analyzer

    baseline = baseline_scorer(config.model)
    variants = {
        # In the quick run the baseline's 16-client cell (a minute of its own) is left out.
        "baseline": (lambda: baseline, None, (lambda n, c: c > 4) if config.quick else never),
        "served fp32": (served_scorer(fp32.url(config.protocol), config.batch_size), fp32.server.http_url, never),
        "served int8": (served_scorer(int8.url(config.protocol), config.batch_size), int8.server.http_url, never),
    }
    sample = workload.sample[:4]
    for make_scorer, _, _ in variants.values():  # warm-up: first calls allocate and compile
        make_scorer()(sample[0].query, sample[0].documents)
    reference = [baseline(r.query, r.documents) for r in sample]
    levers = (
        [] if config.quick else measure_levers(int8, workload.requests_for, work, config.protocol, config.batch_size, 2)
    )
    results = {
        "accuracy": {
            name: accuracy(reference, [make_scorer()(r.query, r.documents) for r in sample])
            for name, (make_scorer, _, _) in variants.items()
            if name != "baseline"
        },
        "cells": measure_grid(variants, workload, config.rounds),
        "levers": levers,
        "perf_analyzer": {},
    }
    if not config.no_perf_analyzer:
        address = int8.url("grpc").removeprefix("grpc://")
        concurrency = [1, 4] if config.quick else [1, 4, 16]
        results["perf_analyzer"] = run_perf_analyzer(address, sample[0], work, concurrency, config.perf_analyzer)
        perf = results["perf_analyzer"]
        print(f"perf_analyzer: {'ran' if perf['ran'] else 'did not run: ' + perf['why']}", flush=True)
    return results


def write_report(
    config: BenchmarkConfig, data, workload: Workload, fp32_repository: Path, results: dict, wall_s: float
) -> int:
    from benchmarks.report import markdown, plot, ratios
    from benchmarks.workload import tokens_per_pair

    cells = results.pop("cells")
    report = {
        "mode": "quick" if config.quick else "full",
        "machine": f"{machine()}, Python {platform.python_version()}",
        "score_cache": "off: every pair computed (benchmarks run cold)",
        "model": str(config.model.name),
        "data": data_description(data),
        "tokens_per_pair": tokens_per_pair(fp32_repository / "tokenizer" / "1" / "tokenizer.json", workload.sample[:8]),
        "protocol": config.protocol,
        "batch_size": config.batch_size,
        "rounds": config.rounds,
        "cells": [cell.summary() for cell in cells],
        "ratios": ratios(cells),
        **results,
        "wall_s": wall_s,
    }
    (config.out / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (config.out / "benchmark.md").write_text(table)
    plotted = plot(report, config.out / "benchmark.png")
    print("\n" + table)
    written = "benchmark.json, benchmark.md" + (", benchmark.png" if plotted else "")
    print(f"wrote {written} to {config.out} in {wall_s:.0f} s")
    errors = sum(cell["errors"] for cell in report["cells"])
    if errors:
        print(f"{errors} requests failed; see first_error in benchmark.json", file=sys.stderr)
    return 1 if errors else 0
