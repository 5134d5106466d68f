#!/usr/bin/env python
"""A bounded load test of the served reranker: `triton-rerank load-test`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["load-test", *sys.argv[1:]]))
