"""``POST /v1/search``: the pipeline (``triton_rerank.pipeline``) over HTTP, for callers without Python.

    triton-rerank api --milvus-uri documents.db --collection documents
    curl -s localhost:8080/v1/search -H 'content-type: application/json' -d '{"query": "...", "top_k": 5}'

The body takes what ``RerankPipeline.search`` takes (``retrieve_k``, ``top_k``, ``first_stage`` and its
fusion, ``filter``, ``long_documents``, ``model``) with the pipeline's defaults, and ``collection`` to
search another one than ``--collection``. The answer holds the hits (id, text, metadata, first-stage
rank and score, each leg's rank, the rerank score, the span), the first-stage list the reranker read,
each stage's milliseconds and the request id. Limits, the key and errors are the rerank routes'
(errors in Jina's shape); every bad input is refused before anything reaches Triton.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Literal

from pydantic import Field
from starlette.requests import Request

import triton_rerank.tracing as tracing
from triton_rerank.api.schemas import ApiError, Body
from triton_rerank.errors import RerankError, RerankInputError
from triton_rerank.first_stage import DEFAULT_RRF_K, FirstStage
from triton_rerank.store import MissingCollectionError, StoreError

log = logging.getLogger(__name__)
DISABLED = (
    "this service searches no collection: start it with --milvus-uri URI (and --collection NAME) to enable /v1/search"
)


class SearchRequest(Body):
    """The body of ``POST /v1/search``; the defaults are ``RerankPipeline.search``'s."""

    query: str
    retrieve_k: int = Field(default=100, ge=1)
    top_k: int = Field(default=10, ge=1)
    first_stage: Literal["auto", "dense", "bm25", "hybrid"] = "auto"
    fusion: Literal["relative", "weighted", "rrf"] = FirstStage.fusion
    rrf_k: int = DEFAULT_RRF_K
    weights: list[float] | None = Field(default=None, min_length=2, max_length=2)  # (dense, bm25)
    leg_k: int | None = None
    filter: str | None = None
    model: str | None = None
    collection: str | None = None


class Collections:
    """The Milvus collections the route searches, each opened once (never created: a misspelt name
    is a 404) and kept, and the embedder client the dense leg needs."""

    def __init__(self, settings, embedder) -> None:
        self.settings, self.embedder = settings, embedder
        self._stores: dict[str, object] = {}
        self._lock = asyncio.Lock()

    async def store(self, name: str | None):
        from triton_rerank.store import MilvusStore

        name = name or self.settings.collection
        async with self._lock:
            if name not in self._stores:
                try:
                    self._stores[name] = await asyncio.to_thread(
                        MilvusStore, self.settings.milvus_uri, collection=name, create=False,
                        token=self.settings.milvus_token,
                    )  # fmt: skip
                except MissingCollectionError as err:
                    raise ApiError("not_found", str(err)) from None
                except StoreError as err:
                    raise ApiError("unavailable", f"Milvus cannot be used: {_milvus_words(err)}") from None
            return self._stores[name]

    async def close(self) -> None:
        for store in self._stores.values():
            await asyncio.to_thread(store.close)
        self._stores.clear()
        await self.embedder.close()


def first_stage(body: SearchRequest, store) -> FirstStage:
    weights = tuple(body.weights) if body.weights is not None else None
    try:
        stage = FirstStage(body.first_stage, body.fusion, body.rrf_k, weights, body.leg_k)
        return stage.resolve(store)
    except RerankInputError as err:
        raise ApiError("invalid", str(err)) from None


def hit_json(hit) -> dict:
    return {
        "id": hit.id,
        "text": hit.text,
        "metadata": hit.metadata,
        "rerank_score": hit.rerank_score,
        "first_stage_rank": hit.first_stage_rank,
        "first_stage_score": hit.first_stage_score,
        "legs": {leg: dataclasses.asdict(where) for leg, where in hit.legs.items()},
        "span": list(hit.span) if hit.span else None,
    }


def candidate_json(rank: int, match) -> dict:
    legs = {leg: dataclasses.asdict(where) for leg, where in match.legs.items()}
    return {"id": match.id, "text": match.text, "metadata": match.metadata, "rank": rank, "score": match.score} | {
        "legs": legs
    }


async def search(request: Request, body: SearchRequest) -> dict:
    """The answer to ``body`` (``routes.search`` reads it and answers in Jina's shape)."""
    from triton_rerank.api.service import api_error
    from triton_rerank.pipeline import AsyncRerankPipeline, check_search

    collections: Collections | None = request.app.state.collections
    if collections is None:
        raise ApiError("not_found", DISABLED)
    if not body.query.strip():
        raise ApiError("empty", "query must not be empty")
    settings, service = request.app.state.settings, request.app.state.service
    if body.retrieve_k > settings.max_documents:
        most = settings.max_documents
        raise ApiError("invalid", f"retrieve_k is {body.retrieve_k:,}; this service reranks at most {most:,}")
    try:
        check_search([body.query], body.retrieve_k, body.top_k)
    except RerankInputError as err:
        raise ApiError("invalid", str(err)) from None
    model = await service.resolve(body.model)
    choices = {"instruction": body.instruction} if body.instruction is not None else {}
    options, _ = service.options(model, body.query, [], long_documents=body.long_documents, **choices)
    store = await collections.store(body.collection)
    if body.filter:  # refused by Milvus now, before the query is embedded
        try:
            await asyncio.to_thread(store.check_filter, body.filter)
        except StoreError as err:
            if _unreachable(err):
                raise ApiError("unavailable", "Milvus cannot be reached; try again later") from None
            raise ApiError("invalid", f"Milvus refused the filter {body.filter!r}: {_milvus_words(err)}") from None
    pipeline = AsyncRerankPipeline(
        store, collections.embedder, service.client(model.name), first_stage=first_stage(body, store), options=options
    )
    request.state.model, request.state.documents = model.name, body.retrieve_k  # for the access log
    tracing.annotate(**{"rerank.model": model.name, "rerank.documents": body.retrieve_k})
    rows = body.retrieve_k * (options.chunks_per_doc if options.windowed else 1)  # at most this many on Triton
    with service.admitted(rows):
        try:
            result = await pipeline.search(
                body.query, retrieve_k=body.retrieve_k, top_k=body.top_k, filter=body.filter,
                request_id=request.state.request_id,
            )  # fmt: skip
        except StoreError as err:  # the filter was read already: Milvus failed
            raise ApiError("unavailable", f"Milvus failed the search: {_milvus_words(err)}") from None
        except RerankError as err:
            raise api_error(err) from err
    return {
        "query": body.query,
        "model": model.name,
        "collection": store.collection,
        "first_stage": pipeline.first_stage.name,
        "hits": [hit_json(hit) for hit in result.hits],
        "candidates": [candidate_json(rank, match) for rank, match in enumerate(result.candidates, 1)],
        "timings_ms": result.timings_ms,
        "request_id": request.state.request_id,
    }


def _milvus_words(err: StoreError) -> str:
    """What Milvus said, without its address (which the service's log has)."""
    log.warning("Milvus: %s", err)
    return getattr(err.__cause__, "message", None) or "see the service's log"


def _unreachable(err: StoreError) -> bool:
    """Whether Milvus could not be reached (pymilvus' CONNECT_FAILED, NOT_CONNECTED) rather than refused."""
    return getattr(err.__cause__, "code", None) in (2, 3) or "connect" in str(err.__cause__).lower()
