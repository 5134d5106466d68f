"""The build machine's commands, one module each (``add_arguments(parser)`` and ``run(args)``, as
``triton_rerank.commands``), run by the scripts in ``scripts/`` as the package's command line runs its
own, through its one error boundary (``triton_rerank.cli.execute``):

    python scripts/benchmark.py --quick          # served against in-process, side by side
    python scripts/load_test.py --model M        # many clients for a fixed time, memory read between runs
    python scripts/gpu_check.py --model M        # the KIND_GPU path on a machine with an NVIDIA GPU
    python scripts/long_scifact.py               # the long-document variant of SciFact
    python scripts/evaluate.py --peers st-onnx   # triton-rerank evaluate, with the in-process peers beside it

``triton-rerank benchmark`` is a door to the first, from a checkout.
"""

from __future__ import annotations

import argparse
import importlib

from triton_rerank.cli import execute

COMMANDS = {
    "benchmark": "benchmarks.benchmark_command",
    "load-test": "benchmarks.load_test",
    "gpu-check": "benchmarks.gpu_check",
    "long-corpus": "benchmarks.long_corpus_command",
    "evaluate": "benchmarks.peer_evaluation",
}


def main(command: str, argv: list[str], prog: str | None = None) -> int:
    module = importlib.import_module(COMMANDS[command])
    parser = argparse.ArgumentParser(
        prog=prog or command, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    module.add_arguments(parser)
    return execute(module.run, parser.parse_args(argv))
