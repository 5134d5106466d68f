#!/usr/bin/env python
"""Evaluate retrieval + reranking through the served stack, next to the in-process reference:
`triton-rerank evaluate`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
