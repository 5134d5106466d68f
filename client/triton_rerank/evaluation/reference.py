"""The in-process side of an evaluation: the reference (sentence-transformers, or an LLM
reranker's model card code) and the in-process peers (sentence-transformers' own backends)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from triton_rerank.evaluation.config import EvaluationConfig
from triton_rerank.evaluation.data import ranked_ids


def reference_runs(config: EvaluationConfig, documents, queries, served_candidates):
    """In-process: exact cosine search, and the reference reranker on its candidates and on the
    served ones: (exact, exact reranked, served candidates reranked, pair scores, timings)."""
    from sentence_transformers import SentenceTransformer

    from triton_rerank.model_sources import resolve_model
    from triton_rerank.serving.export import reference_reranker

    timings = {}
    started = time.perf_counter()
    embedder = SentenceTransformer(resolve_model(config.embedder_model), device="cpu")
    corpus = embedder.encode([d.text for d in documents], normalize_embeddings=True, batch_size=64)
    query_ids = list(queries)
    similarity = embedder.encode([queries[q] for q in query_ids], normalize_embeddings=True) @ corpus.T
    doc_ids = [d.id for d in documents]
    top = np.argsort(-similarity, axis=1, kind="stable")[:, : config.retrieve_k]
    exact = {q: [doc_ids[i] for i in top[n]] for n, q in enumerate(query_ids)}
    timings["exact_search_s"] = time.perf_counter() - started
    print(f"reference: exact search in {timings['exact_search_s']:.0f} s", flush=True)

    started = time.perf_counter()
    predict = reference_reranker(config.reranker_model, config.reranker_kind, config.instruction)
    texts = {d.id: d.text for d in documents}
    scores: dict[tuple[str, str], float] = {}  # each (query, document) pair scored once
    for q in query_ids:
        todo = [d for d in dict.fromkeys(exact[q] + served_candidates[q]) if (q, d) not in scores]
        predicted = predict([(queries[q], texts[d]) for d in todo])
        scores.update({(q, d): float(s) for d, s in zip(todo, predicted, strict=True)})
    timings["rerank_s"] = time.perf_counter() - started
    print(f"reference: scored {len(scores)} pairs in {timings['rerank_s']:.0f} s", flush=True)

    def rerank(runs):
        return {q: ranked_ids(ids, [scores[(q, d)] for d in ids]) for q, ids in runs.items()}

    return exact, rerank(exact), rerank(served_candidates), scores, timings


def peer_runs(config: EvaluationConfig, queries: dict, first_stage: dict, texts: dict, timings: dict) -> dict:
    """Each peer's ranking of the served first stage's very candidates (the collection's own texts),
    one worker process at a time, so that no peer competes with another for the cores."""
    from triton_rerank.bench.peers import PEER_NAMES, PeerProcess
    from triton_rerank.bench.workload import Request
    from triton_rerank.model_sources import resolve_model
    from triton_rerank.serving.export.precision import builtin_calibration_pairs

    model = resolve_model(config.reranker_model)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="triton-rerank-peers-") as work:
        for kind in config.peers:
            peer = PeerProcess(kind, Path(model), Path(work) / kind, config.peers_python).start(
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
