"""Bad requests and missing models get clear errors, and the server stays ready."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from triton_rerank import ModelNotReadyError, RerankTimeoutError, TritonRerankFunction

pytestmark = pytest.mark.integration


def raw_inputs(module, query: np.ndarray, documents: np.ndarray):
    tensors = []
    for name, array in (("QUERY", query), ("DOCUMENTS", documents)):
        tensor = module.InferInput(name, list(array.shape), "BYTES")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


@pytest.fixture(params=["http", "grpc"])
def raw_client(request, triton_server):
    if request.param == "http":
        client = httpclient.InferenceServerClient(triton_server.http_url.removeprefix("http://"))
        yield httpclient, client
    else:
        client = grpcclient.InferenceServerClient(triton_server.grpc_url.removeprefix("grpc://"))
        yield grpcclient, client
    client.close()


def test_unknown_model_raises_model_not_ready_naming_the_model(url):
    with TritonRerankFunction(url, model_name="no_such_reranker") as rf:
        assert rf.is_ready() is False
        with pytest.raises(ModelNotReadyError, match="no_such_reranker") as caught:
            rf(query="q", documents=["a"])
    assert caught.value.model_name == "no_such_reranker"


def test_a_batch_size_above_the_servers_limit_is_split_not_refused(url, triton_server):
    """The server takes at most 128 documents per request (its max_rows_per_request); the client
    reads that once and splits. A raw request above it is refused (test_bad_input.py)."""
    with TritonRerankFunction(url, batch_size=129) as rf:
        assert len(rf(query="q", documents=["a"] * 129, top_k=None)) == 129
        assert rf.limits()["max_rows_per_request"] == 128


def test_a_tiny_timeout_raises_rerank_timeout(triton_server):
    """gRPC's timeout is a deadline for the whole call. HTTP's bounds each socket wait
    (geventhttpclient's network_timeout), and with Triton answering the tiny model in a few ms a
    call sometimes finished with no wait timing out (twice in clean-clone .ci/run runs, never
    alone): the silent server below tests HTTP's timeout instead."""
    with TritonRerankFunction(triton_server.grpc_url, timeout_s=1e-4) as rf:
        with pytest.raises(RerankTimeoutError, match="no answer within"):
            rf(query="q", documents=["paris"] * 100)


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for connection in held:
        connection.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_server_that_never_answers_raises_rerank_timeout_in_bounded_time(silent_server, protocol):
    started = time.monotonic()
    with TritonRerankFunction(f"{protocol}://127.0.0.1:{silent_server}", timeout_s=0.2) as rf:
        with pytest.raises(RerankTimeoutError, match="no answer within 0.2 s"):
            rf(query="q", documents=["paris"] * 3)
    assert time.monotonic() - started < 5  # a few waits of 0.2 s (config, then the request), never a hang


@pytest.mark.parametrize(
    "query, documents, message",
    [
        (
            np.array([b"q"], dtype=object),
            np.array([b"ok", b"\xff\xfe bad"], dtype=object),
            r"DOCUMENTS\[1\] is not valid UTF-8",
        ),
        (np.array([b"\xc3"], dtype=object), np.array([b"ok"], dtype=object), "QUERY is not valid UTF-8"),
        (np.array([b"q"], dtype=object), np.array([], dtype=object), "DOCUMENTS must hold at least one string"),
    ],
)
def test_raw_requests_with_bad_strings_are_refused_and_the_server_stays_ready(raw_client, query, documents, message):
    module, client = raw_client
    with pytest.raises(InferenceServerException, match=message):
        client.infer("reranker", raw_inputs(module, query, documents))
    assert client.is_model_ready("reranker")
    ok = client.infer(
        "reranker", raw_inputs(module, np.array([b"q"], dtype=object), np.array([b"a", b"b"], dtype=object))
    )
    assert ok.as_numpy("SCORES").shape == (2, 1)


def test_raw_request_with_two_queries_is_refused(raw_client):
    module, client = raw_client
    with pytest.raises(InferenceServerException, match="QUERY"):
        client.infer(
            "reranker", raw_inputs(module, np.array([b"q1", b"q2"], dtype=object), np.array([b"a"], dtype=object))
        )


def test_raw_request_missing_an_input_is_refused(raw_client):
    module, client = raw_client
    query = raw_inputs(module, np.array([b"q"], dtype=object), np.array([b"a"], dtype=object))[:1]
    with pytest.raises(InferenceServerException, match="DOCUMENTS"):
        client.infer("reranker", query)
