#!/usr/bin/env python
"""Serve a model repository with the embedded Triton server: `triton-rerank serve`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
