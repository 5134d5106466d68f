"""The served side of an evaluation: the collection ingested through Triton's embedder into
Milvus, each query's candidates from Milvus under each first stage (dense, bm25, hybrid), reranked
by Triton under each long-document policy, and a cascade's second stage."""

from __future__ import annotations

import time

from triton_rerank.evaluation.config import CASCADE_NAME, EvaluationConfig
from triton_rerank.evaluation.data import ranked_ids
from triton_rerank.first_stage import retrieve
from triton_rerank.ingest import ingest, read_documents


def served_runs(config: EvaluationConfig, documents, queries, url: str, milvus_uri: str, stats_url: str | None):
    """The served first stages (Triton embeds into Milvus, Milvus searches) and each reranking of
    them: ({first stage: run}, {name: run}, the first policy's pair scores, timings). The first
    stage named first is the one the long-document policies and a cascade rerank; each other one
    is reranked once, scoring only the pairs not scored already."""
    from triton_rerank import TritonEmbedFunction, TritonRerankFunction

    timings = {}
    with (
        config.open_store(milvus_uri) as store,
        TritonEmbedFunction(url) as embed,
        TritonRerankFunction(url) as rerank,
    ):
        started = time.perf_counter()
        report = ingest(documents, store, embed, batch_size=128)
        timings["ingest_s"] = time.perf_counter() - started
        print(f"served: ingested {report.written} documents in {timings['ingest_s']:.0f} s", flush=True)
        by_stage = first_stage_candidates(config, store, embed, queries, timings)
        candidates = next(iter(by_stage.values()))
        reranked, scores = {}, {}  # scores: the collection's own texts, read as the reference reads them
        if config.rerank_data is None:  # the collection's own texts, under each policy
            for policy in config.long_documents:
                kept = scores if policy == "first" else None
                reranked[policy] = rerank_run(rerank, queries, candidates, None, policy, stats_url, timings, kept)
        else:  # the collection's own texts as they are (the short figure), then the other texts under each policy
            reranked["short"] = rerank_run(rerank, queries, candidates, None, "first", stats_url, timings, scores)
            texts = {d.id: d.text for d in read_documents(config.rerank_data)}
            for policy in config.long_documents:
                reranked[policy] = rerank_run(rerank, queries, candidates, texts, policy, stats_url, timings)
        if config.cascade_model:
            with TritonRerankFunction(url, model_name=CASCADE_NAME) as strong:
                first = next(iter(reranked.values()))
                reranked.update(cascade_runs(strong, queries, candidates, first, config.cascade_k, timings))
        for name, others in list(by_stage.items())[1:]:
            reranked[f"after {name}"] = rerank_new_pairs(rerank, queries, others, scores, name, timings)
    first_stages = {name: {q: [m.id for m in matches] for q, matches in c.items()} for name, c in by_stage.items()}
    return first_stages, reranked, scores, timings


def first_stage_candidates(config: EvaluationConfig, store, embed, queries: dict, timings: dict) -> dict:
    """{first stage's name: {query id: its candidates}} for each first stage the config names; the
    queries are embedded once."""
    query_ids = list(queries)
    texts = [queries[q] for q in query_ids]
    stages = [stage.resolve(store) for stage in config.first_stages()]
    started = time.perf_counter()
    vectors = embed(texts) if any(stage.needs_vectors for stage in stages) else None
    timings["embed_queries_s"] = time.perf_counter() - started
    by_stage = {}
    for stage in stages:
        started = time.perf_counter()
        found = retrieve(store, stage, texts, vectors, limit=config.retrieve_k)
        timings[f"retrieve_{stage.name}_s"] = time.perf_counter() - started
        by_stage[stage.name] = dict(zip(query_ids, found, strict=True))
    return by_stage


def rerank_new_pairs(rerank, queries: dict, candidates: dict, scores: dict, name: str, timings: dict) -> dict:
    """Each query's ``candidates`` ranked by the reranker, scoring only the (query, document) pairs
    that ``scores`` lacks (other first stages found them too) and adding them to it."""
    started, pairs = time.perf_counter(), 0
    run = {}
    for q, matches in candidates.items():
        todo = [m for m in matches if (q, m.id) not in scores]
        if todo:
            got = rerank.score(queries[q], [m.text for m in todo])
            scores.update({(q, m.id): float(score) for m, score in zip(todo, got, strict=True)})
            pairs += len(todo)
        run[q] = ranked_ids([m.id for m in matches], [scores[(q, m.id)] for m in matches])
    timings[f"rerank_after_{name}_s"] = time.perf_counter() - started
    print(f"served (after {name}): reranked {pairs} new pairs in {timings[f'rerank_after_{name}_s']:.0f} s", flush=True)
    return run


def cascade_runs(strong, queries, candidates, first: dict, keep: int, timings: dict) -> dict:
    """The strong reranker on the first one's best ``keep`` of each list (the rest keep the first
    one's order), and on the whole lists alone; the seconds and pairs each stage read."""
    texts = {m.id: m.text for matches in candidates.values() for m in matches}
    runs = {}
    for name, depth in ((f"cascade top-{keep}", keep), ("cascade model alone", None)):
        started = time.perf_counter()
        run, pairs = {}, 0
        for q, ids in first.items():
            head = ids[:depth] if depth else [m.id for m in candidates[q]]
            read = set(head)
            run[q] = ranked_ids(head, strong.score(queries[q], [texts[d] for d in head]))
            run[q] += [d for d in ids if d not in read]
            pairs += len(head)
        timings[f"rerank_{name}_s"] = time.perf_counter() - started
        timings[f"rerank_{name}_pairs"] = pairs
        print(f"served ({name}): reranked {pairs} pairs in {timings[f'rerank_{name}_s']:.0f} s", flush=True)
        runs[name] = run
    return runs


def rerank_run(
    rerank, queries, candidates, texts: dict | None, policy: str, stats_url: str | None, timings: dict, scores=None
):
    """Each query's candidates reranked (with ``texts`` instead of theirs, when given) under one
    long-document policy; records the seconds and the rows the cross-encoder scored, and each
    (query, document) pair's score in ``scores`` when given."""
    from triton_rerank.serving.statistics import settled_stats

    name = policy if texts is not None else "short" if policy == "first" else f"short {policy}"
    before = settled_stats(stats_url) if stats_url else None  # settled: the last run's last request counted
    started = time.perf_counter()
    run = {}
    for q, matches in candidates.items():
        documents = [texts.get(m.id, m.text) if texts else m.text for m in matches]
        got = rerank.score(queries[q], documents, long_documents=policy)
        run[q] = ranked_ids([m.id for m in matches], got)
        if scores is not None:
            scores.update({(q, m.id): float(score) for m, score in zip(matches, got, strict=True)})
    timings[f"rerank_{name}_s"] = time.perf_counter() - started
    pairs = sum(len(c) for c in candidates.values())
    if before is not None:
        rows = _model_rows(settled_stats(stats_url)) - _model_rows(before)
        timings[f"rerank_{name}_rows"] = rows
    shown = f", {timings[f'rerank_{name}_rows']} rows scored" if before is not None else ""
    print(f"served ({name}): reranked {pairs} pairs in {timings[f'rerank_{name}_s']:.0f} s{shown}", flush=True)
    return run


# The reranker's model: the plain export's, or a cascade's two stages (serving/export/cascade.py).
RERANKER_MODELS = ("cross_encoder", "reranker_first_model", "reranker_last_model")


def _model_rows(stats: dict) -> int:
    """Rows the reranker's model(s) have scored, by Triton's own count."""
    return sum(stats.get(name, {}).get("inferences", 0) for name in RERANKER_MODELS)
