#!/usr/bin/env python
"""Benchmark the served reranker against the in-process baseline, side by side:
`triton-rerank benchmark`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
