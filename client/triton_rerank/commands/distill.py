"""Make a reranker cheaper on your own collection at the same ranking: a student of BASE's first
layers learns BASE's scores on the collection's queries (judged ones, or --pseudo-queries titles),
and is written as a cascade (the student ranks every candidate, BASE reads its best k) only when a
dev split says it ranks like BASE. `triton-rerank export --model OUT` serves it. See docs/distill.md.

    triton-rerank distill --data DIR --split train --model BASE --output OUT --max-minutes 15
"""

from __future__ import annotations

import argparse

from triton_rerank.distill.config import DistillConfig
from triton_rerank.flags import add_flags, from_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, DistillConfig)


def run(args: argparse.Namespace) -> int:
    from triton_rerank.distill import distill

    distill(from_flags(DistillConfig, args))
    return 0
