#!/usr/bin/env python
"""Evaluate retrieval + reranking through the served stack, next to the in-process reference:
`triton-rerank evaluate`, plus --peers (sentence-transformers' own backends on the same candidates).
Runs from a checkout: the peers are the benchmarks', not in the wheel (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's benchmarks/

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("evaluate", sys.argv[1:], prog="scripts/evaluate.py"))
