"""What reading long documents in windows costs: requests of long documents (DL19 passages joined
ten to a document) under ``long_documents="max"`` against requests of their very windows sent as
plain documents, so both score the same rows; rows/s side by side, 1 and 4 clients; writes
long-documents-benchmark.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from benchmarks.config import BenchmarkConfig


def run_long_documents_benchmark(config: BenchmarkConfig) -> int:
    """Long documents under ``max`` against their windows sent as plain documents: the same rows."""
    from benchmarks.harness import served_scorer
    from benchmarks.servers import Served, export_repositories

    started = time.perf_counter()
    data, work = config.dl19(), config.workdir()
    repository = export_repositories(config.model, work)["int8"]
    count = 20 if config.quick else 40
    windowed, plain_rows, rows = _requests(repository, data, count)
    served = Served("served int8", repository).start()
    try:
        variants = {
            "windows (long_documents=max)": served_scorer(served.url("grpc"), config.batch_size, long_documents="max"),
            "the same rows sent plain": served_scorer(served.url("grpc"), config.batch_size),
        }
        requests = {"windows (long_documents=max)": windowed, "the same rows sent plain": plain_rows}
        cells, rates = _measure(config, served, variants, requests, rows)
    finally:
        served.stop()
    return _report(config, cells, rates, list(variants), count, rows, started)


def _requests(repository: Path, data: Path | None, count: int):
    """``count`` requests of 10 long documents (ten DL19 passages each), the same as plain requests
    of their windows, and how many rows (windows) they make."""
    from tokenizers import Tokenizer

    from benchmarks.workload import Request, load_requests
    from triton_rerank.backends.tokenizer_model import windowed_rows
    from triton_rerank.protocol import DEFAULT_MAX_CHUNKS_PER_DOC
    from triton_rerank.serving.layout import TOKENIZER
    from triton_rerank.serving.repository import load_config

    plain = Tokenizer.from_file(str(repository / TOKENIZER / "1" / "tokenizer.json"))
    plain.no_truncation()
    plain.no_padding()
    max_length = int(load_config(repository / TOKENIZER / "config.pbtxt").parameters["max_length"].string_value)
    windowed, plain_rows, rows = [], [], 0
    for request in load_requests(data, 100, count):
        documents = ["\n\n".join(request.documents[i : i + 10]) for i in range(0, 100, 10)]  # 10 long documents
        pairs = [(request.query, d) for d in documents]
        window_rows, _, _ = windowed_rows(plain, max_length, pairs, DEFAULT_MAX_CHUNKS_PER_DOC)
        windowed.append(Request(request.query, documents))
        plain_rows.append(Request(request.query, [text for _, text in window_rows]))
        rows += len(window_rows)
    return windowed, plain_rows, rows


def _measure(config: BenchmarkConfig, served, variants: dict, requests: dict, rows: int):
    """Interleaved rounds at 1 and 4 clients: each (variant, clients) cell, and its rows/s per run."""
    from benchmarks.harness import Cell, measure

    cells, rates = {}, {}  # rates: rows/s of each run
    warm = requests["the same rows sent plain"][0]
    for make_scorer in variants.values():
        make_scorer()(warm.query, warm.documents[:4])  # warm-up
    names = list(variants)
    for round_index in range(config.rounds):
        for clients in (1, 4):
            for name in names[round_index % 2 :] + names[: round_index % 2]:
                cell = cells.setdefault((name, clients), Cell(name, 100, clients))
                measure(cell, variants[name], requests[name], clients, served.server.http_url)
                # documents/s -> rows/s: both variants send the same rows, counted as documents differently
                rows_per_s = cell.throughputs[-1] * rows / sum(len(r.documents) for r in requests[name])
                rates.setdefault((name, clients), []).append(rows_per_s)
                print(f"round {round_index + 1}  clients={clients}  {name:<30} {rows_per_s:7.1f} rows/s", flush=True)
    return cells, rates


def _report(config: BenchmarkConfig, cells: dict, rates: dict, names: list, count: int, rows: int, started) -> int:
    """Writes long-documents-benchmark.json; 1 when a request failed."""
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
        "model": f"{config.model.name} (int8)",
        "requests": count,
        "rows": rows,
        "rows_per_request": rows / count,
        "cells": summary,
        "windowed_vs_plain": ratios,
        "wall_s": time.perf_counter() - started,
    }
    (config.out / "long-documents-benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote long-documents-benchmark.json to {config.out}")
    return 1 if any(cell["errors"] for cell in summary) else 0
