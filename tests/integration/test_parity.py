"""Served scores equal the in-process references: sentence-transformers and pymilvus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from triton_rerank import AsyncTritonRerankFunction, TritonRerankFunction

TOLERANCE = 1e-4
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)  # far past max_length
QUERY = "what is the capital of france"
DOCUMENTS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "the river water is cold",
    LONG,
    "protein in the cell " * 30,  # long, different words
    "",
    "   \t ",
    "café naïve 東京 🚀 émigré",
    "😀👍🎉",
    "Paris, FRANCE!!! (capital)",
]


def reference_logits(cross_encoder, query, documents):
    return cross_encoder.predict([(query, d) for d in documents], activation_fn=torch.nn.Identity())


@pytest.mark.integration
def test_scores_equal_sentence_transformers_over_http_and_grpc(url, reference):
    cross_encoder, _ = reference
    with TritonRerankFunction(url) as rf:
        served = rf.score(QUERY, DOCUMENTS)
    expected = reference_logits(cross_encoder, QUERY, DOCUMENTS)
    assert served.shape == (len(DOCUMENTS),)
    np.testing.assert_allclose(served, expected, atol=TOLERANCE, rtol=0)
    assert np.ptp(expected) > 0.1  # the check is not vacuous: scores really differ


@pytest.mark.integration
@pytest.mark.parametrize("top_k", [1, 3, None])
def test_results_equal_pymilvus_cross_encoder_rerank_function(url, reference, top_k):
    _, pymilvus_rf = reference
    with TritonRerankFunction(url) as rf:
        served = rf(query=QUERY, documents=DOCUMENTS, top_k=top_k)
    expected = pymilvus_rf(query=QUERY, documents=DOCUMENTS, top_k=top_k or len(DOCUMENTS))
    assert [r.index for r in served] == [r.index for r in expected]
    assert [r.text for r in served] == [r.text for r in expected]
    np.testing.assert_allclose([r.score for r in served], [r.score for r in expected], atol=TOLERANCE, rtol=0)


@pytest.mark.integration
def test_long_queries_and_documents_are_truncated_as_the_reference_does(url, reference):
    cross_encoder, _ = reference
    documents = [LONG, LONG + " paris", "paris " + LONG, "short"]
    queries = [LONG, "paris " * 200, "q"]
    with TritonRerankFunction(url) as rf:
        for query in queries:
            np.testing.assert_allclose(
                rf.score(query, documents), reference_logits(cross_encoder, query, documents), atol=TOLERANCE, rtol=0
            )


@pytest.mark.integration
@pytest.mark.parametrize("count, batch_size", [(1, 64), (64, 64), (65, 64), (130, 64), (300, 128), (37, 5)])
def test_every_document_gets_its_own_score_across_request_splits(url, reference, count, batch_size):
    cross_encoder, _ = reference
    rng = np.random.default_rng(count)
    words = "paris france berlin capital city river water protein cell the of".split()
    documents = [" ".join(rng.choice(words, size=rng.integers(0, 60))) for _ in range(count)]
    with TritonRerankFunction(url, batch_size=batch_size) as rf:
        served = rf.score(QUERY, documents)
        results = rf(query=QUERY, documents=documents, top_k=None)
    assert served.shape == (count,)
    np.testing.assert_allclose(served, reference_logits(cross_encoder, QUERY, documents), atol=TOLERANCE, rtol=0)
    assert sorted(r.index for r in results) == list(range(count))


@pytest.mark.integration
def test_sigmoid_activation_equals_the_reference_sigmoid(url, reference):
    cross_encoder, _ = reference
    with TritonRerankFunction(url, activation="sigmoid") as rf:
        served = rf.score(QUERY, DOCUMENTS)
    expected = cross_encoder.predict([(QUERY, d) for d in DOCUMENTS], activation_fn=torch.nn.Sigmoid())
    np.testing.assert_allclose(served, expected, atol=TOLERANCE, rtol=0)
    assert ((served > 0) & (served < 1)).all()


@pytest.mark.integration
async def test_async_client_equals_the_sync_client(url, reference):
    _, pymilvus_rf = reference
    documents = DOCUMENTS * 7  # 70 documents: two concurrent requests at batch_size 64
    async with AsyncTritonRerankFunction(url) as rf:
        assert await rf.is_ready()
        served = await rf(query=QUERY, documents=documents, top_k=5)
    expected = pymilvus_rf(query=QUERY, documents=documents, top_k=5)
    assert [r.index for r in served] == [r.index for r in expected]
    np.testing.assert_allclose([r.score for r in served], [r.score for r in expected], atol=TOLERANCE, rtol=0)


@pytest.mark.integration
def test_token_counts_are_the_tokens_the_reference_reads_after_truncation(url, reference):
    cross_encoder, _ = reference
    with TritonRerankFunction(url, batch_size=3) as rf:  # across request splits too
        scores, tokens, _ = rf.score_details(QUERY, DOCUMENTS, tokens=True)
    encoded = cross_encoder.tokenizer([QUERY] * len(DOCUMENTS), DOCUMENTS, truncation=True, max_length=48)
    assert tokens.tolist() == [len(ids) for ids in encoded["input_ids"]]
    assert max(tokens) == 48 and min(tokens) < 48  # some were cut, some were not
    np.testing.assert_allclose(scores, reference_logits(cross_encoder, QUERY, DOCUMENTS), atol=TOLERANCE, rtol=0)
