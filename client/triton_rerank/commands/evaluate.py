"""``triton-rerank evaluate``: retrieval + reranking through the real stack on a BEIR collection,
next to the in-process reference. The flags build an ``evaluation.EvaluationConfig``; what runs and
what it reports is ``triton_rerank.evaluation``."""

from __future__ import annotations

import argparse
from pathlib import Path

from triton_rerank.commands.common import (
    add_first_stage,
    add_milvus,
    add_models,
    add_repository,
    add_triton_url,
    names_of,
)
from triton_rerank.evaluation.config import CASCADE_NAME, EvaluationConfig
from triton_rerank.flags import from_flags
from triton_rerank.protocol import LONG_DOCUMENT_POLICIES
from triton_rerank.serving.export_options import PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="a BEIR folder (corpus, queries.jsonl, qrels/)")
    parser.add_argument("--split", default="test", help="qrels split (default: %(default)s)")
    add_models(parser)
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="the served reranker's export precision"
    )
    parser.add_argument(
        "--model-format",
        choices=["onnx", "openvino"],
        default="onnx",
        help="the served reranker's format: with --precision int8, openvino is NNCF's static int8 (default: onnx)",
    )
    parser.add_argument("--instruction", help="an LLM reranker's instruction (default: the model card's)")
    parser.add_argument(
        "--cascade-model",
        help=f"a second reranker that reads the first one's best --cascade-k, exported as {CASCADE_NAME!r} "
        f"(with --triton-url: that server's {CASCADE_NAME!r} model)",
    )
    parser.add_argument("--cascade-kind", choices=["cross-encoder", "llm-reranker"], default="cross-encoder")
    parser.add_argument(
        "--cascade-precision", choices=PRECISIONS, default="fp32", help="the second reranker's export precision"
    )
    parser.add_argument("--cascade-k", type=int, default=20, help="candidates the second reranker reads (default: 20)")
    add_repository(parser, "model repository to export into and serve")
    add_triton_url(parser, embedded_default=True)
    add_milvus(parser, uri_default=None)
    parser.add_argument("--index", choices=["HNSW", "FLAT", "IVF_FLAT"], default="HNSW")
    add_first_stage(parser, several=True)
    parser.add_argument("--retrieve-k", type=int, default=100)
    parser.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries (quick runs)")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-process reference")
    parser.add_argument(
        "--rerank-data",
        type=Path,
        help="a BEIR folder with the same ids whose texts the reranker reads instead (the long-document variant)",
    )
    parser.add_argument(
        "--long-documents",
        type=names_of("policies", LONG_DOCUMENT_POLICIES),
        default=["first"],
        help="long-document policies to rerank with, comma-separated: first,max,mean (default: first)",
    )
    _add_comparison(parser)
    parser.add_argument("--out", type=Path, default=Path("generated/evaluation.json"), help="(default: %(default)s)")


def _add_comparison(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compare-models",
        type=lambda value: value.split(","),
        default=[],
        help="other rerankers, comma-separated: compare them with --reranker-model in-process on the same first "
        "stage (exact cosine, top --retrieve-k), each alone and with the blend `train` chose for it; nothing is "
        "served (see docs/training.md)",
    )


def run(args: argparse.Namespace, peers=None) -> int:
    """``peers``: other in-process rerankers of the same candidates (``evaluation.runner.InProcessRuns``)."""
    from triton_rerank.evaluation import run_evaluation

    if args.compare_models:
        from triton_rerank.evaluation.compare import compare_rerankers

        models = [args.reranker_model, *args.compare_models]
        compare_rerankers(
            args.data,
            args.split,
            models,
            embedder=args.embedder_model,
            depth=args.retrieve_k,
            max_queries=args.max_queries,
            out=args.out,
        )
        return 0

    run_evaluation(from_flags(EvaluationConfig, args), peers)
    return 0
