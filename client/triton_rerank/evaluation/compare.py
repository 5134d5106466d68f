"""Rerankers side by side on held-out queries, in-process: the same first stage (exact cosine with
the bi-encoder), each model's scores of the same candidates, alone and, for a model ``train`` wrote,
blended with the first stage by the weight its dev split chose (its ``train-report.json``). This is
how a trained model is compared with its base (``triton-rerank evaluate --compare-models``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from triton_rerank.beir import load_beir
from triton_rerank.metrics import evaluate
from triton_rerank.model_sources import resolve_model


def blend_weight(model: str) -> float | None:
    """The blend weight ``train`` chose for ``model`` on its dev split, if any."""
    report = Path(model) / "train-report.json"
    if not report.is_file():
        return None
    blend = json.loads(report.read_text()).get("blend")
    return blend["weight"] if blend else None


def compare_rerankers(
    data: Path, split: str, models: list[str], *, embedder: str, depth: int, max_queries: int | None, out: Path
) -> dict:
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from triton_rerank.training.data import TrainingData
    from triton_rerank.training.dev import DevSet
    from triton_rerank.training.first_stage import InProcessDense
    from triton_rerank.training.mining import first_stage_hits

    collection = load_beir(data, split, max_queries=max_queries)
    documents, queries, qrels = collection.documents, collection.queries, collection.judgments
    corpus = {d.id: d.text for d in documents}
    held_out = TrainingData(corpus, queries, qrels)
    first_stage = InProcessDense(corpus, embedder)
    candidates = DevSet(held_out, first_stage_hits(held_out, first_stage, depth), depth)
    rows = {f"first stage: {first_stage.name}": _metrics(candidates, candidates.first_scores, 1.0, qrels)}
    seconds = {}
    for model in models:
        started = time.perf_counter()
        reranker = CrossEncoder(resolve_model(model), device="cpu", activation_fn=torch.nn.Identity())
        scores = candidates.score(reranker)
        seconds[model] = round(time.perf_counter() - started, 1)
        rows[f"reranked: {model}"] = _metrics(candidates, scores, 1.0, qrels)
        if (weight := blend_weight(model)) is not None:
            rows[f"reranked: {model}, blended with the first stage (w={weight})"] = _metrics(
                candidates, scores, weight, qrels
            )
    report = {
        "data": str(data),
        "split": split,
        "queries": len(queries),
        "depth": depth,
        "rows": rows,
        "rerank_seconds": seconds,
    }
    print(f"\n{data.name} {split}: {len(queries)} queries, first stage top {depth} reranked in-process\n")
    print("| run | nDCG@10 | MRR@10 | Recall@100 |\n| --- | --- | --- | --- |")
    for name, values in rows.items():
        print(f"| {name} | {values['ndcg@10']:.4f} | {values['mrr@10']:.4f} | {values['recall@100']:.4f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _metrics(candidates, scores: dict[str, np.ndarray], weight: float, qrels) -> dict[str, float]:
    runs = {}
    for query, ids in candidates.candidates.items():
        blended = candidates.blend(scores[query], query, weight)
        runs[query] = [ids[i] for i in np.argsort(-blended, kind="stable")]
    return evaluate(runs, qrels)
