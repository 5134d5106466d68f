#!/usr/bin/env python
"""The long-document variant of SciFact test (each judged abstract inside 1,000-3,000 tokens of other
abstracts, seed 0): `triton-rerank long-corpus`, kept as a script (see --help)."""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["long-corpus", *sys.argv[1:]]))
