"""A drop-in for pymilvus' ``CrossEncoderRerankFunction`` that reranks on a Triton server.

    rf = TritonRerankFunction("grpc://127.0.0.1:8001")      # or http://127.0.0.1:8000
    rf(query="...", documents=["...", "..."], top_k=3)       # -> [RerankResult(text, score, index)]

Same call, same result type, same order (score descending, ties in input order) and, by default,
the same score meaning as ``cross-encoder/ms-marco-*`` models give in-process: the raw logit.
``activation="sigmoid"`` maps scores into (0, 1). Each call may also say what the server does with
documents longer than the model reads (``options=RerankOptions(...)``, or its fields as keywords:
truncate them, the default; refuse them; or score every window of them and keep the best or the
mean) and ask which part of each document decided its score (``return_spans``). The options every
client takes (replicas, timeouts, batch size, API key) are those of ``base.AsyncClient``.

``AsyncTritonRerankFunction`` holds the logic; ``TritonRerankFunction`` runs it on a shared event
loop (``triton_rerank.loop``) and may be called from several threads at once. A score the model
answers NaN for is refused (``InvalidScoresError``), never ranked. ``score_cache="memory"`` (or a
``redis://`` URL, or a ``score_cache.ScoreCache`` shared with other clients) sends only the pairs
not scored before by the same model version with the same options (``triton_rerank.score_cache``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

import numpy as np

import triton_rerank.loop as loop
import triton_rerank.protocol as protocol
import triton_rerank.tracing as tracing
from triton_rerank.base import AsyncClient, BlockingClient, check_strings, utf8
from triton_rerank.endpoints import DEFAULT_URL
from triton_rerank.errors import InvalidScoresError, RerankInputError
from triton_rerank.options import RerankOptions
from triton_rerank.score_cache import ScoreCache, config_version
from triton_rerank.score_cache import score_cache as score_cache_of

Activation = Literal["identity", "sigmoid"]


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its text, its score, its position in the input list and, when asked
    for (``return_spans``), the characters ``text[span[0]:span[1]]`` that decided its score."""

    text: str
    score: float
    index: int
    span: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.span is None:  # the drop-in's dict: text, score, index
            del out["span"]
        return out


class Scores(NamedTuple):
    """What ``score_details`` returns, one entry per document in input order: the scores, and, when
    asked for, the tokens the model read and the span ``[start, end)`` of the text that decided."""

    scores: np.ndarray
    tokens: np.ndarray | None = None
    spans: np.ndarray | None = None


def check_request(query: object, documents: object, top_k: object = None) -> list[bytes]:
    """Validate a rerank call; returns the documents UTF-8 encoded, in order."""
    utf8(query, "query")
    encoded = check_strings(documents, "documents")
    check_top_k(top_k)
    return encoded


def check_top_k(top_k: object) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RerankInputError(f"top_k must be a positive int or None (all documents), got {top_k!r}")


def rank(
    documents: Sequence[str], scores: np.ndarray, top_k: int | None, spans: np.ndarray | None = None
) -> list[RerankResult]:
    """Results sorted by score, descending; equal scores keep input order (as pymilvus does)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    return [
        RerankResult(
            text=documents[i],
            score=float(scores[i]),
            index=i,
            span=None if spans is None else (int(spans[i][0]), int(spans[i][1])),
        )
        for i in order[:top_k]
    ]


def activate(logits: np.ndarray, activation: Activation) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return logits


def check_activation(activation: object) -> Activation:
    if activation not in ("identity", "sigmoid"):
        raise RerankInputError(f"activation must be 'identity' (raw logits) or 'sigmoid', got {activation!r}")
    return activation


def check_scores(scores: np.ndarray, model_name: str) -> np.ndarray:
    """Scores as the model gave them, unless one is NaN: it cannot be ranked, so it is refused (as
    TEI refuses it), naming the documents."""
    bad = np.flatnonzero(np.isnan(scores))
    if len(bad):
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise InvalidScoresError(
            f"{model_name} scored {len(bad)} of {len(scores)} documents NaN (documents {shown}); the model or its "
            "export is broken for these inputs"
        )
    return scores


class AsyncTritonRerankFunction(AsyncClient):
    """Rerank documents for a query on a Triton server, ``await rf(...)``; see the module docstring.

    Args:
        activation: ``identity`` returns raw logits (as ms-marco cross-encoders do in-process);
            ``sigmoid`` maps them into (0, 1).
        score_cache: None (off, the default), ``"memory"``, a ``redis://`` URL, or a ``ScoreCache``.
        options: Those of every client (``base.AsyncClient``): ``model_name`` (default ``reranker``),
            ``batch_size``, ``timeout_s``, ``headers``, ``max_in_flight``, ``retry_s``, ``api_key``.
    """

    DEFAULT_MODEL_NAME = protocol.RERANKER

    def __init__(
        self,
        url: str | Sequence[str] = DEFAULT_URL,
        *,
        activation: Activation = "identity",
        score_cache: str | ScoreCache | None = None,
        **options,
    ):
        self.activation = check_activation(activation)
        self.score_cache = score_cache_of(score_cache)
        self._owns_cache = not isinstance(score_cache, ScoreCache)  # one passed in may serve other clients too
        super().__init__(url, **options)

    async def close(self) -> None:
        await super().close()
        if self.score_cache is not None and self._owns_cache:
            await self.score_cache.close()

    async def __call__(
        self,
        query: str,
        documents: list[str],
        top_k: int | None = 5,
        *,
        return_spans: bool = False,
        options: RerankOptions | None = None,
        **keywords,
    ) -> list[RerankResult]:
        """Rerank ``documents`` for ``query``; the ``top_k`` best (all for ``None``), best first.
        ``keywords``: the fields of ``RerankOptions``, in place of ``options``."""
        check_top_k(top_k)
        found = await self.score_details(query, documents, spans=return_spans, options=options, **keywords)
        return rank(documents, found.scores, top_k, found.spans)

    async def score(self, query: str, documents: list[str], *, options: RerankOptions | None = None, **keywords):
        """One score per document, in input order (float32 logits, or float64 after sigmoid)."""
        return (await self.score_details(query, documents, options=options, **keywords)).scores

    async def score_details(
        self,
        query: str,
        documents: list[str],
        *,
        tokens: bool = False,
        spans: bool = False,
        options: RerankOptions | None = None,
        request_id: str | None = None,
        **keywords,
    ) -> Scores:
        """``score``, and with ``tokens`` the tokens the model read per document (usage reports),
        with ``spans`` the characters of each document that decided its score. ``request_id`` (also
        taken by ``__call__`` and ``score``) is Triton's request id on every call the documents are
        split into (``triton_rerank.tracing``)."""
        with tracing.requested(request_id):
            return await self._score_details(query, documents, tokens, spans, RerankOptions.of(options, **keywords))

    async def _score_details(
        self, query: str, documents: list[str], tokens: bool, spans: bool, chosen: RerankOptions
    ) -> Scores:
        encoded = check_request(query, documents)
        if self.score_cache is not None and encoded:
            values = await self._through_cache(query, documents, encoded, chosen)
            if values is not None:  # score, tokens, span: what _scores reads, in those columns
                return self._scores(values if tokens or spans else values[:, 0], tokens, spans)
        outputs = (protocol.SCORES,) + ((protocol.TOKENS,) if tokens else ()) + ((protocol.SPANS,) if spans else ())
        return self._scores(await self._send_pairs(query, encoded, outputs, chosen), tokens, spans)

    async def _send_pairs(self, query: str, encoded: list[bytes], outputs: tuple, chosen: RerankOptions):
        costs = chosen.row_costs(query)
        query_bytes = [query.encode("utf-8")]
        return await self._send(
            encoded,
            lambda group: ({protocol.QUERY: query_bytes, protocol.DOCUMENTS: group}, len(group)),
            outputs if len(outputs) > 1 else protocol.SCORES,
            flat=len(outputs) == 1,
            parameters=chosen.parameters(),
            costs=(lambda limits: costs(limits, encoded)) if costs else None,
        )

    async def _through_cache(self, query: str, documents: list[str], encoded: list[bytes], chosen: RerankOptions):
        """[documents, 4] float32 (score, tokens, span start, span end): the cached pairs as they were
        computed, the others computed and cached. None for a model whose scores cannot be cached."""
        version = config_version(await self._transport.served_config())
        if version is None:
            return None
        cache = self.score_cache
        await cache.start()
        keys = cache.keys(self._transport.model_name, version, chosen.parameters(), query, documents)
        found = await cache.get_many(keys)
        values = np.zeros((len(documents), 4), np.float32)
        misses: dict[bytes, list[int]] = {}  # a document given twice is sent once
        for i, value in enumerate(found):
            if value is None:
                misses.setdefault(keys[i], []).append(i)
            else:
                values[i] = value
        if misses:
            sent = [rows[0] for rows in misses.values()]
            outputs = (protocol.SCORES, protocol.TOKENS, protocol.SPANS)
            computed = await self._send_pairs(query, [encoded[i] for i in sent], outputs, chosen)
            for rows, row in zip(misses.values(), computed, strict=True):
                values[rows] = row
            fresh = [(keys[i], (float(values[i, 0]), *(int(v) for v in values[i, 1:]))) for i in sent]
            await cache.put_many([(key, value) for key, value in fresh if not math.isnan(value[0])])
        return values

    def _scores(self, values: np.ndarray, tokens: bool, spans: bool) -> Scores:
        """The answer (one column per output, side by side) as ``Scores``."""
        if len(values) == 0:  # no documents, no request
            return Scores(np.empty(0, np.float32), np.empty(0, np.int64) if tokens else None,
                          np.empty((0, 2), np.int64) if spans else None)  # fmt: skip
        logits = check_scores(values if values.ndim == 1 else values[:, 0], self._transport.model_name)
        if values.ndim == 1:
            return Scores(activate(logits, self.activation))
        return Scores(
            activate(logits, self.activation),
            values[:, 1].astype(np.int64) if tokens else None,
            values[:, -2:].astype(np.int64) if spans else None,
        )


class TritonRerankFunction(BlockingClient):
    """The blocking twin of ``AsyncTritonRerankFunction``: the same arguments, ``rf(...)``; a
    drop-in for pymilvus' ``CrossEncoderRerankFunction``. Safe to call from several threads."""

    ASYNC_TYPE = AsyncTritonRerankFunction

    @property
    def activation(self) -> Activation:
        return self._async.activation

    def __call__(self, query: str, documents: list[str], top_k: int | None = 5, **keywords) -> list[RerankResult]:
        """Rerank ``documents`` for ``query``; the ``top_k`` best (all for ``None``), best first.
        ``keywords``: ``return_spans``, ``options`` or the fields of ``RerankOptions``."""
        return loop.run(self._async(query, documents, top_k, **keywords))

    def score(self, query: str, documents: list[str], **keywords) -> np.ndarray:
        """One score per document, in input order (float32 logits, or float64 after sigmoid)."""
        return loop.run(self._async.score(query, documents, **keywords))

    def score_details(self, query: str, documents: list[str], **keywords) -> Scores:
        """``score``, and with ``tokens=True`` / ``spans=True`` the tokens read and the spans that decided."""
        return loop.run(self._async.score_details(query, documents, **keywords))
