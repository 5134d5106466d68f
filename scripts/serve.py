#!/usr/bin/env python
"""Serve a model repository with a real Triton Inference Server, in the foreground.

    python scripts/serve.py --repository model_repository --http-port 8000 --grpc-port 8001 --metrics-port 8002

Prints one line once every model is ready; Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
The same as ``triton-rerank serve``.
"""

import sys

from triton_rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
