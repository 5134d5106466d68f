"""Triton's own statistics (the statistics extension): per model, time in queue vs compute and the
rows each execution took, as deltas over a measurement."""

from __future__ import annotations

import json
import time
import urllib.request


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


def settled_stats(http_url: str, pause_s: float = 0.2, timeout_s: float = 10.0) -> dict[str, dict[str, int]]:
    """``triton_stats``, read again every ``pause_s`` until two reads agree: Triton may count a
    request after its client has the response, so a read right after a call can miss that call
    (seen in CI: one request short). The last read after ``timeout_s`` on a server never idle."""
    stats, deadline = triton_stats(http_url), time.monotonic() + timeout_s
    while True:
        time.sleep(pause_s)
        if (now := triton_stats(http_url)) == stats or time.monotonic() > deadline:
            return now
        stats = now


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
    for model in ("tokenizer", "cross_encoder"):
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
