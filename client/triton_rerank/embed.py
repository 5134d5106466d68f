"""Embed texts with the bi-encoder served by Triton (the ``embedder`` ensemble): no torch needed.

    embed = TritonEmbedFunction("grpc://127.0.0.1:8001")
    vectors = embed(["first text", "second text"])       # float32 [2, dim], L2-normalised

The vectors equal ``SentenceTransformer(model).encode(texts, normalize_embeddings=True)`` for the
exported model. Texts go in requests of at most ``batch_size``, grouped by length and sent
concurrently (as the reranking client does); N texts in, N vectors out, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from triton_rerank.client import check_batch_size, check_strings, in_input_order, length_groups, rows_per_request
from triton_rerank.transport import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RETRY_S,
    AsyncTransport,
    Transport,
    connection_options,
)

DEFAULT_EMBEDDER_NAME = "embedder"
DEFAULT_EMBED_BATCH_SIZE = 128  # the server's default max_batch_size, as for reranking


def _batches(groups: list[list[bytes]]) -> list[tuple[dict[str, list[bytes]], int]]:
    return [({"TEXTS": group}, len(group)) for group in groups]


class TritonEmbedFunction:
    """Blocking embedding client; ``embed(texts)`` or ``embed.encode(texts)``."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        model_name: str = DEFAULT_EMBEDDER_NAME,
        batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_s: float = DEFAULT_RETRY_S,
        api_key: str | None = None,
    ) -> None:
        self.batch_size = check_batch_size(batch_size)
        self._transport = Transport(
            url,
            model_name,
            timeout_s=timeout_s,
            headers=headers,
            max_in_flight=max_in_flight,
            **connection_options(retry_s, api_key),
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        encoded = check_strings(texts, "texts")
        order, groups = length_groups(
            encoded, rows_per_request(self.batch_size, len(encoded), self._transport.rows_limit)
        )
        return in_input_order(order, self._transport.infer_many(_batches(groups), "EMBEDDINGS"), flat=False)

    __call__ = encode

    def is_ready(self) -> bool:
        return self._transport.is_ready()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> TritonEmbedFunction:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTritonEmbedFunction:
    """The asyncio twin of ``TritonEmbedFunction``; a call's requests are sent concurrently."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        model_name: str = DEFAULT_EMBEDDER_NAME,
        batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_s: float = DEFAULT_RETRY_S,
        api_key: str | None = None,
    ) -> None:
        self.batch_size = check_batch_size(batch_size)
        self._transport = AsyncTransport(
            url,
            model_name,
            timeout_s=timeout_s,
            headers=headers,
            max_in_flight=max_in_flight,
            **connection_options(retry_s, api_key),
        )

    async def encode(self, texts: list[str]) -> np.ndarray:
        encoded = check_strings(texts, "texts")
        limit = await self._transport.rows_limit() if len(encoded) > 1 else None
        order, groups = length_groups(encoded, rows_per_request(self.batch_size, len(encoded), lambda: limit))
        return in_input_order(order, await self._transport.infer_many(_batches(groups), "EMBEDDINGS"), flat=False)

    __call__ = encode

    async def is_ready(self) -> bool:
        return await self._transport.is_ready()

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncTritonEmbedFunction:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
