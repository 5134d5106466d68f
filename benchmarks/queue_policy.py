"""The bounded queue's cost, side by side: the reranker exported with Triton's queue limit (the
default, ``--max-queue-size 128``: overload is refused, never queued without bound) and without
one (``--max-queue-size 0``, under which Triton prefetches batches), fp32 and int8, N = 100 and
4 clients, interleaved rounds, each variant on a server of its own that runs alone."""

from __future__ import annotations

import json

from benchmarks.config import BenchmarkConfig, data_description, machine
from benchmarks.harness import Cell, measure, served_scorer
from benchmarks.servers import export_repositories
from benchmarks.workload import load_requests
from triton_rerank.serving.layout import DEFAULT_MAX_QUEUE_SIZE, RepositorySettings

N, CLIENTS = 100, 4


def run_queue_policy_benchmark(config: BenchmarkConfig) -> int:
    from triton_rerank.serving.export import ensure_exported
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    bounded = export_repositories(config.model, config.workdir())  # the default exports, as other modes use
    variants = {}
    for precision in ("fp32", "int8"):
        unbounded = config.workdir() / f"repository-{precision}-unbounded"
        settings = RepositorySettings(max_queue_size=0)
        ensure_exported(unbounded, str(config.model), "cross-encoder", settings=settings, precision=precision)
        variants[f"{precision} unbounded"] = unbounded
        variants[f"{precision} bounded {DEFAULT_MAX_QUEUE_SIZE}"] = bounded[precision]
    requests = load_requests(config.dl19(), N, CLIENTS * (3 if config.quick else 12))
    cells = {name: Cell(name, N, CLIENTS) for name in variants}
    for round_index in range(config.rounds):
        for name, repository in variants.items():
            with EmbeddedTritonServer(repository, free_port_settings()) as server:
                url = server.grpc_url if config.protocol == "grpc" else server.http_url
                scorer = served_scorer(url, config.batch_size)
                measure(Cell("warm-up", N, CLIENTS), scorer, requests[:CLIENTS], CLIENTS)
                measure(cells[name], scorer, requests, CLIENTS, server.http_url)
            print(f"round {round_index}: {name:<16} {cells[name].throughputs[-1]:7.1f} pairs/s", flush=True)
    summaries = {name: cell.summary() for name, cell in cells.items()}
    ratios = {
        precision: summaries[f"{precision} bounded {DEFAULT_MAX_QUEUE_SIZE}"]["pairs_per_s_median"]
        / summaries[f"{precision} unbounded"]["pairs_per_s_median"]
        for precision in ("fp32", "int8")
    }
    for precision, ratio in ratios.items():
        print(f"{precision}: bounded / unbounded pairs/s (medians) = {ratio:.3f}")
    report = {"machine": machine(), "data": data_description(config.dl19()), "rounds": config.rounds,
              "n": N, "clients": CLIENTS, "cells": summaries, "bounded_over_unbounded": ratios}  # fmt: skip
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "queue-policy.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(cell["errors"] == 0 for cell in summaries.values()) else 1
