"""What a benchmark run measures with, as a frozen settings object (the command line's flags, or
Python), and the facts every report states: the machine and the data."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from triton_rerank.base import DEFAULT_BATCH_SIZE


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    """A benchmark of the cross-encoder folder ``model`` (``triton-rerank benchmark --help`` says
    what each field does)."""

    model: Path
    data: Path  # TREC DL 2019 (BM25 top-100); synthetic passages where it is absent
    out: Path = Path("generated/benchmark")
    quick: bool = False
    protocol: str = "grpc"
    batch_size: int = DEFAULT_BATCH_SIZE
    rounds: int = 2
    perf_analyzer: str | None = None
    no_perf_analyzer: bool = False
    family: Sequence[str] | None = None
    qwen3_tokenizer: Path = Path("generated/qwen3-tokenizer")  # make qwen3-tokenizer
    seconds: float = 30.0
    cpu_scaling: Sequence[int] | None = None
    peers_python: Path = Path(".venv-peers/bin/python")
    first_stage_data: Path = Path("../shared/data/scifact")  # --first-stages: a BEIR folder with test queries
    query_latency: bool = False
    latency_data: Path = Path("../shared/data/scifact")  # --query-latency: a BEIR folder
    latency_split: str = "test"
    cascade: Path | None = None  # --query-latency: a cascade folder from `triton-rerank distill`
    max_queries: int | None = None
    cache_replay: bool = False

    def dl19(self) -> Path | None:
        """The DL19 folder, or None for synthetic passages."""
        return self.data if self.data.exists() else None

    def workdir(self) -> Path:
        """Where exports and scratch files go: ``out/work``, made."""
        work = self.out / "work"
        work.mkdir(parents=True, exist_ok=True)
        return work


def machine() -> str:
    return f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.system()}"


def data_description(data: Path | None) -> str:
    return "TREC DL 2019 BM25 top-100 passages" if data else "synthetic passages of 40-120 words"
