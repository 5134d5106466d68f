"""Embed texts with the bi-encoder served by Triton (the ``embedder`` ensemble): no torch needed.

    embed = TritonEmbedFunction("grpc://127.0.0.1:8001")
    vectors = embed(["first text", "second text"])       # float32 [2, dim], L2-normalised

The vectors equal ``SentenceTransformer(model).encode(texts, normalize_embeddings=True)`` for the
exported model. Options, batching and ordering are every client's (``base._Client``): N texts in,
N vectors out, in input order.
"""

from __future__ import annotations

import numpy as np

from triton_rerank.base import AsyncClient, BlockingClient, check_strings


def _texts(group: list[bytes]):
    return {"TEXTS": group}, len(group)


class TritonEmbedFunction(BlockingClient):
    """Blocking embedding client; ``embed(texts)`` or ``embed.encode(texts)``."""

    DEFAULT_MODEL_NAME = "embedder"

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._send(check_strings(texts, "texts"), _texts, "EMBEDDINGS", flat=False)

    __call__ = encode


class AsyncTritonEmbedFunction(AsyncClient):
    """The asyncio twin of ``TritonEmbedFunction``; a call's requests are sent concurrently."""

    DEFAULT_MODEL_NAME = "embedder"

    async def encode(self, texts: list[str]) -> np.ndarray:
        return await self._send(check_strings(texts, "texts"), _texts, "EMBEDDINGS", flat=False)

    __call__ = encode
