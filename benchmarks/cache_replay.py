"""The score cache on a replayed query log, through the rerank API (its Cohere route) at 4 clients,
against the same log with no cache, each variant a fresh API process (cold cache) in front of one
Triton serving the reranker at fp32.

The log: TREC DL 2019's queries, each with its BM25 top 100. Half the requests repeat a query asked
before (drawn Zipf-like from those already asked, as real logs repeat their head); of the others,
one in four is a follow-up, the same query with half of its candidates kept and half new (a refined
filter); the rest are first asks. Reported per variant: p50/p95 latency, pairs/s, the hit ratio
from the API's own /metrics, and whether every request's scores are bit for bit those without the
cache. Writes cache-replay.json and .md."""

from __future__ import annotations

import json
import random
import re
import shutil
import time
import urllib.request

import numpy as np

from benchmarks.config import BenchmarkConfig, machine
from benchmarks.harness import api_scorer, percentiles_ms, run_clients
from benchmarks.workload import Request, load_requests

N, CLIENTS, LOG_SIZE, REPEATS = 100, 4, 160, 0.5


def query_log(requests: list[Request], size: int = LOG_SIZE, seed: int = 0) -> list[Request]:
    """``size`` requests: ``REPEATS`` of them repeats of a query asked before, the rest new (one in
    four of those a follow-up: half its candidates those of a query asked before)."""
    rng = random.Random(seed)
    fresh, asked, log = iter(requests), [], []
    for _ in range(size):
        if asked and rng.random() < REPEATS:
            rank = min(int(rng.paretovariate(1.2)) - 1, len(asked) - 1)  # Zipf-like: the head repeats most
            log.append(asked[rank])
            continue
        request = next(fresh)
        if asked and rng.random() < 0.25:
            earlier = rng.choice(asked)
            half = len(earlier.documents) // 2
            request = Request(
                earlier.query, earlier.documents[:half] + request.documents[: len(request.documents) - half]
            )
        asked.append(request)
        log.append(request)
    return log


def run_cache_replay_benchmark(config: BenchmarkConfig) -> int:
    from benchmarks.api_process import ApiProcess
    from triton_rerank.serving.export import ensure_exported
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port, free_port_settings

    started = time.perf_counter()
    log = query_log(load_requests(config.dl19(), N, LOG_SIZE))
    repository = config.workdir() / "cache-replay"
    ensure_exported(repository, str(config.model), "cross-encoder")
    variants = {"no cache": [], "memory": ["--score-cache", "memory"]}
    redis = _redis(free_port()) if shutil.which("redis-server") else None
    if redis:
        variants["redis"] = ["--score-cache", redis[1]]
    results, reference = {}, {}
    try:
        with EmbeddedTritonServer(repository, free_port_settings()) as server:
            for name, flags in variants.items():
                with ApiProcess(server.grpc_url, *flags) as api:
                    run = run_clients(api_scorer(api.url), log, CLIENTS)
                    lookups = _lookups(api.url)
                    check = api_scorer(api.url)()
                    scores = [check(r.query, r.documents) for r in log[:20]]
                reference.setdefault("scores", scores)
                results[name] = _summary(run, lookups, scores, reference["scores"])
                print(f"{name}: {results[name]}", flush=True)
    finally:
        if redis:
            redis[0].kill()
    report = {
        "log": {
            "requests": len(log),
            "documents": N,
            "clients": CLIENTS,
            "distinct_queries": len({r.query for r in log}),
            "repeats": REPEATS,
        },  # fmt: skip
        "data": str(config.dl19()),
        "model": str(config.model),
        "machine": machine(),
        "variants": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    (config.out / "cache-replay.json").write_text(json.dumps(report, indent=2) + "\n")
    (config.out / "cache-replay.md").write_text(markdown(report))
    print("\n" + markdown(report))
    return 1 if any(v["errors"] or not v["bit_identical"] for v in results.values()) else 0


def _summary(run, lookups: dict[str, float], scores, reference) -> dict:
    total = sum(lookups.values())
    return {
        "errors": len(run.errors),
        **{k: round(v, 1) for k, v in percentiles_ms(run.latencies).items()},
        "pairs_per_s": round(run.pairs / run.wall_s, 1),
        "hit_ratio": round(lookups.get("hit", 0) / total, 3) if total else None,
        "bit_identical": all(np.array_equal(a, b) for a, b in zip(scores, reference, strict=True)),
    }


def _lookups(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return {
        m[0]: float(m[1]) for m in re.findall(r'rerank_api_score_cache_lookups_total\{result="(\w+)"\} (\S+)', text)
    }


def _redis(port: int):
    import socket
    import subprocess

    process = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL)  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    return None


def markdown(report: dict) -> str:
    log, plain = report["log"], report["variants"]["no cache"]
    lines = [
        f"A replayed log of {log['requests']} requests ({log['distinct_queries']} distinct queries, "
        f"{log['repeats']:.0%} repeats), {log['documents']} documents each, through the rerank API at "
        f"{log['clients']} clients; {report['machine']}; each variant a fresh API (cold cache).",
        "",
        "| score cache | p50 ms | p95 ms | pairs/s | × no cache | hit ratio | scores bit-identical | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, v in report["variants"].items():
        ratio = v["pairs_per_s"] / plain["pairs_per_s"]
        hits = "—" if v["hit_ratio"] is None else f"{v['hit_ratio']:.1%}"
        lines.append(
            f"| {name} | {v['p50_ms']:.0f} | {v['p95_ms']:.0f} | {v['pairs_per_s']:.0f} | {ratio:.2f}× | {hits} "
            f"| {'yes' if v['bit_identical'] else 'NO'} | {v['errors']} |"
        )
    return "\n".join(lines) + "\n"
