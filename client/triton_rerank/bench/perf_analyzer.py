"""Triton's own load generator, perf_analyzer, against the reranker ensemble: a check of the
client harness by a tool that is not ours. Found on PATH or given with --perf-analyzer; never
downloaded at run time."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from triton_rerank.bench.workload import Request

NOT_FOUND = (
    "perf_analyzer not found: put Triton's perf_analyzer on PATH or pass --perf-analyzer PATH (it ships in "
    "the nvcr.io/nvidia/tritonserver:24.10-py3-sdk container, and in the tritonclient 2.51.0 wheel's "
    "tritonclient-2.51.0.data/data/bin/, which needs libb64 and libcudart 12 beside it)"
)


def find_perf_analyzer(binary: str | None = None) -> Path | None:
    """Triton's perf_analyzer: ``binary``, else the one on PATH. Nothing is installed at run time."""
    found = binary or shutil.which("perf_analyzer")
    return Path(found) if found and Path(found).exists() else None


def run_perf_analyzer(
    grpc_address: str, request: Request, work: Path, concurrency: list[int], binary: str | None = None
) -> dict:
    """perf_analyzer against the reranker ensemble over gRPC: one query, N documents."""
    found = find_perf_analyzer(binary)
    if found is None:
        return {"ran": False, "why": NOT_FOUND}
    data = work / "perf_analyzer_input.json"
    data.write_text(
        json.dumps(
            {
                "data": [
                    {"QUERY": [request.query], "DOCUMENTS": {"content": request.documents, "shape": [request.pairs]}}
                ]
            }
        )
    )
    csv_path = work / "perf_analyzer.csv"
    command = [
        str(found),
        "-m",
        "reranker",
        "-i",
        "grpc",
        "-u",
        grpc_address,
        "--input-data",
        str(data),
        "--concurrency-range",
        f"{concurrency[0]}:{concurrency[-1]}:{max(concurrency[1] - concurrency[0], 1) if len(concurrency) > 1 else 1}",
        "--measurement-mode",
        "count_windows",
        "--measurement-request-count",
        "8",
        "--stability-percentage",
        "50",
        "--max-trials",
        "4",
        "-f",
        str(csv_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return {"ran": False, "why": (done.stderr or done.stdout).strip()[-500:]}
    rows = [line.split(",") for line in csv_path.read_text().splitlines()]
    header, body = rows[0], rows[1:]
    results = []
    for row in body:
        values = dict(zip(header, row, strict=False))
        results.append(
            {
                "concurrency": int(values["Concurrency"]),
                "requests_per_s": float(values["Inferences/Second"]),
                "pairs_per_s": float(values["Inferences/Second"]) * request.pairs,
                "p50_ms": float(values["p50 latency"]) / 1000,
                "p99_ms": float(values["p99 latency"]) / 1000,
                "server_queue_ms": float(values["Server Queue"]) / 1000,
                "server_compute_ms": float(values["Server Compute Infer"]) / 1000,
            }
        )
    return {"ran": True, "binary": str(found), "n": request.pairs, "results": results}
