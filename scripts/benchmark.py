#!/usr/bin/env python
"""Benchmark the served reranker against what users run today, side by side in one run.

    python scripts/benchmark.py --quick     # N = 100; 1, 4, 16 clients; under 3 minutes
    python scripts/benchmark.py             # + N = 10 and N = 1000 (1, 4 clients), levers, perf_analyzer

The baseline is pymilvus' ``CrossEncoderRerankFunction`` (sentence-transformers on PyTorch, batch
32) in this process, on the CPU. The served path is ``TritonRerankFunction`` against the embedded
Triton server, once with the fp32 ONNX export and once with the int8 one. Every request is one
query with N documents; C clients (threads, each with its own connection, or calling the one
in-process model) send requests back to back. Rounds are interleaved (baseline, fp32, int8, then
the next round in rotated order), so that a slow spell of a shared machine hits all of them.

Reported per (variant, N, clients): pairs/s (median and best of the rounds), latency p50/p95/p99
over all requests, errors, and Triton's own statistics (time in queue vs compute, per model, and
the average batch the dynamic batcher formed). The accuracy of each served variant against the
baseline (max |score difference|, rank correlation, top-10 agreement) is measured on the same
pairs. The full run also measures the levers one at a time (padding, instances x threads, queue
delay, client batch size, HTTP vs gRPC, response cache) and runs Triton's perf_analyzer.

Writes benchmark.json, benchmark.md and benchmark.png to --out (default: benchmark-results/).
Data: one TREC DL 2019 query with its BM25 top-100 passages (../shared/data) when present, else
synthetic passages of 40-120 words. Model: ../shared/models/minilm-l6-scifact-ce when present
(the MiniLM-L-6 cross-encoder shape), else --model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triton_rerank.client import DEFAULT_BATCH_SIZE
from triton_rerank.metrics import rank_correlation, top_k_overlap

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "minilm-l6-scifact-ce"
DEFAULT_DATA = SHARED / "data" / "msmarco-passage-dl19-bm25top100"
SERVED_MODELS = ("tokenizer", "cross_encoder")
REQUEST_TIMEOUT_S = 600.0  # 16 clients x 1000 documents queue for minutes on 2 cores: not an error

Scorer = Callable[[str, list[str]], np.ndarray]


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Request:
    query: str
    documents: list[str]

    @property
    def pairs(self) -> int:
        return len(self.documents)


def load_requests(data: Path | None, n: int, count: int, seed: int = 0) -> list[Request]:
    """``count`` requests of one query and ``n`` documents each, a different query in turn.

    With DL19: each query's BM25 top-100 in rank order (more documents than that: those of the
    next queries follow). Without it: synthetic passages of 40-120 words.
    """
    if data is not None and (data / "bm25_top100.trec").exists():
        queries = {row["_id"]: row["text"] for row in map(json.loads, (data / "queries.jsonl").open())}
        passages = {row["_id"]: row["text"] for row in map(json.loads, (data / "corpus.jsonl").open())}
        ranked: dict[str, list[str]] = {}
        for line in (data / "bm25_top100.trec").open():
            qid, _, docid, *_ = line.split()
            ranked.setdefault(qid, []).append(passages[docid])
        order = list(ranked)
        requests = []
        for i in range(count):
            documents: list[str] = []
            for qid in order[i % len(order) :] + order[: i % len(order)]:
                documents += ranked[qid]
                if len(documents) >= n:
                    break
            requests.append(Request(queries[order[i % len(order)]], documents[:n]))
        return requests
    words = (
        "protein cell immune response vaccine virus antibody gene expression tumor growth patients trial "
        "dose risk blood pressure heart disease brain neurons memory learning model data analysis method "
        "results study effect increase decrease level significant treatment therapy clinical outcome"
    ).split()
    rng = np.random.default_rng(seed)
    passage = lambda: " ".join(rng.choice(words, size=int(rng.integers(40, 121))))  # noqa: E731
    return [Request(" ".join(rng.choice(words, size=6)), [passage() for _ in range(n)]) for _ in range(count)]


def tokens_per_pair(tokenizer_json: Path, requests: list[Request]) -> dict:
    """Tokens per (query, document) pair as the served tokenizer counts them (truncated, unpadded)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_padding()
    lengths = [len(e.ids) for r in requests for e in tokenizer.encode_batch([(r.query, d) for d in r.documents])]
    return {"mean": float(np.mean(lengths)), "p50": float(np.median(lengths)), "p95": float(np.percentile(lengths, 95))}


# --------------------------------------------------------------------------- scorers


def baseline_scorer(model: Path) -> Scorer:
    """pymilvus' reranker as users run it in-process: one model, shared by the threads that call it."""
    from milvus_model.reranker import CrossEncoderRerankFunction

    rf = CrossEncoderRerankFunction(str(model), device="cpu")
    return lambda query, documents: _scores(rf(query=query, documents=documents, top_k=len(documents)))


def served_scorer(url: str, batch_size: int) -> Callable[[], Scorer]:
    """A factory: each client thread gets its own connection, as separate processes would."""
    from triton_rerank import TritonRerankFunction

    def make() -> Scorer:
        rf = TritonRerankFunction(url, batch_size=batch_size, timeout_s=REQUEST_TIMEOUT_S)
        return lambda query, documents: _scores(rf(query, documents, top_k=None))

    return make


def _scores(results) -> np.ndarray:
    """Scores in input order, from rerank results (text, score, index) in ranked order."""
    scores = np.empty(len(results), dtype=np.float64)
    for result in results:
        scores[result.index] = result.score
    return scores


# --------------------------------------------------------------------------- measuring


@dataclass
class Cell:
    """One (variant, N, clients) measurement, accumulated over rounds."""

    variant: str
    n: int
    clients: int
    throughputs: list[float] = field(default_factory=list)  # pairs/s, one per round
    latencies: list[float] = field(default_factory=list)  # seconds, every request
    errors: list[str] = field(default_factory=list)
    triton: dict = field(default_factory=dict)  # model -> summed statistics deltas

    def summary(self) -> dict:
        lat = np.array(self.latencies) * 1000
        out = {
            "variant": self.variant,
            "n": self.n,
            "clients": self.clients,
            "rounds": len(self.throughputs),
            "requests": len(self.latencies),
            "errors": len(self.errors),
            "pairs_per_s_median": statistics.median(self.throughputs) if self.throughputs else None,
            "pairs_per_s_best": max(self.throughputs) if self.throughputs else None,
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "p95_ms": float(np.percentile(lat, 95)) if lat.size else None,
            "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        }
        if self.errors:
            out["first_error"] = self.errors[0]
        if self.triton:
            out["triton"] = triton_summary(self.triton)
        return out


def run_clients(
    make_scorer: Callable[[], Scorer], requests: list[Request], clients: int, cell: Cell, stats_url: str | None = None
) -> None:
    """``clients`` threads share ``requests`` out round-robin and send them back to back; with a
    served variant's ``stats_url``, Triton's statistics for the run are added to the cell too."""
    before = triton_stats(stats_url) if stats_url else None
    scorers = [make_scorer() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        start.wait()
        for request in requests[index::clients]:
            began = time.perf_counter()
            try:
                scores = scorers[index](request.query, request.documents)
                if len(scores) != request.pairs:
                    raise RuntimeError(f"{len(scores)} scores for {request.pairs} documents")
            except Exception as err:  # counted and reported, never hidden
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    served_pairs = len(latencies) * requests[0].pairs  # every request of a cell has the same N
    cell.throughputs.append(served_pairs / wall)
    cell.latencies += latencies
    cell.errors += errors
    if stats_url:
        add_stats(cell.triton, stats_delta(before, triton_stats(stats_url)))


def triton_stats(http_url: str) -> dict[str, dict[str, int]]:
    """Cumulative per-model statistics from Triton's statistics extension (counts and ns)."""
    with urllib.request.urlopen(f"{http_url}/v2/models/stats", timeout=10) as response:
        body = json.load(response)
    out = {}
    for model in body["model_stats"]:
        inference = model["inference_stats"]
        out[model["name"]] = {
            "requests": inference["success"]["count"],
            "inferences": model["inference_count"],
            "executions": model["execution_count"],
            **{
                f"{key}_ns": inference[key]["ns"]
                for key in ("queue", "compute_input", "compute_infer", "compute_output")
            },
            "cache_hits": inference.get("cache_hit", {}).get("count", 0),
        }
    return out


def stats_delta(before: dict, after: dict) -> dict:
    return {m: {k: after[m][k] - before.get(m, {}).get(k, 0) for k in after[m]} for m in after}


def add_stats(total: dict, delta: dict) -> None:
    for model, values in delta.items():
        for key, value in values.items():
            total.setdefault(model, {}).setdefault(key, 0)
            total[model][key] += value


def triton_summary(stats: dict) -> dict:
    """Per model: ms per request waiting in queue vs computing, and the average executed batch."""
    out = {}
    for model in SERVED_MODELS:
        s = stats.get(model)
        if not s or not s["requests"]:
            continue
        compute = s["compute_input_ns"] + s["compute_infer_ns"] + s["compute_output_ns"]
        out[model] = {
            "queue_ms_per_request": s["queue_ns"] / s["requests"] / 1e6,
            "compute_ms_per_request": compute / s["requests"] / 1e6,
            "rows_per_execution": s["inferences"] / max(s["executions"], 1),
            "requests_per_execution": s["requests"] / max(s["executions"], 1),
        }
    if stats.get("reranker", {}).get("cache_hits"):
        out["reranker_cache_hits"] = stats["reranker"]["cache_hits"]
    return out


# --------------------------------------------------------------------------- served variants


@dataclass
class Served:
    name: str
    repository: Path
    server: object = None  # EmbeddedTritonServer

    def start(self, **server_settings) -> Served:
        from triton_rerank.server import EmbeddedTritonServer, free_port_settings

        self.server = EmbeddedTritonServer(self.repository, free_port_settings(**server_settings)).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def url(self, protocol: str) -> str:
        return self.server.grpc_url if protocol == "grpc" else self.server.http_url


def export_repositories(model: Path, work: Path) -> dict[str, Path]:
    """fp32 and int8 exports of ``model`` (kept in ``work`` and reused when the model is the same)."""
    from triton_rerank.export import ensure_exported

    repositories = {}
    for precision in ("fp32", "int8"):
        repository = work / f"repository-{precision}"
        report = ensure_exported(repository, str(model), "cross-encoder", precision)
        if report is not None:
            reduced = report.reduced_precision
            extra = f"; vs fp32 rank correlation {reduced.rank_correlation:.4f}" if reduced else ""
            print(f"exported {precision}: |ONNX fp32 - PyTorch| {report.max_abs_diff:.1e}{extra}", flush=True)
        repositories[precision] = repository
    return repositories


def lever_repository(source: Path, target: Path, edit: Callable) -> Path:
    """A copy of ``source`` whose tokenizer, cross_encoder and reranker configs ``edit(name, config)`` changes."""
    from triton_rerank.repository import load_config, to_pbtxt

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for name in ("tokenizer", "cross_encoder", "reranker"):
        path = target / name / "config.pbtxt"
        config = load_config(path)
        edit(name, config)
        path.write_text(to_pbtxt(config))
    return target


# --------------------------------------------------------------------------- accuracy


def accuracy(reference: list[np.ndarray], served: list[np.ndarray]) -> dict:
    """How far served scores are from the baseline's, and how well they keep its ranking."""
    return {
        "max_abs_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(reference, served, strict=True)),
        "rank_correlation": float(np.mean([rank_correlation(a, b) for a, b in zip(reference, served, strict=True)])),
        "top10_agreement": float(np.mean([top_k_overlap(a, b, 10) for a, b in zip(reference, served, strict=True)])),
        "requests": len(reference),
    }


# --------------------------------------------------------------------------- perf_analyzer


def find_perf_analyzer(work: Path) -> tuple[Path, dict] | None:
    """Triton's perf_analyzer: on PATH, or taken from the tritonclient 2.51 wheel (the server's
    release; newer wheels no longer carry it) with its two shared libraries from nvidia-pytriton."""
    on_path = shutil.which("perf_analyzer")
    if on_path:
        return Path(on_path), {}
    binary = work / "perf_analyzer" / "perf_analyzer"
    libs = work / "perf_analyzer" / "lib"
    if not binary.exists():
        download = work / "perf_analyzer" / "wheel"
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(download)]
        if subprocess.run([*command, "tritonclient==2.51.0"], capture_output=True).returncode != 0:
            return None
        wheel = next(download.glob("tritonclient-2.51.0-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            binary.write_bytes(archive.read("tritonclient-2.51.0.data/data/bin/perf_analyzer"))
        binary.chmod(0o755)
    from triton_rerank.server import pytriton_dirs

    _, bundled = pytriton_dirs()
    libs.mkdir(exist_ok=True)
    for pattern, soname in (("libb64-*.so.0d", "libb64.so.0d"), ("libcudart-*.so.12*", "libcudart.so.12")):
        (libs / soname).unlink(missing_ok=True)
        (libs / soname).symlink_to(next(bundled.glob(pattern)))
    return binary, {"LD_LIBRARY_PATH": str(libs)}


def run_perf_analyzer(served: Served, request: Request, work: Path, concurrency: list[int]) -> dict:
    """perf_analyzer against the reranker ensemble over gRPC: one query, N documents."""
    found = find_perf_analyzer(work)
    if found is None:
        return {"ran": False, "why": "perf_analyzer not found and the tritonclient 2.51.0 wheel could not be fetched"}
    binary, env = found
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
        str(binary),
        "-m",
        "reranker",
        "-i",
        "grpc",
        "-u",
        served.url("grpc").removeprefix("grpc://"),
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
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=900)
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
    return {"ran": True, "binary": str(binary), "n": request.pairs, "results": results}


# --------------------------------------------------------------------------- main run


def measure_grid(variants: dict[str, tuple], grid: list[tuple[int, int]], requests_for, rounds: int) -> list[Cell]:
    """Interleaved rounds over every (N, clients) cell and variant; returns the cells."""
    cells = {(name, n, c): Cell(name, n, c) for name in variants for n, c in grid}
    names = list(variants)
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for n, clients in grid:
            for name in order:
                make_scorer, stats_url, skip = variants[name]
                if skip(n, clients):
                    continue
                cell = cells[(name, n, clients)]
                run_clients(make_scorer, requests_for(n, clients, round_index), clients, cell, stats_url)
                s = cell.summary()
                print(
                    f"round {round_index + 1}/{rounds}  N={n:<5} clients={clients:<3} {name:<14} "
                    f"{cell.throughputs[-1]:7.1f} pairs/s  p50 {s['p50_ms'] or float('nan'):8.0f} ms  "
                    f"errors {s['errors']}",
                    flush=True,
                )
    return [cell for cell in cells.values() if cell.throughputs]


def measure_levers(int8: Served, requests_for, work: Path, protocol: str, batch_size: int, rounds: int) -> list[dict]:
    """Each lever changed alone against the int8 served default, at N = 100 and 4 clients."""
    from tritonclient.grpc import model_config_pb2 as mc

    from triton_rerank import repository as repo

    def instances(count, threads):
        def edit(name, config):
            if name == "cross_encoder":
                del config.instance_group[:]
                config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=count)
                config.parameters["intra_op_thread_count"].string_value = str(threads)

        return edit

    def parameter(key, value):
        def edit(name, config):
            if name == "cross_encoder":
                config.parameters[key].string_value = str(value)

        return edit

    def dynamic_batching(us):
        def edit(name, config):
            if name == "cross_encoder":
                config.dynamic_batching.SetInParent()
                config.dynamic_batching.max_queue_delay_microseconds = us

        return edit

    def queue_limits(name, config):  # this project's defaults until measured here; the policy needs the batcher
        limits = repo.RepositorySettings(max_queue_size=512, queue_timeout_s=30)
        if name == "tokenizer":
            config.dynamic_batching.default_queue_policy.CopyFrom(repo.queue_policy(limits))
        elif name == "cross_encoder":
            config.dynamic_batching.CopyFrom(repo.model_config(limits).dynamic_batching)

    server_levers = {
        "threads split operators (one row at a time)": parameter("runner_parallelism", "operators"),
        "queue limits (512 requests, 30 s) and the batcher they need": queue_limits,
        "no length grouping (whole batch, arrival order)": parameter("runner_slice_rows", 0),
        "length-sorted slices of 4 rows": parameter("runner_slice_rows", 4),
        "length-sorted slices of 16 rows": parameter("runner_slice_rows", 16),
        "length-sorted slices of 32 rows": parameter("runner_slice_rows", 32),
        "1 instance x 2 threads": instances(1, 2),
        "2 instances x 1 thread": instances(2, 1),
        "dynamic batching, max_queue_delay 0 us": dynamic_batching(0),
        "dynamic batching, max_queue_delay 1000 us": dynamic_batching(1000),
    }
    n, clients = 100, 4
    results = []

    def measure(name: str, make_scorer, stats_url) -> None:
        cell = Cell(name, n, clients)
        for round_index in range(rounds):
            run_clients(make_scorer, requests_for(n, clients, round_index), clients, cell, stats_url)
        results.append(cell.summary())
        print(f"lever  {name:<48} {results[-1]['pairs_per_s_median']:7.1f} pairs/s", flush=True)

    measure("int8 default", served_scorer(int8.url(protocol), batch_size), int8.server.http_url)
    other = "http" if protocol == "grpc" else "grpc"
    measure(f"{other} instead of {protocol}", served_scorer(int8.url(other), batch_size), int8.server.http_url)
    for size in (16, 32, 64, 128):
        if size != batch_size:
            measure(f"client batch_size {size}", served_scorer(int8.url(protocol), size), int8.server.http_url)
    for name, edit in server_levers.items():
        lever = Served(name, lever_repository(int8.repository, work / "lever", edit)).start()
        try:
            measure(name, served_scorer(lever.url(protocol), batch_size), lever.server.http_url)
        finally:
            lever.stop()
    results.append(measure_response_cache(int8.repository, work, requests_for(n, 1, 0)[0], protocol))
    return results


def measure_response_cache(repository: Path, work: Path, request: Request, protocol: str) -> dict:
    """Latency of a repeated identical request, with Triton's response cache off and on."""

    def enable(name, config):
        if name == "reranker":
            config.response_cache.enable = True

    out = {"variant": "response cache (same request repeated, 1 client)", "n": request.pairs}
    for label, repo, cache_bytes in (
        ("off", repository, 0),
        ("on", lever_repository(repository, work / "lever-cache", enable), 256 * 2**20),
    ):
        served = Served(label, repo).start(response_cache_bytes=cache_bytes)
        try:
            score = served_scorer(served.url(protocol), 128)()
            score(request.query, request.documents)  # the first call fills the cache
            times = []
            for _ in range(10):
                began = time.perf_counter()
                score(request.query, request.documents)
                times.append(time.perf_counter() - began)
            out[f"p50_ms_cache_{label}"] = statistics.median(times) * 1000
            out[f"cache_hits_{label}"] = triton_stats(served.server.http_url).get("reranker", {}).get("cache_hits", 0)
        finally:
            served.stop()
    print(f"lever  response cache: p50 {out['p50_ms_cache_off']:.0f} ms off, {out['p50_ms_cache_on']:.1f} ms on")
    return out


# --------------------------------------------------------------------------- report


def ratios(cells: list[Cell]) -> list[dict]:
    """Each served cell against the baseline at the same N and clients, and at one client."""
    by_key = {(c.variant, c.n, c.clients): c.summary() for c in cells}
    out = []
    for (variant, n, clients), s in by_key.items():
        if variant == "baseline":
            continue
        same = by_key.get(("baseline", n, clients))
        single = by_key.get(("baseline", n, 1))
        out.append(
            {
                "variant": variant,
                "n": n,
                "clients": clients,
                "x_baseline_same_clients": s["pairs_per_s_median"] / same["pairs_per_s_median"] if same else None,
                "x_baseline_1_client": s["pairs_per_s_median"] / single["pairs_per_s_median"] if single else None,
                "p50_vs_baseline": s["p50_ms"] / same["p50_ms"] if same else None,
            }
        )
    return out


def markdown(report: dict) -> str:
    lines = [
        f"# Benchmark ({report['mode']})",
        "",
        f"Machine: {report['machine']}. Model: {report['model']}. Data: {report['data']}; "
        f"tokens/pair mean {report['tokens_per_pair']['mean']:.0f}, p95 {report['tokens_per_pair']['p95']:.0f}. "
        f"Served over {report['protocol']}, client batch_size {report['batch_size']}; {report['rounds']} "
        "interleaved rounds; pairs/s is the median of the rounds (best in brackets).",
        "",
        "| variant | N | clients | pairs/s | × baseline (same clients) | × baseline (1 client) "
        "| p50 ms | p95 ms | p99 ms | errors | queue / compute ms (cross_encoder) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ratio = {(r["variant"], r["n"], r["clients"]): r for r in report["ratios"]}
    for s in report["cells"]:
        r = ratio.get((s["variant"], s["n"], s["clients"]), {})
        triton = s.get("triton", {}).get("cross_encoder")
        split = f"{triton['queue_ms_per_request']:.0f} / {triton['compute_ms_per_request']:.0f}" if triton else "—"
        rate = f"{s['pairs_per_s_median']:.1f} ({s['pairs_per_s_best']:.1f})"
        lines.append(
            f"| {s['variant']} | {s['n']} | {s['clients']} | {rate} "
            f"| {_x(r.get('x_baseline_same_clients'))} | {_x(r.get('x_baseline_1_client'))} "
            f"| {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {s['errors']} | {split} |"
        )
    lines += [
        "",
        "| served vs baseline scores | max abs diff | rank correlation | top-10 agreement |",
        "| --- | --- | --- | --- |",
    ]
    for name, a in report["accuracy"].items():
        lines.append(f"| {name} | {a['max_abs_diff']:.2g} | {a['rank_correlation']:.4f} | {a['top10_agreement']:.0%} |")
    if report.get("levers"):
        lines += ["", "Levers, one at a time (int8 served, N = 100, 4 clients):", ""]
        lines += ["| lever | pairs/s | p50 ms | rows per execution |", "| --- | --- | --- | --- |"]
        for lever in report["levers"]:
            if "pairs_per_s_median" in lever:
                rows = lever.get("triton", {}).get("cross_encoder", {}).get("rows_per_execution")
                lines.append(
                    f"| {lever['variant']} | {lever['pairs_per_s_median']:.1f} | {lever['p50_ms']:.0f} | {rows:.0f} |"
                    if rows
                    else f"| {lever['variant']} | {lever['pairs_per_s_median']:.1f} | {lever['p50_ms']:.0f} | — |"
                )
            else:
                lines.append(
                    f"| {lever['variant']} | — | {lever['p50_ms_cache_off']:.0f} off, "
                    f"{lever['p50_ms_cache_on']:.1f} on | — |"
                )
    perf = report.get("perf_analyzer", {})
    if perf.get("ran"):
        lines += ["", f"perf_analyzer (gRPC, int8, N = {perf['n']}):", ""]
        lines += ["| concurrency | pairs/s | p50 ms | p99 ms | server queue ms | server compute ms |"]
        lines += ["| --- | --- | --- | --- | --- | --- |"]
        for r in sorted(perf["results"], key=lambda r: r["concurrency"]):
            lines.append(
                f"| {r['concurrency']} | {r['pairs_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
                f"| {r['server_queue_ms']:.0f} | {r['server_compute_ms']:.0f} |"
            )
    elif perf:
        lines += ["", f"perf_analyzer did not run: {perf['why']}"]
    return "\n".join(lines) + "\n"


def _x(value: float | None) -> str:
    return f"{value:.2f}×" if value else "—"


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ns = sorted({s["n"] for s in report["cells"]})
    fig, axes = plt.subplots(1, len(ns), figsize=(5 * len(ns), 4), squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        for variant in dict.fromkeys(s["variant"] for s in report["cells"]):
            points = sorted(
                (s["clients"], s["pairs_per_s_median"])
                for s in report["cells"]
                if s["variant"] == variant and s["n"] == n
            )
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=variant)
        ax.set(title=f"1 query x {n} documents", xlabel="concurrent clients", ylabel="pairs/s", xscale="log")
        ax.set_xticks(
            sorted({s["clients"] for s in report["cells"]}),
            labels=sorted({str(s["clients"]) for s in report["cells"]}, key=int),
        )
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="center right")
    fig.suptitle(f"Reranking throughput, {report['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 100 only, fewer requests, no levers (< 3 min)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="cross-encoder folder (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DL19 folder; synthetic passages if absent")
    parser.add_argument("--out", type=Path, default=Path("benchmark-results"), help="output folder")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="client batch_size (default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--no-perf-analyzer", action="store_true")
    args = parser.parse_args(argv)
    if not args.model.exists():
        parser.error(f"no model at {args.model}: pass --model with a cross-encoder folder")

    rounds = args.rounds
    # (N, clients) cells; 16 clients x 1000 documents would queue for minutes on a small machine.
    grid = [(100, c) for c in (1, 4, 16)]
    if not args.quick:
        grid = [(10, 1), (10, 4), (10, 16), *grid, (1000, 1), (1000, 4)]
    ns = sorted({n for n, _ in grid})
    pairs_per_cell = 200 if args.quick else 600
    data = args.data if args.data.exists() else None
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    started = time.perf_counter()

    def request_count(n: int, clients: int) -> int:
        return clients * max(1, math.ceil(pairs_per_cell / n / clients))

    pool = {n: load_requests(data, n, max(request_count(n, c) for m, c in grid if m == n) * rounds) for n in ns}

    def requests_for(n: int, clients: int, round_index: int) -> list[Request]:
        count = request_count(n, clients)
        return pool[n][round_index * count : (round_index + 1) * count] or pool[n][:count]

    repositories = export_repositories(args.model, work)
    fp32, int8 = (
        Served("served fp32", repositories["fp32"]).start(),
        Served("served int8", repositories["int8"]).start(),
    )
    try:
        baseline = baseline_scorer(args.model)
        # In the quick run the baseline's 16-client cell (a minute of its own) is left out.
        too_long = (lambda n, c: c > 4) if args.quick else (lambda n, c: False)
        variants = {
            "baseline": (lambda: baseline, None, too_long),
            "served fp32": (
                served_scorer(fp32.url(args.protocol), args.batch_size),
                fp32.server.http_url,
                lambda n, c: False,
            ),
            "served int8": (
                served_scorer(int8.url(args.protocol), args.batch_size),
                int8.server.http_url,
                lambda n, c: False,
            ),
        }
        for make_scorer, _, _ in variants.values():  # warm-up: first calls allocate and compile
            make_scorer()(pool[ns[0]][0].query, pool[ns[0]][0].documents)

        sample = pool[100 if 100 in ns else ns[0]][:4]
        reference = [baseline(r.query, r.documents) for r in sample]
        accuracy_report = {
            name: accuracy(reference, [make_scorer()(r.query, r.documents) for r in sample])
            for name, (make_scorer, _, _) in variants.items()
            if name != "baseline"
        }
        cells = measure_grid(variants, grid, requests_for, rounds)
        levers = [] if args.quick else measure_levers(int8, requests_for, work, args.protocol, args.batch_size, 2)
        perf = {}
        if not args.no_perf_analyzer:
            perf = run_perf_analyzer(
                int8, pool[100 if 100 in ns else ns[0]][0], work, [1, 4] if args.quick else [1, 4, 16]
            )
            print(f"perf_analyzer: {'ran' if perf['ran'] else 'did not run: ' + perf['why']}", flush=True)
    finally:
        fp32.stop()
        int8.stop()

    report = {
        "mode": "quick" if args.quick else "full",
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.system()}, "
        f"Python {platform.python_version()}",
        "model": str(args.model.name),
        "data": "TREC DL 2019 BM25 top-100 passages" if data else "synthetic passages of 40-120 words",
        "tokens_per_pair": tokens_per_pair(
            repositories["fp32"] / "tokenizer" / "1" / "tokenizer.json", pool[ns[0]][:8]
        ),
        "protocol": args.protocol,
        "batch_size": args.batch_size,
        "rounds": rounds,
        "cells": [cell.summary() for cell in cells],
        "ratios": ratios(cells),
        "accuracy": accuracy_report,
        "levers": levers,
        "perf_analyzer": perf,
        "wall_s": time.perf_counter() - started,
    }
    (args.out / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "benchmark.md").write_text(table)
    plotted = plot(report, args.out / "benchmark.png")
    print("\n" + table)
    written = "benchmark.json, benchmark.md" + (", benchmark.png" if plotted else "")
    print(f"wrote {written} to {args.out} in {report['wall_s']:.0f} s")
    errors = sum(cell["errors"] for cell in report["cells"])
    if errors:
        print(f"{errors} requests failed; see first_error in benchmark.json", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
