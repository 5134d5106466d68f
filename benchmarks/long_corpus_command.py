"""Write the long-document variant of a BEIR collection (``bench.long_corpus``): each document
judged in --split placed at a random position among unjudged ones, 1,000-3,000 tokens of the
reranker's tokenizer, deterministic for --seed. ``triton-rerank evaluate --rerank-data`` then reranks
the short collection's first-stage candidates with these texts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.paths import SHARED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "scifact", help="(default: %(default)s)")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=SHARED / "models" / "minilm-l6-scifact-ce" / "tokenizer.json",
        help="tokenizer.json that counts the tokens (default: %(default)s)",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("generated/scifact-long"), help="(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from benchmarks.long_corpus import write_long_beir

    summary = write_long_beir(args.data, args.out, args.tokenizer, args.split, args.seed)
    print(json.dumps(summary))
    print(
        f"wrote {args.out}: evaluate with --data {args.data} --rerank-data {args.out} --long-documents first,max,mean"
    )
    return 0
