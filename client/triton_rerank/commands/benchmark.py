"""Benchmark the served reranker against what users run today, side by side in one run.

The baseline is pymilvus' CrossEncoderRerankFunction (sentence-transformers on PyTorch, batch 32) in
this process, on the CPU. The served path is TritonRerankFunction against the embedded Triton server,
once with the fp32 ONNX export and once with the int8 one. Each request is one query with N
documents; C clients send requests back to back, in interleaved rounds (baseline, fp32, int8, then
the next round in rotated order) so that a slow spell of a shared machine hits all of them.
Reported per (variant, N, clients): pairs/s, latency p50/p95/p99, errors, Triton's own statistics,
and each served variant's accuracy against the baseline. The full run also measures the levers one
at a time and runs Triton's perf_analyzer (when found). Writes benchmark.json, benchmark.md and
benchmark.png to --out. --quick: N = 100 with 1, 4 and 16 clients, in about 3 minutes.

--long-documents measures what reading long documents in windows costs: requests of long documents
(DL19 passages joined ten to a document) under ``long_documents="max"`` against requests of their
very windows sent as plain documents, so both score the same rows; rows/s side by side, 1 and 4
clients; writes long-documents-benchmark.json.

--tiers measures each accuracy tier against the strongest in-process peer of that tier, same
requests, same run: exact (served fp32 vs sentence-transformers' ONNX backend), near-exact (served
bf16 vs its OpenVINO backend at the CPU's default precision) and int8 (served int8, ONNX Runtime's
and OpenVINO's, vs its ONNX dynamic int8 and OpenVINO NNCF int8), with pymilvus' function as the
baseline. Every row gets accuracy columns against fp32 PyTorch. The peers run in their own environment (``make peers``);
N = 100 with 1 and 4 clients; writes tiers-benchmark.json and tiers-benchmark.md.

--families measures each reranker family's pairs/s beside its PyTorch reference, and --cpu-scaling
the served int8 on 1, 2, 4, ... cores (``benchmark_scaling``).

--api measures what the rerank API costs instead: the int8 export through ``triton-rerank api``'s
Cohere route (an HTTP client per thread) against the direct gRPC client, N = 10 and 100 with 1, 4
and 16 clients, interleaved in the same run; writes api-benchmark.json and api-benchmark.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from triton_rerank.base import DEFAULT_BATCH_SIZE
from triton_rerank.bench.families import SHAPES
from triton_rerank.bench.peers import PEER_NAMES
from triton_rerank.commands.benchmark_scaling import QWEN3_TOKENIZER, core_counts, run_cpu_scaling, run_families
from triton_rerank.commands.common import PEERS_PYTHON, SHARED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="N = 100 only, fewer requests, no levers (< 3 min)")
    parser.add_argument(
        "--model",
        type=Path,
        default=SHARED / "models" / "minilm-l6-scifact-ce",
        help="cross-encoder folder (default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED / "data" / "msmarco-passage-dl19-bm25top100",
        help="TREC DL 2019 folder; synthetic passages if absent (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("generated/benchmark"), help="(default: %(default)s)")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="client batch_size")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--perf-analyzer", help="Triton's perf_analyzer binary (default: the one on PATH)")
    parser.add_argument("--no-perf-analyzer", action="store_true")
    parser.add_argument("--api", action="store_true", help="the rerank API's overhead against the direct client")
    parser.add_argument(
        "--long-documents", action="store_true", help="what windows and the fold cost, against the same rows sent plain"
    )
    parser.add_argument(
        "--tiers", action="store_true", help="each precision tier against the fastest in-process peer of that tier"
    )
    parser.add_argument(
        "--families", action="store_true", help="pairs/s per model family (BERT, XLM-R, Qwen3), fp32 and int8"
    )
    parser.add_argument(
        "--family",
        action="append",
        help="with --families: LABEL=MODEL[@KIND], MODEL a hub id, a folder or shape:NAME (random weights at a "
        "checkpoint's sizes: " + ", ".join(SHAPES) + "); repeatable (default: the --model checkpoint and "
        "both shapes)",
    )
    parser.add_argument(
        "--qwen3-tokenizer",
        type=Path,
        default=QWEN3_TOKENIZER,
        help="Qwen3's tokenizer files, for shape:qwen3-reranker-0.6b (`make qwen3-tokenizer`; default: %(default)s)",
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="with --families or --cpu-scaling: seconds a measurement runs"
    )
    parser.add_argument(
        "--cpu-scaling",
        type=core_counts,
        help="served int8 pairs/s on these core counts, e.g. 1,2,4,8,16: the server pinned to that many cores",
    )
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_PYTHON,
        help="the Python of the peers' environment, built by `make peers` (default: %(default)s)",
    )


@dataclass
class Workload:
    """The (N, clients) grid and the requests each cell sends in each round."""

    grid: list[tuple[int, int]]
    pool: dict[int, list]
    pairs_per_cell: int

    @classmethod
    def plan(cls, quick: bool, data: Path | None, rounds: int, grid: list[tuple[int, int]] | None = None) -> Workload:
        from triton_rerank.bench.workload import load_requests

        if grid is None:  # 16 clients x 1000 documents would queue for minutes on a small machine.
            grid = [(100, c) for c in (1, 4, 16)]
            if not quick:
                grid = [(10, 1), (10, 4), (10, 16), *grid, (1000, 1), (1000, 4)]
        workload = cls(grid, {}, 200 if quick else 600)
        for n in sorted({n for n, _ in grid}):
            most = max(workload.count(n, c) for m, c in grid if m == n)
            workload.pool[n] = load_requests(data, n, most * rounds)
        return workload

    def count(self, n: int, clients: int) -> int:
        return clients * max(1, math.ceil(self.pairs_per_cell / n / clients))

    def requests_for(self, n: int, clients: int, round_index: int) -> list:
        count = self.count(n, clients)
        return self.pool[n][round_index * count : (round_index + 1) * count] or self.pool[n][:count]

    @property
    def sample(self) -> list:
        return self.pool[100 if 100 in self.pool else min(self.pool)]


def measure_grid(variants: dict[str, tuple], workload: Workload, rounds: int) -> list:
    """Interleaved rounds over every (N, clients) cell and variant; returns the cells measured."""
    from triton_rerank.bench.harness import Cell, measure

    cells = {(name, n, c): Cell(name, n, c) for name in variants for n, c in workload.grid}
    names = list(variants)
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for n, clients in workload.grid:
            for name in order:
                make_scorer, stats_url, skip = variants[name]
                if skip(n, clients):
                    continue
                cell = cells[(name, n, clients)]
                measure(cell, make_scorer, workload.requests_for(n, clients, round_index), clients, stats_url)
                print(
                    f"round {round_index + 1}/{rounds}  N={n:<5} clients={clients:<3} {name:<14} "
                    f"{cell.throughputs[-1]:7.1f} pairs/s  p50 {cell.summary()['p50_ms'] or float('nan'):8.0f} ms  "
                    f"errors {len(cell.errors)}",
                    flush=True,
                )
    return [cell for cell in cells.values() if cell.throughputs]


def run(args: argparse.Namespace) -> int:
    from triton_rerank.bench.harness import accuracy, baseline_scorer, served_scorer
    from triton_rerank.bench.levers import measure_levers
    from triton_rerank.bench.perf_analyzer import run_perf_analyzer
    from triton_rerank.bench.servers import Served, export_repositories

    if args.families:
        return run_families(args)
    if not args.model.exists():
        print(f"no model at {args.model}: pass --model with a cross-encoder folder", file=sys.stderr)
        return 2
    if args.cpu_scaling:
        return run_cpu_scaling(args)
    if args.api:
        return run_api(args)
    if args.long_documents:
        return run_long_documents(args)
    if args.tiers:
        return run_tiers(args)
    started = time.perf_counter()
    data = args.data if args.data.exists() else None
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    workload = Workload.plan(args.quick, data, args.rounds)
    repositories = export_repositories(args.model, work)
    fp32, int8 = (
        Served("served fp32", repositories["fp32"]).start(),
        Served("served int8", repositories["int8"]).start(),
    )
    try:
        baseline = baseline_scorer(args.model)
        never = lambda n, c: False  # noqa: E731
        variants = {
            # In the quick run the baseline's 16-client cell (a minute of its own) is left out.
            "baseline": (lambda: baseline, None, (lambda n, c: c > 4) if args.quick else never),
            "served fp32": (served_scorer(fp32.url(args.protocol), args.batch_size), fp32.server.http_url, never),
            "served int8": (served_scorer(int8.url(args.protocol), args.batch_size), int8.server.http_url, never),
        }
        sample = workload.sample[:4]
        for make_scorer, _, _ in variants.values():  # warm-up: first calls allocate and compile
            make_scorer()(sample[0].query, sample[0].documents)
        reference = [baseline(r.query, r.documents) for r in sample]
        results = {
            "accuracy": {
                name: accuracy(reference, [make_scorer()(r.query, r.documents) for r in sample])
                for name, (make_scorer, _, _) in variants.items()
                if name != "baseline"
            },
            "cells": measure_grid(variants, workload, args.rounds),
            "levers": []
            if args.quick
            else measure_levers(int8, workload.requests_for, work, args.protocol, args.batch_size, 2),
            "perf_analyzer": {},
        }
        if not args.no_perf_analyzer:
            address = int8.url("grpc").removeprefix("grpc://")
            concurrency = [1, 4] if args.quick else [1, 4, 16]
            results["perf_analyzer"] = run_perf_analyzer(address, sample[0], work, concurrency, args.perf_analyzer)
            perf = results["perf_analyzer"]
            print(f"perf_analyzer: {'ran' if perf['ran'] else 'did not run: ' + perf['why']}", flush=True)
    finally:
        fp32.stop()
        int8.stop()
    return write_report(args, data, workload, repositories["fp32"], results, time.perf_counter() - started)


# Tier -> its in-process peers (kind, name in the report) and its served exports (bench.servers.EXPORTS).
TIERS = {
    tier: ([(kind, PEER_NAMES[kind]) for kind in kinds], exports)
    for tier, kinds, exports in (
        ("exact", ["st-onnx"], ["fp32"]),
        ("near-exact", ["st-openvino"], ["bf16"]),
        ("int8", ["st-onnx-int8", "st-openvino-int8"], ["int8", "int8-openvino"]),
    )
}


def run_tiers(args: argparse.Namespace) -> int:
    """Each tier's served precision against that tier's in-process peers, interleaved in one run."""
    from triton_rerank.bench.harness import accuracy, baseline_scorer, served_scorer
    from triton_rerank.bench.peers import PeerProcess
    from triton_rerank.bench.report import tier_verdicts, tiers_markdown
    from triton_rerank.bench.servers import Served, export_repositories
    from triton_rerank.bench.workload import load_requests
    from triton_rerank.serving.export.precision import bf16_support

    if not args.peers_python.exists():
        print(f"no peers environment at {args.peers_python}: run `make peers` first", file=sys.stderr)
        return 2
    started = time.perf_counter()
    data = args.data if args.data.exists() else None
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    workload = Workload.plan(args.quick, data, args.rounds, grid=[(100, 1), (100, 4)])
    # NNCF calibrates on pairs of queries the benchmark never scores (the last DL19 queries).
    calibration = [(r.query, d) for r in load_requests(data, 100, 43)[-3:] for d in r.documents]
    exports = [name for _, names in TIERS.values() for name in names if name != "bf16" or not bf16_support()]
    repositories = export_repositories(args.model, work, exports)
    served, peers, skipped = {}, {}, {}
    never = lambda n, c: False  # noqa: E731
    try:
        for name in exports:  # one by one, so that a failed start stops those already up
            served[name] = Served(f"served {name}", repositories[name]).start()
        baseline = baseline_scorer(args.model)
        variants = {"pymilvus (torch)": (lambda: baseline, None, never)}
        for tier_peers, tier_exports in TIERS.values():
            for kind, name in tier_peers:
                print(f"starting peer {name} ...", flush=True)
                try:
                    peers[name] = PeerProcess(kind, args.model, work / "peers", args.peers_python).start(calibration)
                except RuntimeError as err:  # said in the report, never hidden
                    skipped[name] = str(err)
                    continue
                variants[name] = (peers[name], None, never)
            for name in tier_exports:
                if name not in served:
                    skipped[f"served {name}"] = bf16_support()
                    continue
                server = served[name]
                variants[server.name] = (served_scorer(server.url(args.protocol), args.batch_size), None, never)
        sample = workload.sample[:8]
        reference = [baseline(r.query, r.documents) for r in sample]
        scores = {
            name: runner.score(sample)
            if isinstance(runner, PeerProcess)
            else [runner()(r.query, r.documents) for r in sample]
            for name, (runner, _, _) in variants.items()
        }
        results = {
            "accuracy": {name: accuracy(reference, got) for name, got in scores.items()},
            "cells": measure_grid(variants, workload, args.rounds),
        }
    finally:
        for peer in peers.values():
            peer.stop()
        for server in served.values():
            server.stop()
    cells = [cell.summary() for cell in results["cells"]]
    report = {
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.system()}",
        "model": str(args.model.name),
        "data": "TREC DL 2019 BM25 top-100 passages" if data else "synthetic passages of 40-120 words",
        "rounds": args.rounds,
        "accuracy_requests": len(sample),
        "tiers": {
            tier: [name for _, name in tier_peers] + [f"served {name}" for name in names]
            for tier, (tier_peers, names) in TIERS.items()
        },
        "accuracy": results["accuracy"],
        "skipped": skipped,
        "cells": cells,
        "verdicts": tier_verdicts(cells, results["accuracy"], TIERS),
        "wall_s": time.perf_counter() - started,
    }
    (args.out / "tiers-benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = tiers_markdown(report)
    (args.out / "tiers-benchmark.md").write_text(table)
    print("\n" + table + f"\nwrote tiers-benchmark.json, tiers-benchmark.md to {args.out} in {report['wall_s']:.0f} s")
    # A peer's failed requests are a finding about the peer, reported above; ours fail the run.
    return 1 if any(cell["errors"] for cell in cells if cell["variant"] not in peers) else 0


API_GRID = [(n, c) for n in (10, 100) for c in (1, 4, 16)]


def run_api(args: argparse.Namespace) -> int:
    """The rerank API against the direct gRPC client, on one int8 server, interleaved."""
    from triton_rerank.api.process import ApiProcess
    from triton_rerank.bench.harness import accuracy, api_scorer, served_scorer
    from triton_rerank.bench.report import api_markdown, api_overhead
    from triton_rerank.bench.servers import Served, export_repositories

    started = time.perf_counter()
    data = args.data if args.data.exists() else None
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    workload = Workload.plan(args.quick, data, args.rounds, grid=API_GRID)
    int8 = Served("served int8", export_repositories(args.model, work)["int8"]).start()
    try:
        with ApiProcess(int8.url("grpc")) as api:
            never = lambda n, c: False  # noqa: E731
            variants = {
                "direct gRPC": (served_scorer(int8.url("grpc"), args.batch_size), int8.server.http_url, never),
                "via API": (api_scorer(api.url), int8.server.http_url, never),
            }
            sample = workload.sample[:4]
            for make_scorer, _, _ in variants.values():  # warm-up
                make_scorer()(sample[0].query, sample[0].documents)
            direct, through_api = (variants[name][0]() for name in variants)
            agreement = accuracy(
                [direct(r.query, r.documents) for r in sample], [through_api(r.query, r.documents) for r in sample]
            )
            cells = measure_grid(variants, workload, args.rounds)
    finally:
        int8.stop()
    report = {
        "mode": "api",
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.system()}",
        "model": f"{args.model.name} (int8)",
        "data": "TREC DL 2019 BM25 top-100 passages" if data else "synthetic passages of 40-120 words",
        "rounds": args.rounds,
        "api_vs_direct_scores": agreement,
        "cells": [cell.summary() for cell in cells],
        "overhead": api_overhead(cells),
        "wall_s": time.perf_counter() - started,
    }
    (args.out / "api-benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = api_markdown(report)
    (args.out / "api-benchmark.md").write_text(table)
    print("\n" + table + f"\nwrote api-benchmark.json, api-benchmark.md to {args.out} in {report['wall_s']:.0f} s")
    return 1 if any(cell["errors"] for cell in report["cells"]) else 0


def run_long_documents(args: argparse.Namespace) -> int:
    """Long documents under ``max`` against their windows sent as plain documents: the same rows."""
    from tokenizers import Tokenizer

    from triton_rerank.bench.harness import Cell, measure, served_scorer
    from triton_rerank.bench.servers import Served, export_repositories
    from triton_rerank.bench.workload import Request, load_requests
    from triton_rerank.protocol import DEFAULT_MAX_CHUNKS_PER_DOC
    from triton_rerank.serving.backends.tokenizer_model import windowed_rows
    from triton_rerank.serving.repository import TOKENIZER, load_config

    started = time.perf_counter()
    data = args.data if args.data.exists() else None
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    repository = export_repositories(args.model, work)["int8"]
    plain = Tokenizer.from_file(str(repository / TOKENIZER / "1" / "tokenizer.json"))
    plain.no_truncation()
    plain.no_padding()
    max_length = int(load_config(repository / TOKENIZER / "config.pbtxt").parameters["max_length"].string_value)
    count = 20 if args.quick else 40
    windowed, plain_rows, rows = [], [], 0
    for request in load_requests(data, 100, count):
        documents = ["\n\n".join(request.documents[i : i + 10]) for i in range(0, 100, 10)]  # 10 long documents
        pairs = [(request.query, d) for d in documents]
        window_rows, _, _ = windowed_rows(plain, max_length, pairs, DEFAULT_MAX_CHUNKS_PER_DOC)
        windowed.append(Request(request.query, documents))
        plain_rows.append(Request(request.query, [text for _, text in window_rows]))
        rows += len(window_rows)
    served = Served("served int8", repository).start()
    cells, rates = {}, {}  # rates: rows/s of each run
    try:
        variants = {
            "windows (long_documents=max)": served_scorer(served.url("grpc"), args.batch_size, long_documents="max"),
            "the same rows sent plain": served_scorer(served.url("grpc"), args.batch_size),
        }
        requests = {"windows (long_documents=max)": windowed, "the same rows sent plain": plain_rows}
        for make_scorer in variants.values():
            make_scorer()(plain_rows[0].query, plain_rows[0].documents[:4])  # warm-up
        names = list(variants)
        for round_index in range(args.rounds):
            for clients in (1, 4):
                for name in names[round_index % 2 :] + names[: round_index % 2]:
                    cell = cells.setdefault((name, clients), Cell(name, 100, clients))
                    measure(cell, variants[name], requests[name], clients, served.server.http_url)
                    # documents/s -> rows/s: both variants send the same rows, counted as documents differently
                    rows_per_s = cell.throughputs[-1] * rows / sum(len(r.documents) for r in requests[name])
                    rates.setdefault((name, clients), []).append(rows_per_s)
                    print(
                        f"round {round_index + 1}  clients={clients}  {name:<30} {rows_per_s:7.1f} rows/s", flush=True
                    )
    finally:
        served.stop()
    summary = [
        {
            "variant": name,
            "clients": clients,
            "rows_per_s_median": statistics.median(rates[(name, clients)]),
            "rows_per_s": rates[(name, clients)],
            "errors": len(cell.errors),
        }
        for (name, clients), cell in cells.items()
    ]
    ratios = {}
    for clients in (1, 4):
        on, off = (statistics.median(rates[(name, clients)]) for name in names)
        ratios[clients] = on / off
        print(f"{clients} client(s): windows {on:.1f} rows/s, plain {off:.1f} rows/s: {on / off:.1%} of the plain rate")
    report = {
        "model": f"{args.model.name} (int8)",
        "requests": count,
        "rows": rows,
        "rows_per_request": rows / count,
        "cells": summary,
        "windowed_vs_plain": ratios,
        "wall_s": time.perf_counter() - started,
    }
    (args.out / "long-documents-benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote long-documents-benchmark.json to {args.out}")
    return 1 if any(cell["errors"] for cell in summary) else 0


def write_report(args, data, workload: Workload, fp32_repository: Path, results: dict, wall_s: float) -> int:
    from triton_rerank.bench.report import markdown, plot, ratios
    from triton_rerank.bench.workload import tokens_per_pair

    cells = results.pop("cells")
    report = {
        "mode": "quick" if args.quick else "full",
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.system()}, "
        f"Python {platform.python_version()}",
        "model": str(args.model.name),
        "data": "TREC DL 2019 BM25 top-100 passages" if data else "synthetic passages of 40-120 words",
        "tokens_per_pair": tokens_per_pair(fp32_repository / "tokenizer" / "1" / "tokenizer.json", workload.sample[:8]),
        "protocol": args.protocol,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "cells": [cell.summary() for cell in cells],
        "ratios": ratios(cells),
        **results,
        "wall_s": wall_s,
    }
    (args.out / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "benchmark.md").write_text(table)
    plotted = plot(report, args.out / "benchmark.png")
    print("\n" + table)
    written = "benchmark.json, benchmark.md" + (", benchmark.png" if plotted else "")
    print(f"wrote {written} to {args.out} in {wall_s:.0f} s")
    errors = sum(cell["errors"] for cell in report["cells"])
    if errors:
        print(f"{errors} requests failed; see first_error in benchmark.json", file=sys.stderr)
    return 1 if errors else 0
