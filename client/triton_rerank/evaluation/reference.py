"""The in-process side of an evaluation: the reference (sentence-transformers, or an LLM
reranker's model card code) and the exact BM25 beside Milvus'."""

from __future__ import annotations

import time

import numpy as np

from triton_rerank.evaluation.config import EvaluationConfig
from triton_rerank.evaluation.data import ranked_ids


def reference_runs(config: EvaluationConfig, documents, queries, served_candidates):
    """In-process: exact cosine search, and the reference reranker on its candidates and on the
    served ones: (exact, exact reranked, served candidates reranked, pair scores, timings)."""
    from sentence_transformers import SentenceTransformer

    from triton_rerank.model_sources import resolve_model
    from triton_rerank.serving.export import reference_reranker
    from triton_rerank.serving.export.cascade import is_cascade

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
    if is_cascade(resolve_model(config.reranker_model)):
        exact_reranked, served_reranked, scores = _cascade_runs(predict, queries, texts, exact, served_candidates)
    else:
        exact_reranked, served_reranked, scores = _pair_runs(predict, queries, texts, exact, served_candidates)
    timings["rerank_s"] = time.perf_counter() - started
    print(f"reference: scored {len(scores)} pairs in {timings['rerank_s']:.0f} s", flush=True)
    return exact, exact_reranked, served_reranked, scores, timings


def _pair_runs(predict, queries, texts, exact, served_candidates):
    """Each (query, document) pair scored once, whichever list it is in: (exact reranked, served
    reranked, pair scores)."""
    scores: dict[tuple[str, str], float] = {}
    for q in exact:
        todo = [d for d in dict.fromkeys(exact[q] + served_candidates[q]) if (q, d) not in scores]
        predicted = predict([(queries[q], texts[d]) for d in todo])
        scores.update({(q, d): float(s) for d, s in zip(todo, predicted, strict=True)})

    def rerank(runs):
        return {q: ranked_ids(ids, [scores[(q, d)] for d in ids]) for q, ids in runs.items()}

    return rerank(exact), rerank(served_candidates), scores


def _cascade_runs(predict, queries, texts, exact, served_candidates):
    """A cascade's scores depend on the documents of the call (its best k of them go on): each list
    is reranked as one call, as the server reranks it. (exact reranked, served reranked, the served
    lists' pair scores)."""
    scores: dict[tuple[str, str], float] = {}

    def rerank(runs, keep: bool):
        ranked = {}
        for q, ids in runs.items():
            predicted = predict([(queries[q], texts[d]) for d in ids])
            if keep:
                scores.update({(q, d): float(s) for d, s in zip(ids, predicted, strict=True)})
            ranked[q] = ranked_ids(ids, list(predicted))
        return ranked

    return rerank(exact, False), rerank(served_candidates, True), scores


def exact_bm25(config: EvaluationConfig, documents, queries: dict, *, stem: bool) -> dict[str, list[str]]:
    r"""The reference BM25 (``bm25s``, exact, over the whole corpus) with the analysis of the default
    ``english`` analyzer: words of letters and digits, lowercased, Lucene's English stop words, and,
    with ``stem``, the Snowball English stemmer; k1 = 1.2, b = 0.75 and Lucene's idf, as the store
    sets Milvus' BM25. Milvus servers stem; Milvus Lite 3.2.2 skips the stemmer filter (its analyzer
    is ``\w+``, lowercase and stop words only), so the unstemmed run is Lite's own. Each query's top
    ``retrieve_k`` ids."""
    import bm25s
    import Stemmer

    from triton_rerank.analyzers import ENGLISH_STOP_WORDS

    started = time.perf_counter()
    stemmer = Stemmer.Stemmer("english")

    def terms(texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(
            texts,
            token_pattern=r"(?u)\b\w+\b",  # Milvus' standard tokenizer keeps one-letter words too
            stopwords=ENGLISH_STOP_WORDS,
            stemmer=stemmer.stemWords if stem else None,
            return_ids=False,
            show_progress=False,
        )

    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(terms([d.text for d in documents]), show_progress=False)
    query_ids = list(queries)
    k = min(config.retrieve_k, len(documents))
    found, _ = retriever.retrieve(terms([queries[q] for q in query_ids]), k=k, show_progress=False)
    doc_ids = [d.id for d in documents]
    print(f"reference: exact BM25{' stemmed' if stem else ''} in {time.perf_counter() - started:.0f} s", flush=True)
    return {q: [doc_ids[i] for i in found[n]] for n, q in enumerate(query_ids)}
