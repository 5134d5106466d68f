#!/usr/bin/env python
"""Check the KIND_GPU path on a machine with an NVIDIA GPU (see --help).
Runs from a checkout: the benchmarks are not in the wheel."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's benchmarks/

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("gpu-check", sys.argv[1:], prog="scripts/gpu_check.py"))
