"""Triton's statistics once they stop moving: Triton may count a request after the client has its
response, so a read right after a call can miss that call (seen in CI: one request short)."""

from __future__ import annotations

import time

from triton_rerank.serving.statistics import triton_stats


def settled_stats(url: str, pause_s: float = 0.2) -> dict:
    """``triton_stats(url)``, read again every ``pause_s`` until two reads agree."""
    stats = triton_stats(url)
    while True:
        time.sleep(pause_s)
        if (now := triton_stats(url)) == stats:
            return stats
        stats = now
