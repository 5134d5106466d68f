"""What tracing costs: the rerank API with OpenTelemetry tracing on (every request sampled, its
spans exported over OTLP/HTTP to a local receiver, Triton in its OpenTelemetry trace mode adding
its own spans under each Triton call) against the same API with tracing off, on one int8 server,
interleaved in the same run; writes tracing-benchmark.json and tracing-benchmark.md. Goal: tracing
on keeps at least 95 % of the throughput.
"""

from __future__ import annotations

import time

from benchmarks.api_overhead import API_GRID
from benchmarks.config import BenchmarkConfig, data_description, machine
from benchmarks.grid import Workload, measure_grid, never

OFF, ON = "API, tracing off", "API, tracing on"
GOAL = 0.95


def run_tracing_benchmark(config: BenchmarkConfig) -> int:
    from benchmarks.api_process import ApiProcess
    from benchmarks.harness import api_scorer
    from benchmarks.otlp_receiver import OtlpReceiver
    from benchmarks.report import save
    from benchmarks.servers import Served, export_repositories

    started = time.perf_counter()
    data, work = config.dl19(), config.workdir()
    workload = Workload.plan(config.quick, data, config.rounds, grid=API_GRID)
    with OtlpReceiver() as receiver:
        # rate 0: Triton traces exactly the requests that arrive with a trace context (the traced API's).
        int8 = Served("served int8", export_repositories(config.model, work)["int8"]).start(trace_url=receiver.url)
        try:
            traced_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
            with ApiProcess(int8.url("grpc")) as off, ApiProcess(int8.url("grpc"), env=traced_env) as on:
                variants = {
                    OFF: (api_scorer(off.url), int8.server.http_url, never),
                    ON: (api_scorer(on.url), int8.server.http_url, never),
                }
                sample = workload.sample[0]
                for make_scorer, _, _ in variants.values():  # warm-up
                    make_scorer()(sample.query, sample.documents)
                cells = measure_grid(variants, workload, config.rounds)
                time.sleep(2)  # the exporters' last batches
        finally:
            int8.stop()
        services = sorted({span.service for span in receiver.spans})
        spans = len(receiver.spans)
    report = {
        "mode": "tracing",
        "machine": machine(),
        "model": f"{config.model.name} (int8)",
        "data": data_description(data),
        "rounds": config.rounds,
        "spans_received": spans,
        "services_traced": services,
        "cells": [cell.summary() for cell in cells],
        "overhead": kept(cells),
        "goal": GOAL,
        "wall_s": time.perf_counter() - started,
    }
    return save(config.out, "tracing-benchmark", report, markdown(report))


def kept(cells: list) -> list[dict]:
    """Tracing on against off, per (N, clients)."""
    by_key = {(c.variant, c.n, c.clients): c.summary() for c in cells}
    rows = []
    for n, clients in sorted({(c.n, c.clients) for c in cells}):
        off, on = by_key[(OFF, n, clients)], by_key[(ON, n, clients)]
        rows.append(
            {
                "n": n,
                "clients": clients,
                "off_pairs_per_s": off["pairs_per_s_median"],
                "on_pairs_per_s": on["pairs_per_s_median"],
                "throughput_kept": on["pairs_per_s_median"] / off["pairs_per_s_median"],
                "off_p50_ms": off["p50_ms"],
                "on_p50_ms": on["p50_ms"],
            }
        )
    return rows


def markdown(report: dict) -> str:
    lines = [
        "# What tracing costs: the rerank API with OpenTelemetry on against off",
        "",
        f"Machine: {report['machine']}. Model: {report['model']}. Data: {report['data']}. {report['rounds']} "
        f"interleaved rounds; pairs/s is the median of the rounds. Tracing on: every request sampled, exported "
        f"over OTLP/HTTP to a local receiver, which got {report['spans_received']:,} spans from "
        f"{', '.join(report['services_traced'])}. Goal: at least {report['goal']:.0%} of the throughput kept.",
        "",
        "| N | clients | off pairs/s | on pairs/s | kept | off p50 ms | on p50 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["overhead"]:
        lines.append(
            f"| {row['n']} | {row['clients']} | {row['off_pairs_per_s']:.0f} | {row['on_pairs_per_s']:.0f} | "
            f"{row['throughput_kept']:.0%} | {row['off_p50_ms']:.1f} | {row['on_p50_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"
