#!/usr/bin/env python
"""A bounded load test on loopback: many concurrent clients against the served reranker for a fixed
time, repeated, with the server's memory read between runs. It stops by itself.

    python scripts/load_test.py --model ../shared/models/minilm-l6-scifact-ce      # 32 clients x 60 s x 3 runs
    python scripts/load_test.py --url grpc://127.0.0.1:8001 --clients 32 --duration-s 60 --runs 3

Without --url it exports --model (if the repository does not hold it) and starts the embedded
server. Each client sends one query with --documents documents from the built-in sample corpus,
back to back, over its own connection. Reported per run: requests, errors (each kind counted),
pairs/s, p50/p95/p99 latency, and the resident memory of the server and its backend stubs
(embedded server only). Exit status 1 when any request failed or the server's memory grew by more
than --max-memory-growth between the first run and the last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from triton_rerank import TritonRerankFunction
from triton_rerank.samples import SAMPLE_QUERIES, sample_texts


def process_group_rss_mb(leader: int) -> float:
    """Resident memory of every process in ``leader``'s process group (the server and its stubs)."""
    total_kb = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pgrp = int(stat.rsplit(")", 1)[1].split()[2])
            if pgrp != leader:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            continue  # a process that ended while we looked
    return total_kb / 1024


def run(url: str, clients: int, duration_s: float, documents: list[str], api_key: str | None) -> dict:
    """``clients`` threads send requests back to back until ``duration_s`` has passed."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def client(index: int) -> None:
        query = SAMPLE_QUERIES[index % len(SAMPLE_QUERIES)]
        with TritonRerankFunction(url, timeout_s=120, api_key=api_key) as rf:
            start.wait()
            while time.perf_counter() < stop_at[0]:
                began = time.perf_counter()
                try:
                    scores = rf.score(query, documents)
                    if len(scores) != len(documents):
                        raise RuntimeError(f"{len(scores)} scores for {len(documents)} documents")
                except Exception as err:  # counted and reported, never hidden
                    with lock:
                        errors[f"{type(err).__name__}: {str(err)[:160]}"] += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at.append(time.perf_counter() + duration_s)
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "requests": len(latencies) + sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "pairs_per_s": len(latencies) * len(documents) / wall,
        "p50_ms": 1000 * quantiles[49],
        "p95_ms": 1000 * quantiles[94],
        "p99_ms": 1000 * quantiles[98],
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running Triton (grpc://... or http://...); default: start the embedded one")
    parser.add_argument("--model", help="cross-encoder (hub id or folder) to export when the repository lacks it")
    parser.add_argument("--repository", type=Path, help="model repository (default: a temporary one)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=20, help="documents per request (default: %(default)s)")
    parser.add_argument("--max-memory-growth", type=float, default=0.10, help="allowed RSS growth, first to last run")
    parser.add_argument("--out", type=Path, help="write the report here as JSON")
    args = parser.parse_args(argv)
    if args.url is None and args.model is None and args.repository is None:
        parser.error("give --url, or --model / --repository for the embedded server")
    api_key = os.environ.get("TRITON_RERANK_API_KEY") or None
    corpus = sample_texts()
    documents = [corpus[i % len(corpus)] for i in range(args.documents)]

    server = None
    workdir = tempfile.TemporaryDirectory(prefix="triton-rerank-load-")
    try:
        url = args.url
        if url is None:
            from triton_rerank.server import EmbeddedTritonServer, free_port_settings

            repository = args.repository or Path(workdir.name) / "models"
            if args.model:
                from triton_rerank.export import ensure_exported

                ensure_exported(repository, args.model, "cross-encoder", args.precision)
            server = EmbeddedTritonServer(repository, free_port_settings(api_key=api_key)).start()
            url = server.grpc_url
        report = {"url": url, "clients": args.clients, "duration_s": args.duration_s, "documents": args.documents}
        report["cores"] = os.cpu_count()
        runs = []
        for number in range(1, args.runs + 1):
            result = run(url, args.clients, args.duration_s, documents, api_key)
            if server is not None:
                result["server_rss_mb"] = process_group_rss_mb(server._process.pid)
            runs.append(result)
            memory = f", server RSS {result['server_rss_mb']:.0f} MB" if "server_rss_mb" in result else ""
            print(
                f"run {number}: {result['requests']} requests, {result['errors']} errors, "
                f"{result['pairs_per_s']:.0f} pairs/s, p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, "
                f"p99 {result['p99_ms']:.0f} ms{memory}",
                flush=True,
            )
            for kind, count in result["error_kinds"].items():
                print(f"  {count} x {kind}", flush=True)
        report["runs"] = runs
        errors = sum(r["errors"] for r in runs)
        growth = None
        if server is not None and len(runs) > 1:
            growth = runs[-1]["server_rss_mb"] / runs[0]["server_rss_mb"] - 1
            report["memory_growth"] = growth
            print(f"server memory, first run to last: {growth:+.1%} (allowed {args.max_memory_growth:.0%})")
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
        return 1 if errors or (growth is not None and growth > args.max_memory_growth) else 0
    finally:
        if server is not None:
            server.stop()
        workdir.cleanup()


if __name__ == "__main__":
    sys.exit(main())
