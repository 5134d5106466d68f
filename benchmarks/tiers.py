"""Each accuracy tier against the strongest in-process peer of that tier, same requests, same run:
exact (served fp32 vs sentence-transformers' ONNX backend), near-exact (served bf16 vs its OpenVINO
backend at the CPU's default precision) and int8 (served int8, ONNX Runtime's and OpenVINO's, vs its
ONNX dynamic int8 and OpenVINO NNCF int8), with pymilvus' function as the baseline. Every row gets
accuracy columns against fp32 PyTorch. The peers run in their own environment (``make peers``);
N = 100 with 1 and 4 clients; writes tiers-benchmark.json and tiers-benchmark.md.
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks.config import BenchmarkConfig, data_description, machine
from benchmarks.grid import Workload, measure_grid, never
from benchmarks.peers import PEER_NAMES

# Tier -> its in-process peers (kind, name in the report) and its served exports (bench.servers.EXPORTS).
TIERS = {
    tier: ([(kind, PEER_NAMES[kind]) for kind in kinds], exports)
    for tier, kinds, exports in (
        ("exact", ["st-onnx"], ["fp32"]),
        ("near-exact", ["st-openvino"], ["bf16"]),
        ("int8", ["st-onnx-int8", "st-openvino-int8"], ["int8", "int8-openvino"]),
    )
}


def run_tiers_benchmark(config: BenchmarkConfig) -> int:
    """Each tier's served precision against that tier's in-process peers, interleaved in one run."""
    from benchmarks.harness import accuracy, baseline_scorer
    from benchmarks.peers import PeerProcess
    from benchmarks.servers import Served, export_repositories
    from benchmarks.workload import load_requests
    from triton_rerank.serving.export.precision import bf16_support

    if not config.peers_python.exists():
        print(f"no peers environment at {config.peers_python}: run `make peers` first", file=sys.stderr)
        return 2
    started = time.perf_counter()
    data, work = config.dl19(), config.workdir()
    workload = Workload.plan(config.quick, data, config.rounds, grid=[(100, 1), (100, 4)])
    # NNCF calibrates on pairs of queries the benchmark never scores (the last DL19 queries).
    calibration = [(r.query, d) for r in load_requests(data, 100, 43)[-3:] for d in r.documents]
    exports = [name for _, names in TIERS.values() for name in names if name != "bf16" or not bf16_support()]
    repositories = export_repositories(config.model, work, exports)
    served, peers, skipped = {}, {}, {}
    try:
        for name in exports:  # one by one, so that a failed start stops those already up
            served[name] = Served(f"served {name}", repositories[name]).start()
        baseline = baseline_scorer(config.model)
        variants = _variants(config, baseline, served, peers, skipped, calibration)
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
            "cells": measure_grid(variants, workload, config.rounds),
        }
    finally:
        for peer in peers.values():
            peer.stop()
        for server in served.values():
            server.stop()
    return _report(config, data, results, skipped, len(sample), started, peers)


def _variants(config: BenchmarkConfig, baseline, served: dict, peers: dict, skipped: dict, calibration) -> dict:
    """The baseline, then each tier's peers (started here, into ``peers``) and served exports; what
    could not run goes into ``skipped`` with why."""
    from benchmarks.harness import served_scorer
    from benchmarks.peers import PeerProcess
    from triton_rerank.serving.export.precision import bf16_support

    variants = {"pymilvus (torch)": (lambda: baseline, None, never)}
    for tier_peers, tier_exports in TIERS.values():
        for kind, name in tier_peers:
            print(f"starting peer {name} ...", flush=True)
            peer = PeerProcess(kind, config.model, config.out / "work" / "peers", config.peers_python)
            try:
                peers[name] = peer.start(calibration)
            except RuntimeError as err:  # said in the report, never hidden
                skipped[name] = str(err)
                continue
            variants[name] = (peers[name], None, never)
        for name in tier_exports:
            if name not in served:
                skipped[f"served {name}"] = bf16_support()
                continue
            server = served[name]
            variants[server.name] = (served_scorer(server.url(config.protocol), config.batch_size), None, never)
    return variants


def _report(config: BenchmarkConfig, data, results: dict, skipped: dict, samples: int, started: float, peers) -> int:
    """Writes tiers-benchmark.json and .md; 1 when a request of ours failed."""
    from benchmarks.report import tier_verdicts, tiers_markdown

    cells = [cell.summary() for cell in results["cells"]]
    report = {
        "machine": machine(),
        "score_cache": "off: every pair computed (benchmarks run cold)",
        "model": str(config.model.name),
        "data": data_description(data),
        "rounds": config.rounds,
        "accuracy_requests": samples,
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
    (config.out / "tiers-benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = tiers_markdown(report)
    (config.out / "tiers-benchmark.md").write_text(table)
    print(
        "\n" + table + f"\nwrote tiers-benchmark.json, tiers-benchmark.md to {config.out} in {report['wall_s']:.0f} s"
    )
    # A peer's failed requests are a finding about the peer, reported above; ours fail the run.
    return 1 if any(cell["errors"] for cell in cells if cell["variant"] not in peers) else 0
