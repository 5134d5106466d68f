#!/usr/bin/env python
"""Export a model into a Triton model repository and check it against PyTorch:
`triton-rerank export`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
