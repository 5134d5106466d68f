#!/usr/bin/env python
"""Quick start: export a cross-encoder (if needed), serve it with Triton, rerank a sample query.

    python scripts/reranking.py                                   # cross-encoder/ms-marco-MiniLM-L-6-v2 from the hub
    python scripts/reranking.py --reranker-model path/to/folder   # any local BERT-style cross-encoder
    python scripts/reranking.py --triton-url grpc://host:8001     # use a server that is already running

Prints the documents in their original order and reranked, with scores, against the in-process
reference when sentence-transformers is installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from triton_rerank import RerankError, TritonRerankFunction

SAMPLE_QUERY = "How do vaccines train the immune system?"
SAMPLE_DOCUMENTS = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Vaccines expose the immune system to a harmless piece or weakened form of a pathogen, so that it "
    "learns to recognise it and produces antibodies and memory cells.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "After vaccination, memory B and T cells let the body respond faster when it meets the real virus.",
    "The immune system includes the skin, white blood cells, the lymph nodes and the spleen.",
    "Interest rates are set by central banks to keep inflation close to a target.",
    "Some vaccines need booster doses because the immune memory they create fades over time.",
    "Antibiotics kill bacteria or stop them from growing; they do not work against viruses.",
]


def ensure_repository(model: str, repository: Path) -> None:
    """Export ``model`` into ``repository`` unless an export of that very model is there."""
    manifest = repository / "cross_encoder" / "1" / "export.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("model") == model:
        print(f"model repository {repository} already holds {model}")
        return
    from triton_rerank.export import export_cross_encoder

    print(f"exporting {model} into {repository} ...", flush=True)
    try:
        report = export_cross_encoder(model, repository)
    except OSError as err:  # not on disk, and the hub is out of reach
        raise RuntimeError(f"cannot load {model}: {err}\nno hub access? pass --reranker-model <local folder>") from err
    print(f"exported: max |score - PyTorch| = {report.max_abs_diff:.1e} on {report.pairs_checked} sample pairs")


def show(title: str, rows: list[tuple[int, str, str]]) -> None:
    print(f"\n{title}")
    for rank, (index, score, text) in enumerate(rows, 1):
        print(f"  {rank:>2}. [{index}] {score:>8}  {text[:90]}")


def compare_in_process(model: str, query: str, served: list[float]) -> None:
    """Score the same pairs in-process with sentence-transformers, when it is installed."""
    try:
        import torch
        from sentence_transformers import CrossEncoder
    except ImportError:
        return
    started = time.perf_counter()
    reference = CrossEncoder(model, device="cpu").predict(
        [(query, d) for d in SAMPLE_DOCUMENTS], activation_fn=torch.nn.Identity()
    )
    diff = max(abs(float(a) - b) for a, b in zip(reference, served, strict=True))
    print(
        f"\nin-process sentence-transformers CrossEncoder (load + score {time.perf_counter() - started:.1f} s): "
        f"max |score difference| to Triton = {diff:.1e}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reranker-model",
        default="cross-encoder/ms-marco-MiniLM-L-6-v2",
        help="hub id or local folder of the cross-encoder (default: %(default)s)",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path("model_repository"),
        help="model repository to export into and serve (default: %(default)s)",
    )
    parser.add_argument(
        "--triton-url",
        help="an already running Triton (http://... or grpc://...); "
        "default: start the embedded server on free loopback ports",
    )
    parser.add_argument("--query", default=SAMPLE_QUERY)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    server = None
    try:
        if args.triton_url is None:
            from triton_rerank.server import EmbeddedTritonServer, free_port_settings

            ensure_repository(args.reranker_model, args.repository)
            started = time.perf_counter()
            server = EmbeddedTritonServer(args.repository, free_port_settings()).start()
            print(f"Triton ready in {time.perf_counter() - started:.1f} s at {server.grpc_url}")
        url = args.triton_url or server.grpc_url
        with TritonRerankFunction(url) as rf:
            rf(query=args.query, documents=SAMPLE_DOCUMENTS[:1])  # warm-up
            started = time.perf_counter()
            results = rf(query=args.query, documents=SAMPLE_DOCUMENTS, top_k=args.top_k)
            elapsed_ms = (time.perf_counter() - started) * 1e3
            all_scores = rf.score(args.query, SAMPLE_DOCUMENTS).tolist()
    except Exception as err:  # the quick start reports any failure in one line and exits non-zero
        if isinstance(err, (RerankError, OSError, ValueError, RuntimeError, ImportError)):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise
    finally:
        if server is not None:
            server.stop()

    print(f"\nquery: {args.query}")
    show("first-stage order (as given):", [(i, "", d) for i, d in enumerate(SAMPLE_DOCUMENTS)])
    timing = f"{elapsed_ms:.0f} ms for {len(SAMPLE_DOCUMENTS)} documents"
    show(
        f"reranked by Triton (top {args.top_k}, raw logits, {timing}):",
        [(r.index, f"{r.score:+.3f}", r.text) for r in results],
    )
    if args.triton_url is None:
        compare_in_process(args.reranker_model, args.query, all_scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
