#!/usr/bin/env python
"""Query-level k-fold cross-validation of `triton-rerank train` on a BEIR collection: every query
tested once on a model trained without it (triton_rerank.training.crossval). Takes train's flags,
plus --folds, --test-depth and --report."""

import argparse
import json
import sys
from pathlib import Path

from triton_rerank.flags import add_flags, from_flags
from triton_rerank.training.config import TrainConfig
from triton_rerank.training.crossval import cross_validate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_flags(parser, TrainConfig)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--test-depth", type=int, default=100, help="first-stage candidates reranked per test query")
    parser.add_argument("--report", type=Path, default=Path("generated/train-crossval.json"))
    args = parser.parse_args(argv)
    report = cross_validate(from_flags(TrainConfig, args), args.folds, args.test_depth)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["overall_ndcg@10"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
