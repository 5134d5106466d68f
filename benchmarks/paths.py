"""Where the benchmarks find their data, models and the peers' environment on a build machine."""

from __future__ import annotations

import os
from pathlib import Path

# The repository's root: the benchmarks run from a checkout (they are not in the wheel).
ROOT = Path(__file__).resolve().parents[1]
# Data and models for the benchmarks' defaults: $TRITON_RERANK_SHARED, else the shared/ folder beside
# the checkout the commands are run from (the build machines' layout).
SHARED = Path(os.environ.get("TRITON_RERANK_SHARED", "../shared"))
# The Python of the in-process peers' environment (`make peers` builds it in the checkout).
PEERS_PYTHON = Path(os.environ.get("TRITON_RERANK_PEERS_PYTHON", ".venv-peers/bin/python"))
