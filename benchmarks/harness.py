"""One client harness for the benchmark, the load test and the GPU check: C threads, each with its
own connection (as separate processes would have), send requests back to back; every latency is
kept and every failure counted, never hidden."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from benchmarks.workload import Request
from triton_rerank.base import DEFAULT_BATCH_SIZE
from triton_rerank.metrics import rank_correlation, top_k_overlap
from triton_rerank.serving.statistics import add_stats, settled_stats, stats_delta, triton_summary

Scorer = Callable[[str, list[str]], np.ndarray]
REQUEST_TIMEOUT_S = 600.0  # 16 clients x 1000 documents queue for minutes on 2 cores: not an error


def baseline_scorer(model) -> Scorer:
    """pymilvus' reranker as users run it in-process: one model, shared by the threads that call it."""
    from milvus_model.reranker import CrossEncoderRerankFunction

    rf = CrossEncoderRerankFunction(str(model), device="cpu")
    return lambda query, documents: _scores(rf(query=query, documents=documents, top_k=len(documents)))


def served_scorer(
    url: str, batch_size: int = DEFAULT_BATCH_SIZE, api_key: str | None = None, model_name: str | None = None, **options
) -> Callable[[], Scorer]:
    """A factory: each client thread gets its own connection, as separate processes would.
    ``options``: each call's ``RerankOptions`` fields (long_documents, ...)."""
    from triton_rerank import TritonRerankFunction

    def make() -> Scorer:
        rf = TritonRerankFunction(
            url, batch_size=batch_size, timeout_s=REQUEST_TIMEOUT_S, api_key=api_key, model_name=model_name
        )
        return lambda query, documents: _scores(rf(query, documents, top_k=None, **options))

    return make


def api_scorer(base_url: str, model: str = "reranker", api_key: str | None = None) -> Callable[[], Scorer]:
    """The same through the rerank API's Cohere route (/v2/rerank), one HTTP connection per client;
    scores turned back from relevance (sigmoid) into logits, to compare with the others."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def make() -> Scorer:
        client = httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, headers=headers)

        def score(query: str, documents: list[str]) -> np.ndarray:
            response = client.post("/v2/rerank", json={"model": model, "query": query, "documents": documents})
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            relevance = np.empty(len(documents), dtype=np.float64)
            for result in response.json()["results"]:
                relevance[result["index"]] = result["relevance_score"]
            return np.log(relevance) - np.log1p(-relevance)

        return score

    return make


def _scores(results) -> np.ndarray:
    """Scores in input order, from rerank results (text, score, index) in ranked order."""
    scores = np.empty(len(results), dtype=np.float64)
    for result in results:
        scores[result.index] = result.score
    return scores


@dataclass
class Run:
    """What one run of the clients saw."""

    latencies: list[float] = field(default_factory=list)  # seconds, every answered request
    errors: list[str] = field(default_factory=list)  # "Type: message", every failed request
    pairs: int = 0  # (query, document) pairs answered
    wall_s: float = 0.0


def run_clients(
    make_scorer: Callable[[], Scorer], requests: list[Request], clients: int, *, duration_s: float | None = None
) -> Run:
    """``clients`` threads: client i sends ``requests[i::clients]`` once, or, with ``duration_s``,
    cycles through them until that time is up. An answer with the wrong number of scores is an error."""
    scorers = [make_scorer() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    lock = threading.Lock()
    run = Run()
    deadline = [float("inf")]

    def client(index: int) -> None:
        mine = requests[index::clients]
        start.wait()
        for request in itertools.cycle(mine) if duration_s else mine:
            if time.perf_counter() >= deadline[0]:
                break
            began = time.perf_counter()
            try:
                scores = scorers[index](request.query, request.documents)
                if len(scores) != request.pairs:
                    raise RuntimeError(f"{len(scores)} scores for {request.pairs} documents")
            except Exception as err:  # counted and reported, never hidden
                with lock:
                    run.errors.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                run.latencies.append(time.perf_counter() - began)
                run.pairs += request.pairs

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    if duration_s:
        deadline[0] = time.perf_counter() + duration_s
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    run.wall_s = time.perf_counter() - began
    return run


class Measurer(Protocol):
    """What runs ``clients`` concurrent clients over ``requests`` and says how it went: scorers made
    in this process (``LocalScorers``) or a peer in a process of its own (``peers.PeerProcess``)."""

    def measure(self, requests: list[Request], clients: int) -> Run: ...


@dataclass(frozen=True)
class LocalScorers:
    """Scorers made in this process by ``make_scorer``, one per client."""

    make_scorer: Callable[[], Scorer]

    def measure(self, requests: list[Request], clients: int) -> Run:
        return run_clients(self.make_scorer, requests, clients)


def measure(
    cell: Cell, scorers: Measurer | Callable[[], Scorer], requests: list[Request], clients: int, stats_url=None
) -> None:
    """One run of the clients added to ``cell``; with a served variant's ``stats_url``, Triton's
    statistics for the run too. ``scorers`` is a ``Measurer``, or a ``make_scorer`` for ``LocalScorers``."""
    measurer = scorers if hasattr(scorers, "measure") else LocalScorers(scorers)
    before = settled_stats(stats_url) if stats_url else None  # settled: Triton may count a request late
    cell.add(measurer.measure(requests, clients))
    if stats_url:
        add_stats(cell.triton, stats_delta(before, settled_stats(stats_url)))


def percentiles_ms(latencies: list[float]) -> dict[str, float | None]:
    """p50, p95 and p99 of ``latencies`` (seconds), in milliseconds."""
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    ms = np.array(latencies) * 1000
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}


@dataclass
class Cell:
    """One (variant, N, clients) measurement, accumulated over rounds."""

    variant: str
    n: int
    clients: int
    throughputs: list[float] = field(default_factory=list)  # pairs/s, one per round
    latencies: list[float] = field(default_factory=list)  # seconds, every request
    errors: list[str] = field(default_factory=list)
    triton: dict = field(default_factory=dict)  # model -> summed statistics deltas (served variants)

    def add(self, run: Run) -> None:
        self.throughputs.append(run.pairs / run.wall_s)
        self.latencies += run.latencies
        self.errors += run.errors

    def summary(self) -> dict:
        out = {
            "variant": self.variant,
            "n": self.n,
            "clients": self.clients,
            "rounds": len(self.throughputs),
            "requests": len(self.latencies),
            "errors": len(self.errors),
            "pairs_per_s_median": statistics.median(self.throughputs) if self.throughputs else None,
            "pairs_per_s_best": max(self.throughputs) if self.throughputs else None,
            **percentiles_ms(self.latencies),
        }
        if self.errors:
            out["first_error"] = self.errors[0]
        if self.triton:
            out["triton"] = triton_summary(self.triton)
        return out


def accuracy(reference: list[np.ndarray], served: list[np.ndarray]) -> dict:
    """How far served scores are from the baseline's, and how well they keep its ranking."""
    pairs = list(zip(reference, served, strict=True))
    return {
        "max_abs_diff": max(float(np.max(np.abs(a - b))) for a, b in pairs),
        "rank_correlation": float(np.mean([rank_correlation(a, b) for a, b in pairs])),
        "top10_agreement": float(np.mean([top_k_overlap(a, b, 10) for a, b in pairs])),
        "requests": len(reference),
    }
