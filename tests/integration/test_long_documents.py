"""Long documents served: windows scored and folded on the server (``long_documents="max" | "mean"``)
equal the same windows scored one by one in-process with ``CrossEncoder.predict``; nothing changes
where nothing is long; spans point at the text that decided; bad choices are refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tiny_models import TINY_MAX_LENGTH, WORDS, windowed_reference
from triton_rerank import RerankInputError, TritonRerankFunction

pytestmark = pytest.mark.integration
TOLERANCE = 1e-4
QUERY = "what is the capital of france"
SHORT = ["paris is the capital of france", "berlin is the capital of germany", "", "café 東京 🚀"]


def long_text(seed: int, words: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice([*WORDS, ".", ".\n\n"], size=words))  # sentences and paragraphs too


@pytest.fixture(scope="module")
def served_tokenizer(tiny_repository) -> Tokenizer:
    """The tokenizer the server reads (as the export saved it), without truncation or padding."""
    tokenizer = Tokenizer.from_file(str(tiny_repository / "tokenizer" / "1" / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def expected_scores(cross_encoder, tokenizer, query, documents, policy, window=None, stride=None, chunks=None):
    return windowed_reference(
        cross_encoder, tokenizer, TINY_MAX_LENGTH, query, documents, policy, window, stride, chunks
    )


def test_where_nothing_is_long_every_policy_gives_todays_scores(url, reference):
    cross_encoder, _ = reference
    with TritonRerankFunction(url) as rf:
        today = rf.score(QUERY, SHORT)
        for policy in ("max", "mean", "error"):
            np.testing.assert_allclose(rf.score(QUERY, SHORT, long_documents=policy), today, atol=1e-5, rtol=0)
    want = cross_encoder.predict([(QUERY, d) for d in SHORT], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(today, want, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("policy", ["max", "mean"])
def test_long_documents_are_scored_window_by_window_as_in_process(url, reference, served_tokenizer, policy):
    cross_encoder, _ = reference
    documents = [long_text(seed, words) for seed, words in enumerate([5, 40, 90, 200])] + SHORT
    with TritonRerankFunction(url, batch_size=3) as rf:  # split into several requests as well
        found = rf.score_details(QUERY, documents, spans=True, tokens=True, long_documents=policy)
    want, spans = expected_scores(cross_encoder, served_tokenizer, QUERY, documents, policy)
    np.testing.assert_allclose(found.scores, want, atol=TOLERANCE, rtol=0)
    assert [tuple(s) for s in found.spans] == spans
    assert found.tokens[3] > TINY_MAX_LENGTH  # the long one was read in several windows, each counted


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.integers(0, 160), min_size=1, max_size=6),
    window=st.integers(8, 40),
    data=st.data(),
)
def test_property_every_window_is_scored_once_whatever_window_stride_and_splits(
    url, reference, served_tokenizer, words, window, data
):
    cross_encoder, _ = reference
    stride = data.draw(st.integers(0, window - 1))
    chunks = data.draw(st.integers(1, 12))
    batch_size = data.draw(st.integers(1, 4))
    documents = [long_text(seed, n) for seed, n in enumerate(words)]
    with TritonRerankFunction(url, batch_size=batch_size) as rf:
        found = rf.score_details(
            QUERY, documents, spans=True, long_documents="max", window=window, stride=stride, max_chunks_per_doc=chunks
        )
    want, spans = expected_scores(cross_encoder, served_tokenizer, QUERY, documents, "max", window, stride, chunks)
    np.testing.assert_allclose(found.scores, want, atol=TOLERANCE, rtol=0)
    assert [tuple(span) for span in found.spans] == spans
    # The span is the window that decided: read alone, it scores what the document scored.
    alone = cross_encoder.predict([(QUERY, d[a:b]) for d, (a, b) in zip(documents, spans, strict=True)],
                                  activation_fn=torch.nn.Identity())  # fmt: skip
    np.testing.assert_allclose(found.scores, alone, atol=TOLERANCE, rtol=0)


def test_results_carry_the_span_that_decided_and_the_drop_in_dict_is_unchanged(url):
    relevant = "paris is the capital of france"
    document = f"{long_text(1, 80)} {relevant} {long_text(2, 80)}"
    with TritonRerankFunction(url) as rf:
        (result,) = rf(QUERY, [document], top_k=1, return_spans=True, long_documents="max")
        (plain,) = rf(QUERY, [document], top_k=1)
    start, end = result.span
    assert 0 <= start < end <= len(document)
    with TritonRerankFunction(url) as rf:  # the passage that decided, read alone, scores what the document did
        assert rf.score(QUERY, [document[start:end]])[0] == pytest.approx(result.score, abs=1e-5)
    assert result.score >= plain.score  # the best window is at least as good as the first
    assert plain.span is None and set(plain.to_dict()) == {"text", "score", "index"}


def test_first_keeps_todays_truncation_and_error_refuses_a_long_document(url, reference):
    cross_encoder, _ = reference
    documents = [long_text(3, 100), "paris"]
    with TritonRerankFunction(url) as rf:
        first = rf.score(QUERY, documents, long_documents="first")
        with pytest.raises(RerankInputError, match=r"more than this model's 48 \(max_length\)"):
            rf.score(QUERY, documents, long_documents="error")
    want = cross_encoder.predict([(QUERY, d) for d in documents], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(first, want, atol=TOLERANCE, rtol=0)


def test_a_1_mib_document_is_read_within_the_cap(url, reference, served_tokenizer):
    cross_encoder, _ = reference
    document = long_text(4, 200_000)[: 2**20]
    with TritonRerankFunction(url, timeout_s=120) as rf:
        found = rf.score_details(QUERY, [document, "paris"], spans=True, long_documents="max", max_chunks_per_doc=8)
    want, spans = expected_scores(cross_encoder, served_tokenizer, QUERY, [document, "paris"], "max", chunks=8)
    np.testing.assert_allclose(found.scores, want, atol=TOLERANCE, rtol=0)
    assert found.spans[0][1] < 1000  # 8 windows of a few dozen tokens: the start of the document only


def test_the_client_splits_so_that_no_request_has_more_windows_than_the_server_takes(url):
    documents = [long_text(seed, 400) for seed in range(12)]  # about 20 windows each: 240 rows > 128
    with TritonRerankFunction(url, batch_size=128) as rf:
        together = rf.score(QUERY, documents, long_documents="max")
        alone = [rf.score(QUERY, [document], long_documents="max")[0] for document in documents]
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)


def test_the_server_refuses_bad_choices_naming_them(triton_server):
    """Raw requests (no client checks): the tokenizer step's own messages."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(triton_server.grpc_url.removeprefix("grpc://"))
    query, docs = grpcclient.InferInput("QUERY", [1], "BYTES"), grpcclient.InferInput("DOCUMENTS", [12], "BYTES")
    query.set_data_from_numpy(np.array([QUERY.encode()], dtype=np.object_))
    docs.set_data_from_numpy(np.array([long_text(s, 400).encode() for s in range(12)], dtype=np.object_))
    cases = {
        "window=100 is larger than this model's max_length (48)": {"long_documents": "max", "window": 100},
        "stride=20 (the tokens neighbouring windows share) must be smaller than the window (20": {
            "long_documents": "max", "window": 20, "stride": 20,
        },
        "max_chunks_per_doc must be a positive integer, got 0": {"long_documents": "max", "max_chunks_per_doc": 0},
        "long_documents must be one of first, max, mean, error, got 'sum'": {"long_documents": "sum"},
        "windows; this server takes at most 128 rows per request (send fewer documents": {"long_documents": "max"},
    }  # fmt: skip
    for message, parameters in cases.items():
        with pytest.raises(InferenceServerException) as refused:
            client.infer("reranker", [query, docs], parameters=parameters)
        assert message in refused.value.message(), refused.value.message()
    client.close()


@pytest.mark.parametrize("policy", ["max", "mean"])
def test_an_empty_or_blank_document_behind_a_query_longer_than_the_model_is_scored(url, reference, policy):
    """It made the tokenizer step raise IndexError (the API answered 500); it is read as it is, one row,
    and scores what it scores in-process."""
    cross_encoder, _ = reference
    query, documents = " ".join(["capital"] * 60), ["", "   ", "paris is the capital"]  # 60 tokens: over 48
    with TritonRerankFunction(url) as rf:
        found = rf.score_details(query, documents, spans=True, long_documents=policy)
    want = cross_encoder.predict([(query, d) for d in documents], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(found.scores, want, atol=TOLERANCE, rtol=0)
    assert all(0 <= start <= end <= len(d) for (start, end), d in zip(found.spans, documents, strict=True))
