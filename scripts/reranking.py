#!/usr/bin/env python
"""The quick start : `triton-rerank quickstart`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["quickstart", *sys.argv[1:]]))
