"""``triton-rerank evaluate`` with the benchmark's in-process peers beside it: sentence-transformers'
own backends (``peers``) rerank the served first stage's very candidates, each in a worker process
of the peers' environment (``make peers``), one after the other, so that a peer's accuracy tier is
measured on the collection, as the served precisions' are.

    python scripts/evaluate.py --data DIR --reranker-model M --peers st-onnx-int8,st-openvino

Every other flag is ``triton-rerank evaluate``'s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.paths import PEERS_PYTHON
from benchmarks.peers import PEER_NAMES, PEERS
from triton_rerank.commands import evaluate
from triton_rerank.commands.common import names_of
from triton_rerank.errors import RerankInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    evaluate.add_arguments(parser)
    parser.add_argument(
        "--peers",
        type=names_of("peers", PEERS),
        default=[],
        help=f"in-process peers that rerank the same candidates, comma-separated: {', '.join(PEERS)} "
        "(sentence-transformers' backends; `make peers`)",
    )
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_PYTHON,
        help="the Python of the peers' environment, built by `make peers` (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    if not args.peers:
        return evaluate.run(args)
    if args.rerank_data or args.reranker_kind != "cross-encoder" or args.compare_models:
        raise RerankInputError(
            "--peers are sentence-transformers cross-encoders on the collection's own texts: leave out "
            "--rerank-data, --compare-models and --reranker-kind llm-reranker"
        )
    if not args.peers_python.exists():
        raise RerankInputError(
            f"--peers run in the peers' environment, and there is none at {args.peers_python}: "
            "run `make peers` first (or name one with --peers-python)"
        )
    return evaluate.run(args, peers=lambda *scored: peer_runs(args, *scored))


def peer_runs(args: argparse.Namespace, queries: dict, first_stage: dict, texts: dict, timings: dict) -> dict:
    """Each peer's ranking of the served first stage's very candidates (the collection's own texts),
    one worker process at a time, so that no peer competes with another for the cores."""
    from benchmarks.peers import PeerProcess
    from benchmarks.workload import Request
    from triton_rerank.evaluation.data import ranked_ids
    from triton_rerank.model_sources import resolve_model
    from triton_rerank.serving.export.precision import builtin_calibration_pairs

    model = resolve_model(args.reranker_model)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="triton-rerank-peers-") as work:
        for kind in args.peers:
            peer = PeerProcess(kind, Path(model), Path(work) / kind, args.peers_python).start(
                builtin_calibration_pairs()
            )
            try:
                started = time.perf_counter()
                run = {}
                for q, ids in first_stage.items():
                    (scores,) = peer.score([Request(queries[q], [texts[d] for d in ids])])
                    run[q] = ranked_ids(ids, scores)
            finally:
                peer.stop()
            seconds = time.perf_counter() - started
            pairs = sum(len(ids) for ids in first_stage.values())
            timings[kind] = {"s": seconds, "pairs": pairs}
            print(f"peer {PEER_NAMES[kind]}: reranked {pairs} pairs in {seconds:.0f} s", flush=True)
            runs[PEER_NAMES[kind]] = run
    return runs
