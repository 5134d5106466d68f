"""Bad input, tried systematically: raw requests straight to Triton's HTTP and gRPC APIs for the
reranker ensemble, and the same through the client. Each gets a clear error (or, where the input is
legal, an answer), and the server stays ready for everyone else. docs/bad-input.md lists these
cases; a test keeps the two in step."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from triton_rerank import RerankInputError, TritonRerankFunction

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
MAX_BYTES = 1 << 20  # RepositorySettings.max_document_bytes
MAX_ROWS = 128  # RepositorySettings.max_batch_size


def strings(*values: bytes) -> np.ndarray:
    return np.array(list(values), dtype=np.object_)


@dataclass(frozen=True)
class Raw:
    """A raw request: (name, datatype, array) per input; the outcome: rows scored, or an error."""

    label: str
    tensors: tuple
    refused: str | None = None  # a regex of the error; None: answered
    rows: int = 0


def query(*values: bytes) -> tuple:
    return ("QUERY", "BYTES", strings(*values))


def docs(*values: bytes) -> tuple:
    return ("DOCUMENTS", "BYTES", strings(*values))


GOOD_QUERY = query(b"what is the capital of france")
PARIS_1MB, PARIS_2MB = b"paris " * 166_666, b"paris " * 333_333
RAW_CASES = [
    Raw("non-UTF-8 bytes in a document", (GOOD_QUERY, docs(b"ok", b"\xff\xfe")),
        refused=r"DOCUMENTS\[1\] is not valid UTF-8"),
    Raw("non-UTF-8 bytes in the query", (query(b"\xc3"), docs(b"a")), refused="QUERY is not valid UTF-8"),
    Raw("no documents (an empty tensor)", (GOOD_QUERY, docs()), refused="DOCUMENTS must hold at least one string"),
    Raw("an empty document and an empty query", (query(b""), docs(b"")), rows=1),
    Raw("a 1 MB document", (GOOD_QUERY, docs(PARIS_1MB)), rows=1),
    Raw("a 2 MB document", (GOOD_QUERY, docs(b"a", PARIS_2MB)),
        refused=rf"DOCUMENTS\[1\] is 1,999,998 bytes; this server takes at most {MAX_BYTES:,} bytes per string "
                r"\(it begins 'paris paris"),
    Raw("a 2 MB query", (query(b"q" * 2_000_000), docs(b"a")),
        refused=rf"QUERY is 2,000,000 bytes; this server takes at most {MAX_BYTES:,} bytes"),
    Raw("10,000 documents in one request", (GOOD_QUERY, docs(*[b"doc"] * 10_000)),
        refused=f"DOCUMENTS holds 10000 strings; this server takes at most {MAX_ROWS} per request"),
    Raw("two queries", (query(b"q1", b"q2"), docs(b"a")),
        refused=r"(?i)unexpected shape for input 'QUERY' for model 'reranker'. Expected \[1\], got \[2\]"),
    Raw("the query as FP32", (("QUERY", "FP32", np.array([1.0], dtype=np.float32)), docs(b"a")),
        refused="inference input 'QUERY' data-type is 'FP32', but model 'reranker' expects 'BYTES'"),
    Raw("documents as INT64", (GOOD_QUERY, ("DOCUMENTS", "INT64", np.array([1, 2], dtype=np.int64))),
        refused="inference input 'DOCUMENTS' data-type is 'INT64', but model 'reranker' expects 'BYTES'"),
    Raw("documents as a 2-D tensor", (GOOD_QUERY, ("DOCUMENTS", "BYTES", strings(*b"abcd").reshape(2, 2))),
        refused="(?i)unexpected shape for input 'DOCUMENTS'"),
    Raw("a missing input", (GOOD_QUERY,), refused="(?i)expected 2 inputs but got 1"),
    Raw("an unknown input", (GOOD_QUERY, docs(b"a"), ("EXTRA", "BYTES", strings(b"x"))),
        refused=r"expected 2 inputs but got 3 inputs for model 'reranker'. Got input\(s\) \['EXTRA'"),
]  # fmt: skip


@pytest.fixture(params=["http", "grpc"])
def raw_client(request, triton_server):
    if request.param == "http":
        client = httpclient.InferenceServerClient(triton_server.http_url.removeprefix("http://"))
        yield httpclient, client
    else:
        client = grpcclient.InferenceServerClient(
            triton_server.grpc_url.removeprefix("grpc://"),
            channel_args=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
        )
        yield grpcclient, client
    client.close()


def send(module, client, case: Raw):
    inputs = []
    for name, datatype, array in case.tensors:
        tensor = module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return client.infer("reranker", inputs)


@pytest.mark.parametrize("case", RAW_CASES, ids=lambda c: c.label)
def test_each_raw_bad_request_gets_a_clear_answer_and_the_server_stays_ready(raw_client, case):
    module, client = raw_client
    if case.refused:
        with pytest.raises(InferenceServerException, match=case.refused):
            send(module, client, case)
    else:
        assert send(module, client, case).as_numpy("SCORES").shape == (case.rows, 1)
    assert client.is_server_ready() and client.is_model_ready("reranker")
    ok = send(module, client, Raw("good", (GOOD_QUERY, docs(b"paris", b"berlin")), rows=2))
    assert ok.as_numpy("SCORES").shape == (2, 1)


CLIENT_CASES = [
    ("top_k 0", dict(top_k=0), "top_k must be a positive int or None"),
    ("top_k -1", dict(top_k=-1), "top_k must be a positive int or None"),
    ("top_k True", dict(top_k=True), "top_k must be a positive int or None"),
    ("top_k 2.5", dict(top_k=2.5), "top_k must be a positive int or None"),
    ("documents as one string", dict(documents="paris"), "documents must be a list of str"),
    ("a document that is not a string", dict(documents=["a", 3]), r"documents\[1\] must be a str, got int"),
    ("a lone surrogate in a document", dict(documents=["a", "\ud800"]), r"documents\[1\] cannot be encoded as UTF-8"),
    ("a query that is not a string", dict(query=None), "query must be a str, got NoneType"),
    ("a 2 MB document, through the client", dict(documents=["a", PARIS_2MB.decode()]), r"DOCUMENTS\[\d\] is 1,999,998"),
]  # fmt: skip


@pytest.mark.parametrize("label, call, message", CLIENT_CASES, ids=[c[0] for c in CLIENT_CASES])
def test_each_bad_client_call_gets_a_clear_error(url, label, call, message):
    arguments = {"query": "capital of france", "documents": ["paris", "berlin"], "top_k": 2} | call
    with TritonRerankFunction(url) as rf:
        with pytest.raises(RerankInputError, match=message):
            rf(**arguments)
        assert len(rf(query="q", documents=["a", "b"])) == 2


def test_honest_large_requests_are_split_and_answered(url, reference):
    documents = [f"document {i} " + "paris " * (i % 7) for i in range(10_000)]
    with TritonRerankFunction(url, batch_size=1000) as rf:  # above the server's 128: the client splits
        results = rf(query="capital of france", documents=documents, top_k=None)
        assert len(results) == 10_000 and sorted(r.index for r in results) == list(range(10_000))
        top_k_edges = rf(query="q", documents=["a", "b", "c"], top_k=10)
        assert len(top_k_edges) == 3  # top_k above the documents: all of them
        assert rf(query="q", documents=[], top_k=3) == []
    expected = reference[0].predict([("q", d) for d in documents[:50]], activation_fn=lambda x: x)
    with TritonRerankFunction(url, batch_size=1000) as rf:
        np.testing.assert_allclose(rf.score("q", documents[:50]), expected, atol=1e-5)
        huge = rf.score("q", ["paris " * 166_666])  # 1 MB: read to max_length tokens, like in-process
    np.testing.assert_allclose(
        huge, reference[0].predict([("q", "paris " * 166_666)], activation_fn=lambda x: x), atol=1e-5
    )


def test_the_docs_table_lists_every_case():
    table = DOCS.read_text()
    rows = {re.sub(r"`", "", line.split("|")[1]).strip() for line in table.splitlines() if line.startswith("| ")}
    labels = {case.label for case in RAW_CASES} | {label for label, _, _ in CLIENT_CASES}
    assert labels <= rows, sorted(labels - rows)


def test_bad_requests_do_not_disturb_other_clients(triton_server, reference):
    """One client sends every bad request above while another keeps reranking: the good one never fails."""
    import threading

    expected = reference[0].predict([("capital of france", d) for d in ["paris", "berlin"]], activation_fn=lambda x: x)
    stop, failures, answered = threading.Event(), [], []

    def good_client() -> None:
        with TritonRerankFunction(triton_server.grpc_url) as rf:
            while not stop.is_set():
                try:
                    np.testing.assert_allclose(rf.score("capital of france", ["paris", "berlin"]), expected, atol=1e-5)
                    answered.append(1)
                except Exception as err:  # counted: the test wants every failure
                    failures.append(err)

    thread = threading.Thread(target=good_client)
    thread.start()
    client = httpclient.InferenceServerClient(triton_server.http_url.removeprefix("http://"))
    try:
        for case in RAW_CASES:
            try:
                send(httpclient, client, case)
            except InferenceServerException:
                pass  # refused, as test_each_raw_bad_request... checks case by case
    finally:
        stop.set()
        thread.join()
        client.close()
    assert failures == [] and len(answered) > 0
