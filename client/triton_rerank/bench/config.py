"""What a benchmark run measures with, as a frozen settings object (the command line's flags, or
Python), and the facts every report states: the machine and the data."""

from __future__ import annotations

import dataclasses
import os
import platform
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
    family: tuple[str, ...] | None = None
    qwen3_tokenizer: Path = Path("generated/qwen3-tokenizer")  # make qwen3-tokenizer
    seconds: float = 30.0
    cpu_scaling: tuple[int, ...] | None = None
    peers_python: Path = Path(".venv-peers/bin/python")

    @classmethod
    def from_namespace(cls, namespace) -> BenchmarkConfig:
        """The fields of an ``argparse.Namespace`` that has them (the benchmark command's flags)."""
        values = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if hasattr(namespace, f.name)}
        for name in ("family", "cpu_scaling"):
            values[name] = tuple(values[name]) if values.get(name) else None
        return cls(**values)

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
