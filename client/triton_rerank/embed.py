"""Embed texts with the bi-encoder served by Triton (the ``embedder`` ensemble): no torch needed.

    embed = TritonEmbedFunction("grpc://127.0.0.1:8001")
    vectors = embed(["first text", "second text"])       # float32 [2, dim], L2-normalised

The vectors equal ``SentenceTransformer(model).encode(texts, normalize_embeddings=True)`` for the
exported model. Options, batching and ordering are every client's (``base.AsyncClient``): N texts in,
N vectors out, in input order. ``TritonEmbedFunction`` runs its asyncio twin on the shared loop.
"""

from __future__ import annotations

import numpy as np

import triton_rerank.loop as loop
import triton_rerank.protocol as protocol
import triton_rerank.tracing as tracing
from triton_rerank.base import AsyncClient, BlockingClient, check_strings


def _texts(group: list[bytes]):
    return {protocol.TEXTS: group}, len(group)


class AsyncTritonEmbedFunction(AsyncClient):
    """Embedding client, ``await embed(texts)``; a call's requests are sent concurrently."""

    DEFAULT_MODEL_NAME = protocol.EMBEDDER

    async def encode(self, texts: list[str], *, request_id: str | None = None) -> np.ndarray:
        with tracing.requested(request_id):
            return await self._send(check_strings(texts, "texts"), _texts, protocol.EMBEDDINGS, flat=False)

    __call__ = encode


class TritonEmbedFunction(BlockingClient):
    """The blocking twin of ``AsyncTritonEmbedFunction``; ``embed(texts)`` or ``embed.encode(texts)``."""

    ASYNC_TYPE = AsyncTritonEmbedFunction

    def encode(self, texts: list[str], **keywords) -> np.ndarray:
        return loop.run(self._async.encode(texts, **keywords))

    __call__ = encode
