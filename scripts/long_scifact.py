#!/usr/bin/env python
"""The long-document variant of SciFact test (each judged abstract inside 1,000-3,000 tokens of other
abstracts, seed 0) (see --help).
Runs from a checkout: the benchmarks are not in the wheel."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's benchmarks/

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("long-corpus", sys.argv[1:], prog="scripts/long_scifact.py"))
