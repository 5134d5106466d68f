"""Property-based tests (hypothesis) against the real server: for arbitrary queries and document
lists (any Unicode text, empty strings, repeats, any length, any batch size), the served scores
equal sentence-transformers' in-process scores, whatever the order or the batching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triton_rerank import TritonRerankFunction

pytestmark = pytest.mark.integration

# Any Unicode but lone surrogates (not UTF-8 encodable: the client refuses them, see test_bad_input).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=120)
words = st.lists(st.sampled_from(["paris", "capital", "france", "the", "of", "berlin", "é", "東京", "🙂"]), max_size=40)
document = st.one_of(text, words.map(" ".join))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=document, documents=st.lists(document, max_size=30), batch_size=st.integers(1, 40), seed=st.integers(0, 9))
def test_served_scores_equal_in_process_scores_for_any_input_order_and_batching(
    triton_server, reference, query, documents, batch_size, seed
):
    cross_encoder = reference[0]
    with TritonRerankFunction(triton_server.grpc_url, batch_size=batch_size) as rf:
        served = rf.score(query, documents)
        permutation = np.random.default_rng(seed).permutation(len(documents))
        shuffled = rf.score(query, [documents[i] for i in permutation])
        results = rf(query=query, documents=documents, top_k=None)
    assert served.shape == (len(documents),)
    np.testing.assert_allclose(shuffled, served[permutation], atol=1e-5)  # a score is its pair's own
    assert sorted(r.index for r in results) == list(range(len(documents)))
    if documents:
        expected = cross_encoder.predict([(query, d) for d in documents], activation_fn=lambda x: x)
        np.testing.assert_allclose(served, expected, atol=1e-4)
