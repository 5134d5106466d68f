"""The embedder ensemble serves all-MiniLM-L6-v2 exactly as sentence-transformers computes it."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from triton_rerank import AsyncTritonEmbedFunction, RerankInputError, TritonEmbedFunction

pytestmark = pytest.mark.integration
TOLERANCE = 1e-4
TEXTS = [
    "How do vaccines train the immune system?",
    "A vaccine exposes the immune system to a harmless piece of a pathogen.",
    "",
    "   ",
    "café naïve 東京 🚀 émigré 😀",
    "protein folding " * 300,  # longer than max_length (256): truncated
]


@pytest.fixture(scope="module")
def reference(embedder_model):
    return SentenceTransformer(embedder_model, device="cpu")


def test_served_embeddings_equal_sentence_transformers(url, reference):
    with TritonEmbedFunction(url) as embed:
        served = embed(TEXTS)
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    assert served.shape == (len(TEXTS), 384) and served.dtype == np.float32
    np.testing.assert_allclose(served, expected, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("count, batch_size", [(1, 64), (100, 64), (130, 128), (17, 4)])
def test_every_text_gets_its_vector_across_request_splits(url, reference, count, batch_size):
    texts = [f"document number {i} about {'vaccines' if i % 2 else 'python'}" for i in range(count)]
    with TritonEmbedFunction(url, batch_size=batch_size) as embed:
        served = embed.encode(texts)
    np.testing.assert_allclose(served, reference.encode(texts, normalize_embeddings=True), atol=TOLERANCE, rtol=0)


async def test_async_embedder_equals_the_reference(url, reference):
    texts = TEXTS * 20  # several concurrent requests
    async with AsyncTritonEmbedFunction(url, batch_size=32) as embed:
        assert await embed.is_ready()
        served = await embed(texts)
    np.testing.assert_allclose(served, reference.encode(texts, normalize_embeddings=True), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(
    "texts, message", [("one string", "texts must be a list"), (["a", 1], r"texts\[1\] must be a str")]
)
def test_bad_texts_are_refused_before_any_request(texts, message):
    with TritonEmbedFunction("grpc://127.0.0.1:1") as embed, pytest.raises(RerankInputError, match=message):
        embed(texts)


def test_no_texts_give_no_vectors():
    with TritonEmbedFunction("grpc://127.0.0.1:1") as embed:
        assert embed([]).shape[0] == 0
