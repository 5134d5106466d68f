"""Retrieve with Milvus, rerank with Triton: the two-stage search in one object.

    pipeline = RerankPipeline(MilvusStore("docs.db"), TritonEmbedFunction(url), TritonRerankFunction(url))
    result = pipeline.search("how do vaccines work?", retrieve_k=100, top_k=10)
    for hit in result.hits:
        print(hit.id, hit.rerank_score, hit.first_stage_score, hit.first_stage_rank)

The query is embedded by the ``embedder`` ensemble, Milvus returns the ``retrieve_k`` best
documents by the first stage (``triton_rerank.first_stage``: ``first_stage="hybrid"``, BM25 and
dense fused by relative score fusion, where the collection has BM25, else ``"dense"``; ``"bm25"``;
``fusion="rrf"|"weighted"``, ``weights=(dense, bm25)``, ``leg_k``), and the ``reranker`` ensemble
scores each (query, document) pair; hits come back best rerank score first, each with where every leg put it.
``AsyncRerankPipeline`` holds the logic (Milvus calls run in a worker thread); ``RerankPipeline``
runs it on the blocking clients' shared loop.

``options=RerankOptions(...)`` (or its fields as keywords) are the reranker's request options:
``RerankPipeline(store, embed, rerank, long_documents="max")`` reads documents longer than the model
in windows and keeps each one's best, and its hits carry the ``span`` of text that decided.

A cascade spends a strong (slow) reranker only where it matters: ``cascade=[(strong, 20)]`` reranks
the ``retrieve_k`` candidates with ``rerank``, then the best 20 of those again with ``strong`` (a
client of another model, e.g. ``TritonRerankFunction(url, model_name="qwen3")``); hits carry the last
stage's scores. Stages may be chained: ``cascade=[(medium, 50), (strong, 10)]``.

``blend=w`` ranks by ``w * z(rerank score) + (1 - w) * z(first-stage score)`` within each query's
candidates (``triton_rerank.blend``; hits carry it as ``blended_score``): the weight ``train`` chose on
its dev split (its ``train-report.json``) for a reranker that should not throw the first stage away.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import triton_rerank.loop as loop
import triton_rerank.tracing as tracing
from triton_rerank.base import BlockingClient
from triton_rerank.blend import blend, check_blend
from triton_rerank.client import AsyncTritonRerankFunction, TritonRerankFunction, rank
from triton_rerank.embed import AsyncTritonEmbedFunction, TritonEmbedFunction
from triton_rerank.errors import RerankInputError
from triton_rerank.first_stage import DEFAULT_RRF_K, FirstStage, retrieve
from triton_rerank.options import RerankOptions
from triton_rerank.store import LegHit, Match, MilvusStore, check_text_queries


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    rerank_score: float  # the cross-encoder's score (raw logit by default)
    first_stage_score: float  # cosine (dense), BM25 (bm25) or the fused score (hybrid) from Milvus
    first_stage_rank: int  # 1-based position in the first-stage list
    metadata: dict[str, Any]
    span: tuple[int, int] | None = None  # the characters of text that decided (long documents read in windows)
    blended_score: float | None = None  # what the hits are ranked by with ``blend=w`` (see triton_rerank.blend)
    legs: dict[str, LegHit] = field(default_factory=dict)  # each first-stage leg's rank and score, where it found it


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[Hit]
    candidates: list[Match]  # the first-stage list, in Milvus' order
    timings_ms: dict[str, float] = field(default_factory=dict)  # embed, retrieve, rerank


def check_search(queries: list[str], retrieve_k: object, top_k: object, cascade: list[tuple[Any, int]] = ()) -> None:
    for i, query in enumerate(queries):
        if not isinstance(query, str):
            raise RerankInputError(f"query {i} must be a str, got {type(query).__name__}")
    for name, value in (("retrieve_k", retrieve_k), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RerankInputError(f"{name} must be a positive int, got {value!r}")
    if top_k > retrieve_k:
        raise RerankInputError(f"top_k ({top_k}) cannot exceed retrieve_k ({retrieve_k})")
    if cascade and top_k > cascade[-1][1]:
        raise RerankInputError(
            f"top_k ({top_k}) cannot exceed the {cascade[-1][1]} candidates the last cascade stage reads"
        )


def _result(
    query: str, candidates: list[Match], read: list[int], found, top_k: int, timings: dict, weight: float | None = None
) -> SearchResult:
    """Hits from the last stage's scores ``found`` of the candidates ``read`` (their indices),
    ranked by those scores, or by their blend with the first stage's when ``weight`` is given."""
    scores = np.asarray(found.scores, dtype=np.float64)
    order = scores if weight is None else blend(scores, [candidates[i].score for i in read], weight)
    ranked = rank([candidates[i].text for i in read], order, top_k, found.spans)
    hits = []
    for r in ranked:
        candidate = read[r.index]
        hits.append(
            Hit(
                id=candidates[candidate].id,
                text=r.text,
                rerank_score=float(scores[r.index]),
                blended_score=None if weight is None else r.score,
                first_stage_score=candidates[candidate].score,
                first_stage_rank=candidate + 1,
                metadata=candidates[candidate].metadata,
                span=r.span,
                legs=candidates[candidate].legs,
            )
        )
    return SearchResult(query=query, hits=hits, candidates=candidates, timings_ms=timings)


def _first_stage(store, first_stage: str | FirstStage, **fusion) -> FirstStage:
    """The pipeline's first stage, checked and resolved for ``store`` (``auto``: hybrid where it has BM25)."""
    if isinstance(first_stage, FirstStage):
        defaults = FirstStage()
        if any(value != getattr(defaults, name) for name, value in fusion.items()):
            raise RerankInputError("give fusion settings inside the FirstStage, not beside it")
        return first_stage.resolve(store)
    return FirstStage(first_stage, **fusion).resolve(store)


def _check_cascade(cascade: object) -> list[tuple[Any, int]]:
    stages = list(cascade or [])
    for stage in stages:
        if not (isinstance(stage, tuple) and len(stage) == 2 and hasattr(stage[0], "score_details")):
            raise RerankInputError(f"each cascade stage must be a (reranker, how many it reads) pair, got {stage!r}")
        keep = stage[1]
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise RerankInputError(f"a cascade stage reads a positive number of candidates, got {keep!r}")
    return stages


def _best(read: list[int], scores, keep: int) -> list[int]:
    """The ``keep`` best of the candidates ``read`` (indices), best first: the next stage's input."""
    return [read[r.index] for r in rank([""] * len(read), scores, keep)]


def _shared_timings(embed_ms: float, retrieve_ms: float, queries: int) -> dict[str, float]:
    """A batch embeds and retrieves once for all queries: each query gets its share."""
    return {"embed": embed_ms / queries, "retrieve": retrieve_ms / queries}


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1e3


class AsyncRerankPipeline:
    """Two-stage search over one Milvus collection, ``await``; see the module docstring. A batch's
    reranking calls run concurrently."""

    def __init__(
        self,
        store: MilvusStore,
        embedder: AsyncTritonEmbedFunction,
        reranker: AsyncTritonRerankFunction,
        *,
        cascade: list[tuple[AsyncTritonRerankFunction, int]] | None = None,
        blend: float | None = None,
        first_stage: str | FirstStage = "auto",
        fusion: str = FirstStage.fusion,
        rrf_k: int = DEFAULT_RRF_K,
        weights: tuple[float, float] | None = None,
        leg_k: int | None = None,
        options: RerankOptions | None = None,
        **keywords,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.cascade = _check_cascade(cascade)
        self.blend = check_blend(blend)
        self.first_stage = _first_stage(store, first_stage, fusion=fusion, rrf_k=rrf_k, weights=weights, leg_k=leg_k)
        self.options = RerankOptions.of(options, **keywords)  # checked now rather than at the first search

    async def search(self, query: str, *, retrieve_k: int = 100, top_k: int = 10, **keywords) -> SearchResult:
        return (await self.search_batch([query], retrieve_k=retrieve_k, top_k=top_k, **keywords))[0]

    async def search_batch(
        self,
        queries: list[str],
        *,
        retrieve_k: int = 100,
        top_k: int = 10,
        filter: str | None = None,
        request_id: str | None = None,
    ) -> list[SearchResult]:
        """Search several queries: one embedding call, one Milvus search, one rerank call each;
        ``request_id`` names them in every Triton call and span (see ``triton_rerank.tracing``)."""
        check_search(queries, retrieve_k, top_k, self.cascade)
        if not queries:
            return []
        if self.first_stage.kind != "dense":
            check_text_queries(queries)
        with tracing.requested(request_id), tracing.span("search", queries=len(queries), retrieve_k=retrieve_k):
            started = time.perf_counter()
            with tracing.span("embed", texts=len(queries)):
                vectors = await self.embedder.encode(queries) if self.first_stage.needs_vectors else None
            embed_ms = _ms(started)
            started = time.perf_counter()
            with tracing.span("milvus.search", **{"first_stage": self.first_stage.kind, "milvus.limit": retrieve_k}):
                candidate_lists = await asyncio.to_thread(
                    retrieve, self.store, self.first_stage, queries, vectors, limit=retrieve_k, filter=filter
                )
            shared = _shared_timings(embed_ms, _ms(started), len(queries))
            searches = (self._rerank(q, c, top_k, shared) for q, c in zip(queries, candidate_lists, strict=True))
            return list(await asyncio.gather(*searches))

    async def _rerank(self, query: str, candidates: list[Match], top_k: int, shared: dict) -> SearchResult:
        """The candidates through the reranker and each cascade stage: hits from the last."""
        started = time.perf_counter()
        read = list(range(len(candidates)))
        with tracing.span("rerank", documents=len(candidates)):
            found = await self._score(self.reranker, query, candidates, read)
            for reranker, keep in self.cascade:
                read = _best(read, found.scores, keep)
                found = await self._score(reranker, query, candidates, read)
        return _result(query, candidates, read, found, top_k, {**shared, "rerank": _ms(started)}, self.blend)

    async def _score(self, reranker, query: str, candidates: list[Match], read: list[int]):
        texts = [candidates[i].text for i in read]
        return await reranker.score_details(query, texts, spans=self.options.windowed, options=self.options)


class RerankPipeline:
    """The blocking twin of ``AsyncRerankPipeline``, over blocking clients: the same arguments."""

    def __init__(
        self,
        store: MilvusStore,
        embedder: TritonEmbedFunction,
        reranker: TritonRerankFunction,
        *,
        cascade: list[tuple[TritonRerankFunction, int]] | None = None,
        blend: float | None = None,
        first_stage: str | FirstStage = "auto",
        options: RerankOptions | None = None,
        **keywords,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.cascade = _check_cascade(cascade)
        self._async = AsyncRerankPipeline(
            store,
            _asynchronous(embedder),
            _asynchronous(reranker),
            cascade=[(_asynchronous(stage), keep) for stage, keep in self.cascade],
            blend=blend,
            first_stage=first_stage,
            options=options,
            **keywords,  # the fusion settings and the reranker's options
        )

    @property
    def options(self) -> RerankOptions:
        return self._async.options

    @property
    def first_stage(self) -> FirstStage:
        return self._async.first_stage

    def search(self, query: str, *, retrieve_k: int = 100, top_k: int = 10, **keywords) -> SearchResult:
        return self.search_batch([query], retrieve_k=retrieve_k, top_k=top_k, **keywords)[0]

    def search_batch(self, queries: list[str], *, retrieve_k: int = 100, top_k: int = 10, **keywords):
        """Search several queries: one embedding call, one Milvus search, one rerank call each
        (``filter``, ``request_id`` as ``AsyncRerankPipeline.search_batch`` takes them)."""
        return loop.run(self._async.search_batch(queries, retrieve_k=retrieve_k, top_k=top_k, **keywords))


def _asynchronous(client):
    """The asyncio side of a blocking component: a triton_rerank client's own asyncio twin; any other
    (an embedder with ``encode``, a reranker with ``score_details``, as before) is called in a worker
    thread, so that it never blocks the shared loop."""
    return client._async if isinstance(client, BlockingClient) else _InWorkerThread(client)


class _InWorkerThread:
    """A blocking embedder or reranker of another kind, awaited from the loop through a worker thread."""

    def __init__(self, component) -> None:
        self.component = component

    async def encode(self, texts: list[str]):
        return await asyncio.to_thread(self.component.encode, texts)

    async def score_details(self, query: str, documents: list[str], **keywords):
        return await asyncio.to_thread(self.component.score_details, query, documents, **keywords)
