"""A drop-in for pymilvus' ``CrossEncoderRerankFunction`` that reranks on a Triton server.

    rf = TritonRerankFunction("grpc://127.0.0.1:8001")      # or http://127.0.0.1:8000
    rf(query="...", documents=["...", "..."], top_k=3)       # -> [RerankResult(text, score, index)]

Same call, same result type, same order (score descending, ties in input order) and, by default,
the same score meaning as ``cross-encoder/ms-marco-*`` models give in-process: the raw logit.
``activation="sigmoid"`` maps scores into (0, 1).

The URL's scheme picks the protocol (see ``transport``). Documents go in requests of at most
``batch_size``, grouped by length (the tokenizer pads each request only to its own longest pair)
and sent concurrently; N documents in, N scores out, in input order, or an error.
``AsyncTritonRerankFunction`` is the asyncio twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from triton_rerank.errors import RerankInputError
from triton_rerank.transport import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RETRY_S,
    AsyncTransport,
    Transport,
    connection_options,
)

Activation = Literal["identity", "sigmoid"]
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_MODEL_NAME = "reranker"
# Documents per request: the server's default max_batch_size. The dynamic batcher cannot merge
# requests padded to different lengths, and the runner already runs each batch in length-sorted
# slices, so on a CPU one large request beats several small ones (benchmark: 253 vs 241 pairs/s
# for N = 100 at 1 client, 243 vs 219 at 4 clients, batch_size 128 vs 64).
DEFAULT_BATCH_SIZE = 128


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
    if not isinstance(query, str):
        raise RerankInputError(f"query must be a str, got {type(query).__name__}")
    _utf8(query, "query")
    encoded = check_strings(documents, "documents")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RerankInputError(f"top_k must be a positive int or None (all documents), got {top_k!r}")
    return encoded


def check_strings(values: object, what: str) -> list[bytes]:
    """``values`` must be a list (any sequence but a string) of str; returns them UTF-8 encoded."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise RerankInputError(f"{what} must be a list of str, got {type(values).__name__}")
    encoded = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise RerankInputError(f"{what}[{i}] must be a str, got {type(value).__name__}")
        encoded.append(_utf8(value, f"{what}[{i}]"))
    return encoded


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RerankInputError(f"{what} cannot be encoded as UTF-8: {err}") from err


def rank(documents: Sequence[str], scores: np.ndarray, top_k: int | None) -> list[RerankResult]:
    """Results sorted by score, descending; equal scores keep input order (as pymilvus does)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    return [RerankResult(text=documents[i], score=float(scores[i]), index=i) for i in order[:top_k]]


def activate(logits: np.ndarray, activation: Activation) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return logits


def check_options(activation: object, batch_size: object) -> None:
    if activation not in ("identity", "sigmoid"):
        raise RerankInputError(f"activation must be 'identity' (raw logits) or 'sigmoid', got {activation!r}")
    check_batch_size(batch_size)


def check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RerankInputError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def chunks(items: list[bytes], size: int) -> list[list[bytes]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def rows_per_request(batch_size: int, rows: int, server_limit) -> int:
    """``batch_size``, or less when the server takes fewer rows per request (asked only when it
    could matter): an honest large request is split, never refused."""
    if rows <= 1:
        return batch_size
    limit = server_limit()
    return min(batch_size, limit) if limit else batch_size


def length_groups(items: list[bytes], size: int) -> tuple[np.ndarray, list[list[bytes]]]:
    """``items`` ordered by length and cut into groups of at most ``size``, and that order: each
    request then holds texts of similar length, so padding to its longest wastes little work."""
    order = np.argsort(np.array([len(item) for item in items], dtype=np.int64), kind="stable")
    return order, chunks([items[i] for i in order], size)


def in_input_order(order: np.ndarray, parts: list[np.ndarray], *, flat: bool = True) -> np.ndarray:
    """Undo ``length_groups``: rows of ``parts`` (in grouped order) put back where ``order`` took
    them; ``flat`` gives one value per row (scores), else rows of values (embeddings)."""
    if not parts:
        return np.empty(0 if flat else (0, 0), np.float32)
    grouped = np.concatenate([part.reshape(len(part), -1) for part in parts])
    out = np.empty_like(grouped)
    out[order] = grouped
    return out.reshape(-1) if flat else out


def _batches(query: str, groups: list[list[bytes]]) -> list[tuple[dict[str, list[bytes]], int]]:
    query_bytes = [query.encode("utf-8")]
    return [({"QUERY": query_bytes, "DOCUMENTS": group}, len(group)) for group in groups]


class TritonRerankFunction:
    """Rerank documents for a query on a Triton server; see the module docstring.

    Args:
        url: Server URL; the scheme picks HTTP or gRPC. Several URLs (a list, or separated by
            commas) are replicas: requests spread over them and fail over when one is down.
        model_name: The ensemble to call.
        activation: ``identity`` returns raw logits (as ms-marco cross-encoders do in-process);
            ``sigmoid`` maps them into (0, 1).
        batch_size: Most documents per Triton request; larger lists go in several requests. Above
            the server's own limit (its ``max_rows_per_request``, read once) the server's wins.
        timeout_s: Connection and request timeout.
        headers: Extra HTTP headers / gRPC metadata sent with every request.
        max_in_flight: Most requests of one call on the wire at once.
    """

    def __init__(
        self,
        url: str | Sequence[str] = DEFAULT_URL,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        activation: Activation = "identity",
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_s: float = DEFAULT_RETRY_S,
        api_key: str | None = None,
    ) -> None:
        check_options(activation, batch_size)
        self.activation = activation
        self.batch_size = batch_size
        self._transport = Transport(
            url,
            model_name,
            timeout_s=timeout_s,
            headers=headers,
            max_in_flight=max_in_flight,
            **connection_options(retry_s, api_key),
        )

    def __call__(self, query: str, documents: list[str], top_k: int | None = 5) -> list[RerankResult]:
        """Rerank ``documents`` for ``query``; the ``top_k`` best (all for ``None``), best first."""
        return rank(documents, self._score(query, check_request(query, documents, top_k)), top_k)

    def score(self, query: str, documents: list[str]) -> np.ndarray:
        """One score per document, in input order (float32 logits, or float64 after sigmoid)."""
        return self._score(query, check_request(query, documents, None))

    def _score(self, query: str, encoded: list[bytes]) -> np.ndarray:
        order, groups = length_groups(
            encoded, rows_per_request(self.batch_size, len(encoded), self._transport.rows_limit)
        )
        parts = self._transport.infer_many(_batches(query, groups), "SCORES")
        return activate(in_input_order(order, parts), self.activation)

    def is_ready(self) -> bool:
        """True when the server answers and the model is ready; False when it is not."""
        return self._transport.is_ready()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> TritonRerankFunction:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTritonRerankFunction:
    """The asyncio twin of ``TritonRerankFunction``: same arguments, ``await rf(...)``."""

    def __init__(
        self,
        url: str | Sequence[str] = DEFAULT_URL,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        activation: Activation = "identity",
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_s: float = DEFAULT_RETRY_S,
        api_key: str | None = None,
    ) -> None:
        check_options(activation, batch_size)
        self.activation = activation
        self.batch_size = batch_size
        self._transport = AsyncTransport(
            url,
            model_name,
            timeout_s=timeout_s,
            headers=headers,
            max_in_flight=max_in_flight,
            **connection_options(retry_s, api_key),
        )

    async def __call__(self, query: str, documents: list[str], top_k: int | None = 5) -> list[RerankResult]:
        return rank(documents, await self._score(query, check_request(query, documents, top_k)), top_k)

    async def score(self, query: str, documents: list[str]) -> np.ndarray:
        return await self._score(query, check_request(query, documents, None))

    async def _score(self, query: str, encoded: list[bytes]) -> np.ndarray:
        limit = await self._transport.rows_limit() if len(encoded) > 1 else None
        order, groups = length_groups(encoded, rows_per_request(self.batch_size, len(encoded), lambda: limit))
        parts = await self._transport.infer_many(_batches(query, groups), "SCORES")
        return activate(in_input_order(order, parts), self.activation)

    async def is_ready(self) -> bool:
        return await self._transport.is_ready()

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncTritonRerankFunction:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
