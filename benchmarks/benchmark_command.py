"""``python scripts/benchmark.py`` (``triton-rerank benchmark`` from a checkout): the served reranker
against what users run today, side by side in one run. The flags build a ``config.BenchmarkConfig``;
each mode is a module of ``benchmarks``:

- (default) ``served_benchmark``: pymilvus' in-process function against the served fp32 and int8
  exports, over a grid of documents per request and clients; --quick in about 3 minutes;
- --long-documents ``long_documents``: windows and the fold against the same rows sent plain;
- --tiers ``tiers``: each precision tier against the strongest in-process peer of that tier;
- --api ``api_overhead``: the rerank API against the direct gRPC client;
- --tracing ``tracing_overhead``: the rerank API with OpenTelemetry tracing on against off;
- --families and --cpu-scaling ``scaling``: pairs/s per model family, and per core count;
- --first-stages ``first_stages``: search and whole-query latency of dense, bm25 and hybrid;
- --queue-policy ``queue_policy``: the bounded Triton queue (the default) against none;
- --search-route ``search_route``: ``POST /v1/search`` against the pipeline in-process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.config import BenchmarkConfig
from benchmarks.families import SHAPES
from benchmarks.paths import PEERS_PYTHON, SHARED
from triton_rerank.base import DEFAULT_BATCH_SIZE
from triton_rerank.flags import from_flags

QWEN3_TOKENIZER = BenchmarkConfig.__dataclass_fields__["qwen3_tokenizer"].default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="N = 100 only, fewer requests, no levers (< 3 min)")
    parser.add_argument(
        "--model",
        type=Path,
        default=SHARED / "models" / "minilm-l6-scifact-ce",
        help="cross-encoder folder (default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED / "data" / "msmarco-passage-dl19-bm25top100",
        help="TREC DL 2019 folder; synthetic passages if absent (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("generated/benchmark"), help="(default: %(default)s)")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="client batch_size")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--perf-analyzer", help="Triton's perf_analyzer binary (default: the one on PATH)")
    parser.add_argument("--no-perf-analyzer", action="store_true")
    _add_modes(parser)
    parser.add_argument(
        "--families", action="store_true", help="pairs/s per model family (BERT, XLM-R, Qwen3), fp32 and int8"
    )
    parser.add_argument(
        "--family",
        action="append",
        help="with --families: LABEL=MODEL[@KIND], MODEL a hub id, a folder or shape:NAME (random weights at a "
        "checkpoint's sizes: " + ", ".join(SHAPES) + "); repeatable (default: the --model checkpoint and "
        "both shapes)",
    )
    parser.add_argument(
        "--qwen3-tokenizer",
        type=Path,
        default=QWEN3_TOKENIZER,
        help="Qwen3's tokenizer files, for shape:qwen3-reranker-0.6b (`make qwen3-tokenizer`; default: %(default)s)",
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="with --families or --cpu-scaling: seconds a measurement runs"
    )
    parser.add_argument(
        "--cpu-scaling",
        type=core_counts,
        help="served int8 pairs/s on these core counts, e.g. 1,2,4,8,16: the server pinned to that many cores",
    )
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_PYTHON,
        help="the Python of the peers' environment, built by `make peers` (default: %(default)s)",
    )
    _add_first_stages(parser)
    _add_query_latency(parser)


def _add_modes(parser: argparse.ArgumentParser) -> None:
    """The benchmarks other than the default one (each a module of benchmarks)."""
    parser.add_argument("--api", action="store_true", help="the rerank API's overhead against the direct client")
    parser.add_argument(
        "--tracing", action="store_true", help="the rerank API with tracing on (exported, Triton too) against off"
    )
    parser.add_argument(
        "--long-documents", action="store_true", help="what windows and the fold cost, against the same rows sent plain"
    )
    parser.add_argument(
        "--tiers", action="store_true", help="each precision tier against the fastest in-process peer of that tier"
    )
    parser.add_argument(
        "--queue-policy", action="store_true", help="the bounded queue (the default) against none, fp32 and int8"
    )
    parser.add_argument("--search-route", action="store_true", help="POST /v1/search against the pipeline in-process")


def _add_first_stages(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--first-stages",
        action="store_true",
        help="search and whole-query (embed + retrieve + rerank) latency of the dense, bm25 and hybrid first stages",
    )
    parser.add_argument(
        "--first-stage-data",
        type=Path,
        default=SHARED / "data" / "scifact",
        help="with --first-stages: a BEIR folder with test queries (default: %(default)s)",
    )


def _add_query_latency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--query-latency",
        action="store_true",
        help="nDCG@10 beside p50/p95 rerank time per query, for fp32, int8, bf16 and --cascade (and its student)",
    )
    parser.add_argument(
        "--latency-data", type=Path, default=SHARED / "data" / "scifact", help="with --query-latency: a BEIR folder"
    )
    parser.add_argument("--latency-split", default="test", help="with --query-latency: its qrels split")
    parser.add_argument("--cascade", type=Path, help="with --query-latency: a cascade folder (triton-rerank distill)")
    parser.add_argument("--max-queries", type=int, help="with --query-latency: the first N queries by id")
    parser.add_argument(
        "--cache-replay",
        action="store_true",
        help="a DL19 query log with 50%% repeats through the API at 4 clients: no score cache, memory, redis",
    )


def core_counts(value: str) -> list[int]:
    """An argparse type: core counts separated by commas."""
    try:
        counts = sorted({int(c) for c in value.split(",")})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"core counts are positive integers separated by commas, got {value!r}")
    return counts


def run(args: argparse.Namespace) -> int:
    from benchmarks import (
        api_overhead,
        cache_replay,
        first_stages,
        long_documents,
        query_latency,
        queue_policy,
        scaling,
        search_route,
        served_benchmark,
        tiers,
        tracing_overhead,
    )

    config = from_flags(BenchmarkConfig, args)
    if args.families:
        return scaling.run_families(config)
    if not config.model.exists():
        print(f"no model at {config.model}: pass --model with a cross-encoder folder", file=sys.stderr)
        return 2
    modes = {  # flag -> the mode it runs; none of them: the served benchmark
        "cpu_scaling": scaling.run_cpu_scaling,
        "api": api_overhead.run_api_benchmark,
        "tracing": tracing_overhead.run_tracing_benchmark,
        "first_stages": first_stages.run_first_stages_benchmark,
        "long_documents": long_documents.run_long_documents_benchmark,
        "tiers": tiers.run_tiers_benchmark,
        "queue_policy": queue_policy.run_queue_policy_benchmark,
        "query_latency": query_latency.run_query_latency_benchmark,
        "cache_replay": cache_replay.run_cache_replay_benchmark,
        "search_route": search_route.run_search_route_benchmark,
    }
    chosen = next((run_mode for flag, run_mode in modes.items() if getattr(args, flag)), None)
    return (chosen or served_benchmark.run_served_benchmark)(config)
