"""Triton's own load generator, perf_analyzer, against the reranker ensemble: a check of the
client harness by a tool that is not ours. Nothing is downloaded when the benchmark runs: it uses
--perf-analyzer, the one on PATH, or the one ``make perf-analyzer`` installed (``install`` below).

    python -m benchmarks.perf_analyzer .tools     # what make perf-analyzer runs
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from benchmarks.workload import Request

INSTALLED = Path(".tools/bin/perf_analyzer")  # where make perf-analyzer puts it, from the project root
# The release of the embedded server; newer tritonclient wheels no longer carry the binary.
WHEEL = "tritonclient==2.51.0"
NOT_FOUND = (
    "perf_analyzer not found: run `make perf-analyzer` (it takes the binary from the tritonclient 2.51.0 wheel "
    "into .tools/bin), put Triton's perf_analyzer on PATH, or pass --perf-analyzer PATH"
)


def find_perf_analyzer(binary: str | None = None) -> Path | None:
    """Triton's perf_analyzer: ``binary``, else the one on PATH, else the installed one."""
    found = binary or shutil.which("perf_analyzer") or (INSTALLED if INSTALLED.exists() else None)
    return Path(found) if found and Path(found).exists() else None


def install(target: Path) -> Path:
    """perf_analyzer from the tritonclient 2.51.0 wheel into ``target``, with a launcher in
    ``target/bin`` that puts the two libraries it needs (libb64, libcudart 12, which nvidia-pytriton
    ships) on its library path. Returns the launcher."""
    from triton_rerank.serving.server import pytriton_dirs

    home = Path(target).resolve() / "perf_analyzer"
    (home / "lib").mkdir(parents=True, exist_ok=True)
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(home), WHEEL]
    subprocess.run(download, check=True)
    wheel = next(home.glob("tritonclient-2.51.0-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        (home / "perf_analyzer").write_bytes(archive.read("tritonclient-2.51.0.data/data/bin/perf_analyzer"))
    (home / "perf_analyzer").chmod(0o755)
    _, bundled = pytriton_dirs()
    for pattern, soname in (("libb64-*.so.0d", "libb64.so.0d"), ("libcudart-*.so.12*", "libcudart.so.12")):
        (home / "lib" / soname).unlink(missing_ok=True)
        (home / "lib" / soname).symlink_to(next(bundled.glob(pattern)))
    launcher = Path(target).resolve() / "bin" / "perf_analyzer"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH="{home / "lib"}" exec "{home / "perf_analyzer"}" "$@"\n')
    launcher.chmod(0o755)
    return launcher


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
    step = max(concurrency[1] - concurrency[0], 1) if len(concurrency) > 1 else 1
    command = [
        *(str(found), "-m", "reranker", "-i", "grpc", "-u", grpc_address, "--input-data", str(data)),
        *("--concurrency-range", f"{concurrency[0]}:{concurrency[-1]}:{step}"),
        *("--measurement-mode", "count_windows", "--measurement-request-count", "8"),
        *("--stability-percentage", "50", "--max-trials", "4", "-f", str(csv_path)),
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


if __name__ == "__main__":
    print(install(Path(sys.argv[1] if len(sys.argv) > 1 else ".tools")))
