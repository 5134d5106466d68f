"""A drop-in for pymilvus' ``CrossEncoderRerankFunction`` that reranks on a Triton server.

    rf = TritonRerankFunction("grpc://127.0.0.1:8001")      # or http://127.0.0.1:8000
    rf(query="...", documents=["...", "..."], top_k=3)       # -> [RerankResult(text, score, index)]

Same call, same result type, same order (score descending, ties in input order) and, by default,
the same score meaning as ``cross-encoder/ms-marco-*`` models give in-process: the raw logit.
``activation="sigmoid"`` maps scores into (0, 1). Each call may also say how the server
truncates (``truncation_options``). The options every client takes (replicas,
timeouts, batch size, API key) are those of ``base._Client``; ``AsyncTritonRerankFunction`` is the
asyncio twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from triton_rerank.base import AsyncClient, BlockingClient, check_strings, utf8
from triton_rerank.endpoints import DEFAULT_URL
from triton_rerank.errors import RerankInputError

Activation = Literal["identity", "sigmoid"]
SCORES_AND_TOKENS = ("SCORES", "TOKENS")  # the reranker's outputs, read side by side


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its text, its score, and its position in the input list."""

    text: str
    score: float
    index: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_request(query: object, documents: object, top_k: object) -> list[bytes]:
    """Validate a rerank call; returns the documents UTF-8 encoded, in order."""
    utf8(query, "query")
    encoded = check_strings(documents, "documents")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RerankInputError(f"top_k must be a positive int or None (all documents), got {top_k!r}")
    return encoded


def rank(documents: Sequence[str], scores: np.ndarray, top_k: int | None) -> list[RerankResult]:
    """Results sorted by score, descending; equal scores keep input order (as pymilvus does)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    return [RerankResult(text=documents[i], score=float(scores[i]), index=i) for i in order[:top_k]]


def activate(logits: np.ndarray, activation: Activation) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return logits


def check_activation(activation: object) -> Activation:
    if activation not in ("identity", "sigmoid"):
        raise RerankInputError(f"activation must be 'identity' (raw logits) or 'sigmoid', got {activation!r}")
    return activation


def truncation_options(
    truncate: object = True, truncation_direction: object = None, max_tokens_per_doc: object = None
) -> dict | None:
    """A call's truncation choices as the tokenizer step's request parameters (None: the defaults).

    ``truncate=False`` makes the server refuse a pair over the model's max_length instead of cutting
    it; ``truncation_direction`` (``"right"`` or ``"left"``) says which end is cut; ``max_tokens_per_doc``
    cuts each document to that many tokens before it is paired with the query.
    """
    parameters = {}
    if not isinstance(truncate, bool):
        raise RerankInputError(f"truncate must be True or False, got {truncate!r}")
    if not truncate:
        parameters["truncate"] = False
    if truncation_direction is not None:
        if truncation_direction not in ("right", "left"):
            raise RerankInputError(f"truncation_direction must be 'right' or 'left', got {truncation_direction!r}")
        parameters["truncation_direction"] = truncation_direction
    if max_tokens_per_doc is not None:
        if isinstance(max_tokens_per_doc, bool) or not isinstance(max_tokens_per_doc, int) or max_tokens_per_doc < 1:
            raise RerankInputError(f"max_tokens_per_doc must be a positive int or None, got {max_tokens_per_doc!r}")
        parameters["max_tokens_per_doc"] = max_tokens_per_doc
    return parameters or None


def _pairs(query: str):
    """One length group of documents -> the reranker's string inputs."""
    query_bytes = [query.encode("utf-8")]
    return lambda group: ({"QUERY": query_bytes, "DOCUMENTS": group}, len(group))


class TritonRerankFunction(BlockingClient):
    """Rerank documents for a query on a Triton server; see the module docstring.

    Args:
        activation: ``identity`` returns raw logits (as ms-marco cross-encoders do in-process);
            ``sigmoid`` maps them into (0, 1).
        options: Those of every client (``base._Client``): ``model_name`` (default ``reranker``),
            ``batch_size``, ``timeout_s``, ``headers``, ``max_in_flight``, ``retry_s``, ``api_key``.
    """

    DEFAULT_MODEL_NAME = "reranker"

    def __init__(self, url: str | Sequence[str] = DEFAULT_URL, *, activation: Activation = "identity", **options):
        self.activation = check_activation(activation)
        super().__init__(url, **options)

    def __call__(self, query: str, documents: list[str], top_k: int | None = 5, **truncation) -> list[RerankResult]:
        """Rerank ``documents`` for ``query``; the ``top_k`` best (all for ``None``), best first.
        ``truncation``: the keywords of ``truncation_options``."""
        return rank(documents, self._score(query, documents, top_k, truncation), top_k)

    def score(self, query: str, documents: list[str], **truncation) -> np.ndarray:
        """One score per document, in input order (float32 logits, or float64 after sigmoid)."""
        return self._score(query, documents, None, truncation)

    def score_and_count(self, query: str, documents: list[str], **truncation) -> tuple[np.ndarray, np.ndarray]:
        """``score``, and each pair's tokens as the model read them (after truncation): what usage
        reports count. Needs a repository exported with the TOKENS output (this release on)."""
        both = self._send(
            check_request(query, documents, None), _pairs(query), SCORES_AND_TOKENS, flat=False,
            parameters=truncation_options(**truncation),
        )  # fmt: skip
        return activate(both[:, 0], self.activation), both[:, 1].astype(np.int64)

    def _score(self, query: str, documents: list[str], top_k: int | None, truncation: dict) -> np.ndarray:
        encoded = check_request(query, documents, top_k)
        parameters = truncation_options(**truncation)
        scores = self._send(encoded, _pairs(query), "SCORES", flat=True, parameters=parameters)
        return activate(scores, self.activation)


class AsyncTritonRerankFunction(AsyncClient):
    """The asyncio twin of ``TritonRerankFunction``: same arguments, ``await rf(...)``."""

    DEFAULT_MODEL_NAME = "reranker"

    def __init__(self, url: str | Sequence[str] = DEFAULT_URL, *, activation: Activation = "identity", **options):
        self.activation = check_activation(activation)
        super().__init__(url, **options)

    async def __call__(
        self, query: str, documents: list[str], top_k: int | None = 5, **truncation
    ) -> list[RerankResult]:
        return rank(documents, await self._score(query, documents, top_k, truncation), top_k)

    async def score(self, query: str, documents: list[str], **truncation) -> np.ndarray:
        return await self._score(query, documents, None, truncation)

    async def score_and_count(self, query: str, documents: list[str], **truncation) -> tuple[np.ndarray, np.ndarray]:
        both = await self._send(
            check_request(query, documents, None), _pairs(query), SCORES_AND_TOKENS, flat=False,
            parameters=truncation_options(**truncation),
        )  # fmt: skip
        return activate(both[:, 0], self.activation), both[:, 1].astype(np.int64)

    async def _score(self, query: str, documents: list[str], top_k: int | None, truncation: dict) -> np.ndarray:
        encoded = check_request(query, documents, top_k)
        parameters = truncation_options(**truncation)
        scores = await self._send(encoded, _pairs(query), "SCORES", flat=True, parameters=parameters)
        return activate(scores, self.activation)
