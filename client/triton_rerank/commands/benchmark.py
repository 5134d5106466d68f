"""Benchmarks, from a checkout: the served reranker against what users run today, side by side.

    triton-rerank benchmark --quick              # = python scripts/benchmark.py --quick

The benchmarks and the build machine's other tools live in the repository's benchmarks/ folder, not
in the wheel (as vLLM keeps its benchmarks beside its package). This door runs them from the
checkout this package was installed from (pip install -e), or from the current folder's, in a
process of its own; every flag goes to scripts/benchmark.py (see its --help).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import triton_rerank
from triton_rerank.errors import RerankInputError

PASSES_ON_ARGUMENTS = True  # every flag is the benchmarks' own


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """None of its own: ``triton-rerank benchmark --help`` is the benchmarks' help."""


def checkout() -> Path:
    """The checkout that holds benchmarks/: the one this package was installed from, or the current folder."""
    for root in (Path(triton_rerank.__file__).resolve().parents[2], Path.cwd()):
        if (root / "benchmarks" / "cli.py").is_file():
            return root
    raise RerankInputError(
        "the benchmarks ship with the source, not the wheel: clone the repository, `pip install -e '.[all]'` "
        "and run `python scripts/benchmark.py` (or this command) there"
    )


def run(args: argparse.Namespace) -> int:
    """scripts/benchmark.py with the same flags, in a process of its own: the package never imports
    the benchmarks (they import it)."""
    return subprocess.call([sys.executable, str(checkout() / "scripts" / "benchmark.py"), *args.rest])
