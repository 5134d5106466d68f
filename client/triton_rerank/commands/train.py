"""Fine-tune a cross-encoder on your own data: judged queries (a BEIR folder or a JSONL file of
{"query", "positives", "negatives"}) or none (--pseudo-queries titles), hard negatives from your own
first stage (your Milvus collection, or the corpus searched in-process), trained to a time budget
and written only when it beats the base model on a held-out dev split. See docs/training.md.

    triton-rerank train --data DIR --split train --model M --output OUT --max-minutes 15
"""

from __future__ import annotations

import argparse

from triton_rerank.commands.common import MILVUS_TOKEN_ENV
from triton_rerank.flags import add_flags, from_flags
from triton_rerank.training.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, TrainConfig)
    parser.add_argument("--milvus-ca-file", help="CA certificate (PEM) of a Milvus server with TLS by a private CA")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from triton_rerank.training.runner import train

    config = dataclasses.replace(
        from_flags(TrainConfig, args),
        milvus_token=os.environ.get(MILVUS_TOKEN_ENV) or None,  # from the environment only, as every command
        milvus_ca_file=args.milvus_ca_file,
    )
    train(config)
    return 0
