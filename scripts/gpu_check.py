#!/usr/bin/env python
"""Check the KIND_GPU path on a machine with an NVIDIA GPU: `triton-rerank gpu-check`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["gpu-check", *sys.argv[1:]]))
