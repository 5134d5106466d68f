"""A bounded load test on loopback: many concurrent clients against the served reranker for a fixed
time, repeated, with the server's memory read between runs. It stops by itself.

Without --triton-url it exports --model (if the repository does not hold it) and starts the embedded
server. Each client sends one query with --documents documents from the built-in sample corpus, back
to back, over its own connection. Reported per run: requests, errors (each kind counted), pairs/s,
p50/p95/p99 latency, and the resident memory of the server and its backend stubs (embedded server
only). Exit status 1 when any request failed or the server's memory grew by more than
--max-memory-growth between the first run and the last.

--through-api puts the rerank API (``triton-rerank api``, its own process) in front of Triton and
sends every request through its Cohere route instead; its memory is read and bounded too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from triton_rerank.endpoints import TRITON_API_KEY_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--triton-url", help="a running Triton (grpc://... or http://...); default: the embedded one")
    parser.add_argument("--model", help="cross-encoder (hub id or folder) to export when the repository lacks it")
    parser.add_argument("--repository", type=Path, help="model repository (default: a temporary one)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=20, help="documents per request (default: %(default)s)")
    parser.add_argument("--max-memory-growth", type=float, default=0.10, help="allowed RSS growth, first to last run")
    parser.add_argument("--out", type=Path, help="write the report here as JSON")
    parser.add_argument("--through-api", action="store_true", help="send the requests through the rerank API")


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


def one_run(make_scorer, args: argparse.Namespace, requests: list) -> dict:
    from benchmarks.harness import percentiles_ms, run_clients

    run = run_clients(make_scorer, requests, args.clients, duration_s=args.duration_s)
    return {
        "requests": len(run.latencies) + len(run.errors),
        "errors": len(run.errors),
        "error_kinds": dict(Counter(error[:200] for error in run.errors)),
        "pairs_per_s": run.pairs / run.wall_s,
        **percentiles_ms(run.latencies),
        "wall_s": run.wall_s,
    }


def run(args: argparse.Namespace) -> int:
    from benchmarks.api_process import ApiProcess
    from benchmarks.harness import api_scorer, served_scorer
    from benchmarks.workload import Request
    from triton_rerank.api.settings import RERANK_API_KEY_ENV
    from triton_rerank.samples import SAMPLE_QUERIES, sample_texts
    from triton_rerank.serving.server import triton_for

    if args.triton_url is None and args.model is None and args.repository is None:
        print("give --triton-url, or --model / --repository for the embedded server")
        return 2
    api_key = os.environ.get(TRITON_API_KEY_ENV) or None
    corpus = sample_texts()
    documents = [corpus[i % len(corpus)] for i in range(args.documents)]
    requests = [Request(SAMPLE_QUERIES[i % len(SAMPLE_QUERIES)], documents) for i in range(args.clients)]
    exports = [(args.model, "cross-encoder", {"precision": args.precision})] if args.model else []
    with (
        tempfile.TemporaryDirectory(prefix="triton-rerank-load-") as workdir,
        triton_for(args.triton_url, args.repository or Path(workdir) / "models", exports, api_key=api_key) as (
            url,
            server,
        ),
        contextlib.ExitStack() as stack,
    ):
        processes = {"server": server.pid} if server is not None else {}  # process-group leaders to read
        make_scorer = served_scorer(url, api_key=api_key)
        if args.through_api:
            api = stack.enter_context(ApiProcess(url))
            processes["api"] = api.pid
            make_scorer = api_scorer(api.url, api_key=os.environ.get(RERANK_API_KEY_ENV) or None)
        report = {"url": url, "clients": args.clients, "duration_s": args.duration_s, "documents": args.documents}
        report["through_api"] = args.through_api
        report["score_cache"] = "off: every pair computed"  # benchmarks run cold (see --cache-replay for warm)
        report["cores"] = os.cpu_count()
        runs = report["runs"] = []
        for number in range(1, args.runs + 1):
            result = one_run(make_scorer, args, requests)
            for name, leader in processes.items():
                result[f"{name}_rss_mb"] = process_group_rss_mb(leader)
            runs.append(result)
            memory = "".join(f", {name} RSS {result[f'{name}_rss_mb']:.0f} MB" for name in processes)
            print(
                f"run {number}: {result['requests']} requests, {result['errors']} errors, "
                f"{result['pairs_per_s']:.0f} pairs/s, p50 {result['p50_ms'] or 0:.0f} ms, "
                f"p95 {result['p95_ms'] or 0:.0f} ms, p99 {result['p99_ms'] or 0:.0f} ms{memory}",
                flush=True,
            )
            for kind, count in result["error_kinds"].items():
                print(f"  {count} x {kind}", flush=True)
    grew = False
    if len(runs) > 1:
        for name in processes:
            growth = report[f"{name}_memory_growth"] = runs[-1][f"{name}_rss_mb"] / runs[0][f"{name}_rss_mb"] - 1
            grew = grew or growth > args.max_memory_growth
            print(f"{name} memory, first run to last: {growth:+.1%} (allowed {args.max_memory_growth:.0%})")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    errors = sum(r["errors"] for r in runs)
    return 1 if errors or grew else 0
