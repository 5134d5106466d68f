"""The client's own logic: URLs, input checks, ranking, activation, errors without a server."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest

from triton_rerank import (
    AsyncTritonRerankFunction,
    RerankInputError,
    RerankResult,
    ServerUnavailableError,
    TritonRerankFunction,
)
from triton_rerank.base import in_input_order, length_groups
from triton_rerank.client import activate, check_request, rank
from triton_rerank.endpoints import parse_url, parse_urls
from triton_rerank.options import RerankOptions
from triton_rerank.serving.server import free_port
from triton_rerank.transport import AsyncTransport


@pytest.mark.parametrize(
    "url, protocol, address, ssl",
    [
        ("grpc://localhost:8001", "grpc", "localhost:8001", False),
        ("grpcs://triton.example:443", "grpc", "triton.example:443", True),
        ("http://127.0.0.1:8000/", "http", "127.0.0.1:8000", False),
        ("HTTPS://triton.example", "http", "triton.example", True),
        ("localhost:8000", "http", "localhost:8000", False),
    ],
)
def test_parse_url_picks_protocol_from_scheme(url, protocol, address, ssl):
    endpoint = parse_url(url)
    assert (endpoint.protocol, endpoint.address, endpoint.ssl) == (protocol, address, ssl)


@pytest.mark.parametrize("url", ["", "   ", "ftp://host:21", "grpc://", None, 8001])
def test_parse_url_refuses_what_is_not_a_triton_url(url):
    with pytest.raises(RerankInputError, match="url"):
        parse_url(url)


@pytest.mark.parametrize(
    "query, documents, top_k, message",
    [
        (None, ["a"], 1, "query must be a str, got NoneType"),
        (b"bytes", ["a"], 1, "query must be a str, got bytes"),
        (["q"], ["a"], 1, "query must be a str, got list"),
        ("q", "a single string", 1, "documents must be a list of str, got str"),
        ("q", None, 1, "documents must be a list of str, got NoneType"),
        ("q", {"a": 1}, 1, "documents must be a list of str, got dict"),
        ("q", ["a", 3, "c"], 1, r"documents\[1\] must be a str, got int"),
        ("q", ["a", None], 1, r"documents\[1\] must be a str, got NoneType"),
        ("q", ["a"], 0, "top_k must be a positive int or None"),
        ("q", ["a"], -2, "top_k must be a positive int or None"),
        ("q", ["a"], 1.5, "top_k must be a positive int or None"),
        ("q", ["a"], "3", "top_k must be a positive int or None"),
        ("q", ["a"], True, "top_k must be a positive int or None"),
        ("\ud800", ["a"], 1, "query cannot be encoded as UTF-8"),
        ("q", ["ok", "bad \udcff"], 1, r"documents\[1\] cannot be encoded as UTF-8"),
    ],
)
def test_check_request_names_the_problem(query, documents, top_k, message):
    with pytest.raises(RerankInputError, match=message):
        check_request(query, documents, top_k)


def test_check_request_accepts_any_sequence_and_encodes_in_order():
    assert check_request("q", ("é", "", "  "), None) == ["é".encode(), b"", b"  "]


def test_rank_sorts_descending_and_keeps_input_order_on_ties():
    documents = ["a", "b", "c", "d"]
    results = rank(documents, np.array([0.5, 2.0, 0.5, -1.0], dtype=np.float32), None)
    assert [r.index for r in results] == [1, 0, 2, 3]
    assert results[0] == RerankResult(text="b", score=2.0, index=1)
    assert isinstance(results[0].score, float)
    assert [r.index for r in rank(documents, np.array([1, 2, 3, 4]), 2)] == [3, 2]
    assert len(rank(documents, np.zeros(4), 10)) == 4  # top_k above N returns all N


def test_sigmoid_activation_maps_logits_into_unit_interval():
    logits = np.array([-30.0, 0.0, 2.0], dtype=np.float32)
    np.testing.assert_allclose(activate(logits, "sigmoid"), 1 / (1 + np.exp(-logits.astype(np.float64))))
    assert activate(logits, "identity") is logits


@pytest.mark.parametrize(
    "option, message",
    [
        ({"activation": "softmax"}, "activation"),
        ({"batch_size": 0}, "batch_size"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": "5"}, "timeout_s"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 2.0}, "max_in_flight"),
    ],
)
def test_client_refuses_bad_options(option, message):
    with pytest.raises(RerankInputError, match=message):
        TritonRerankFunction("grpc://127.0.0.1:1", **option)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_client_reports_a_server_that_is_down(scheme):
    """Tried again with backoff in case it is restarting, then a clear error within the timeout."""
    with TritonRerankFunction(f"{scheme}://127.0.0.1:{free_port()}", timeout_s=3) as rf:
        assert rf.is_ready() is False
        started = time.monotonic()
        with pytest.raises(ServerUnavailableError, match="unreachable"):
            rf(query="q", documents=["a", "b"])
        assert 1.5 < time.monotonic() - started < 3 + 1  # retried (0.25 + 0.5 + 1 s of waits), within the timeout
    with TritonRerankFunction(f"{scheme}://127.0.0.1:{free_port()}", timeout_s=3, retry_s=0) as rf:
        started = time.monotonic()
        with pytest.raises(ServerUnavailableError, match="unreachable"):
            rf(query="q", documents=["a", "b"])
        assert time.monotonic() - started < 1  # no retries asked for


@pytest.mark.parametrize("scheme", ["http", "grpc"])
async def test_async_client_reports_a_server_that_is_down(scheme):
    async with AsyncTritonRerankFunction(f"{scheme}://127.0.0.1:{free_port()}", timeout_s=5) as rf:
        assert await rf.is_ready() is False
        with pytest.raises(ServerUnavailableError, match="unreachable"):
            await rf(query="q", documents=["a", "b"])


def test_empty_document_list_returns_no_results_without_a_request():
    with TritonRerankFunction(f"grpc://127.0.0.1:{free_port()}") as rf:  # nothing listens there
        assert rf(query="q", documents=[]) == []


def test_the_client_and_the_command_line_import_without_torch_transformers_or_onnxruntime():
    code = (
        "import sys, triton_rerank, triton_rerank.pipeline, triton_rerank.cli; "
        "triton_rerank.cli.build_parser(); "
        "heavy = sorted({'torch', 'transformers', 'onnxruntime', 'sentence_transformers'} & set(sys.modules)); "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_length_groups_put_similar_lengths_together_and_in_input_order_undoes_them():
    items = [b"x" * length for length in (50, 3, 27, 3, 90, 1, 12)]
    order, groups = length_groups(items, 3)
    assert [[len(item) for item in group] for group in groups] == [[1, 3, 3], [12, 27, 50], [90]]
    assert sum(map(len, groups)) == len(items)  # nothing dropped, nothing repeated
    # the server answers each group in its order; scores must land back on their own documents
    parts = [np.array([float(len(item)) for item in group], dtype=np.float32) for group in groups]
    np.testing.assert_array_equal(in_input_order(order, parts), [len(item) for item in items])
    rows = [np.stack([part, -part], axis=1) for part in parts]  # embeddings: whole rows move
    np.testing.assert_array_equal(in_input_order(order, rows, flat=False)[:, 1], [-len(item) for item in items])
    assert in_input_order(np.empty(0, np.int64), []).shape == (0,)


def test_parse_urls_takes_a_list_or_commas_and_refuses_mixed_or_repeated_replicas():
    assert parse_urls("grpc://a:8001, grpc://b:8001") == ["grpc://a:8001", "grpc://b:8001"]
    assert parse_urls(["http://a:8000"]) == ["http://a:8000"]
    with pytest.raises(RerankInputError, match="mix HTTP and gRPC"):
        parse_urls(["grpc://a:8001", "http://b:8000"])
    with pytest.raises(RerankInputError, match="name a server twice"):
        parse_urls("grpc://a:8001,grpc://a:8001")
    with pytest.raises(RerankInputError, match="at least one"):
        parse_urls([])
    with pytest.raises(RerankInputError, match="url must be a non-empty string"):
        parse_urls("grpc://a:8001,")


def test_replicas_take_turns_and_one_that_failed_is_tried_last():
    transport = AsyncTransport(["grpc://127.0.0.1:1", "grpc://127.0.0.1:2", "grpc://127.0.0.1:3"], "reranker")
    assert [transport._order()[0] for _ in range(4)] == [0, 1, 2, 0]
    transport._failed(1, ConnectionRefusedError("refused"), {})
    assert [transport._order() for _ in range(2)] == [[2, 0, 1], [2, 0, 1]]  # turns 1 and 2; 1 is down


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_when_every_replica_is_down_the_error_names_each(scheme):
    urls = [f"{scheme}://127.0.0.1:{free_port()}" for _ in range(2)]
    with TritonRerankFunction(urls, timeout_s=5) as rf:
        assert rf.is_ready() is False
        with pytest.raises(ServerUnavailableError, match="none of the 2 Triton servers") as caught:
            rf(query="q", documents=["a", "b"])
    assert all(url in str(caught.value) for url in urls)


def test_free_port_settings_never_gives_two_servers_one_port():
    from triton_rerank.serving.server import free_port_settings, free_ports

    for _ in range(200):
        settings = free_port_settings()
        assert len({settings.http_port, settings.grpc_port, settings.metrics_port}) == 3
    assert len(set(free_ports(20))) == 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"truncate": "no"}, "truncate must be True or False"),
        ({"truncation_direction": "up"}, "truncation_direction must be"),
        ({"max_tokens_per_doc": 0}, "max_tokens_per_doc must be a positive int"),
        ({"max_tokens_per_doc": True}, "max_tokens_per_doc must be a positive int"),
        ({"long_documents": "sum"}, "long_documents must be one of first, max, mean, error"),
        ({"long_documents": "max", "max_chunks_per_doc": 0}, "max_chunks_per_doc must be a positive int"),
        ({"long_documents": "max", "window": 64, "stride": 64}, "stride .64, the tokens neighbouring windows share"),
        ({"max_chunks_per_doc": 4}, "max_chunks_per_doc applies to long_documents 'max' or 'mean', not 'first'"),
    ],
)
def test_request_options_are_checked_before_any_request(options, message):
    with pytest.raises(RerankInputError, match=message):
        RerankOptions(**options)
    with TritonRerankFunction(f"grpc://127.0.0.1:{free_port()}") as rf, pytest.raises(RerankInputError, match=message):
        rf(query="q", documents=["a"], **options)


def test_a_misspelt_option_is_refused_by_name_not_with_a_type_error():
    with TritonRerankFunction(f"grpc://127.0.0.1:{free_port()}") as rf:
        with pytest.raises(RerankInputError, match=r"unknown rerank option\(s\) \['long_document'\]"):
            rf(query="q", documents=["a"], long_document="max")
        with pytest.raises(RerankInputError, match="not both"):
            rf(query="q", documents=["a"], options=RerankOptions(), truncate=False)
        with pytest.raises(RerankInputError, match="options must be a RerankOptions"):
            rf(query="q", documents=["a"], options={"long_documents": "max"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        RerankOptions().truncate = False


def test_default_truncation_sends_no_parameters_and_choices_become_request_parameters():
    assert RerankOptions().parameters() is None  # the request is the same as before these options existed
    assert RerankOptions(truncate=False, truncation_direction="left", max_tokens_per_doc=64).parameters() == {
        "truncate": False,
        "truncation_direction": "left",
        "max_tokens_per_doc": 64,
    }
    assert RerankOptions(long_documents="max").parameters() == {"long_documents": "max", "max_chunks_per_doc": 32}


def test_windowed_calls_pack_requests_by_the_rows_their_documents_may_become():
    from triton_rerank.base import length_groups

    costs = RerankOptions(long_documents="max", max_chunks_per_doc=8).row_costs("q")
    documents = [b"short"] * 20 + [b"long " * 100] * 5
    rows = costs({"max_rows_per_request": 32, "max_length": 64}, documents)
    assert rows == [1] * 20 + [8] * 5  # 5 bytes fit beside a 1-byte query in 64 tokens; 500 bytes may not
    _, groups = length_groups(documents, 128, rows, 32)
    assert [len(g) for g in groups] == [21, 4]  # 20 short + 1 long = 28 rows, then 4 long = 32 rows: never over 32
    assert RerankOptions().row_costs("q") is None  # one row per document: nothing to plan
    with pytest.raises(RerankInputError, match="max_chunks_per_doc .64. is more than this server takes"):
        RerankOptions(long_documents="mean", max_chunks_per_doc=64).row_costs("q")({"max_rows_per_request": 32}, [])


async def test_a_nan_score_is_refused_with_the_documents_named_not_ranked():
    """NaN compares false with everything, so sorting would put it anywhere: refused, as TEI does."""
    from triton_rerank import InvalidScoresError

    rf = AsyncTritonRerankFunction("grpc://127.0.0.1:1")

    async def limits():
        return {}

    async def infer_many(batches, output, parameters):
        return [np.array([[1.0], [np.nan], [0.5]], dtype=np.float32)]

    rf._transport.limits, rf._transport.infer_many = limits, infer_many
    with pytest.raises(InvalidScoresError, match=r"scored 1 of 3 documents NaN \(documents 1\)"):
        await rf(query="q", documents=["a", "b", "c"])


def test_a_blocking_client_called_on_its_own_loop_says_so_instead_of_hanging():
    from triton_rerank import loop

    async def inner():
        return loop.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="on its own event loop"):
        loop.run(inner())


class _Client:
    """What a tritonclient asyncio client does at one call: raises ``failure``."""

    def __init__(self, failure: BaseException) -> None:
        self.failure = failure

    async def infer(self, *args, **kwargs):
        raise self.failure

    async def is_model_ready(self, *args, **kwargs):
        raise self.failure

    async def close(self) -> None:
        pass


def _transport_raising(failure: BaseException) -> AsyncTransport:
    transport = AsyncTransport("grpc://127.0.0.1:1", "reranker", retry_s=0)
    transport._connect()  # the real clients, for this process; replaced by ones that fail as a call would
    transport._clients = [_Client(failure)]
    return transport


async def test_an_exception_the_error_table_does_not_know_is_raised_as_it_is_not_as_triton_failed():
    """A bug (ours, or a library's) keeps its type and traceback: it is not a ServerResponseError."""
    from triton_rerank.triton_errors import translate

    bug = KeyError("a bug")
    assert translate(bug, where="Triton", model_name="reranker", timeout_s=1) is None
    with pytest.raises(KeyError) as raised:
        await _transport_raising(bug).infer({"QUERY": [b"q"]}, "SCORES", 1)
    assert raised.value is bug


async def test_is_ready_says_false_for_a_server_down_and_raises_what_waiting_would_not_mend():
    from tritonclient.utils import InferenceServerException

    from triton_rerank.errors import RerankAuthError

    assert await _transport_raising(ConnectionRefusedError(111, "refused")).is_ready() is False
    wrong_key = InferenceServerException("This API is restricted, expecting header 'x-api-key'", "401")
    with pytest.raises(RerankAuthError, match="needs an API key"):
        await _transport_raising(wrong_key).is_ready()
    with pytest.raises(KeyError):
        await _transport_raising(KeyError("a bug")).is_ready()


def test_deploy_reaches_replicas_over_tls_and_refuses_what_is_not_a_triton_url():
    """deploy took only http:// and grpc:// (and one URL); it parses URLs as the clients do."""
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    from triton_rerank.serving.deploy import _clients

    https = _clients("https://a.example:8000,https://b.example:8000")
    assert len(https) == 2 and all(isinstance(c, http.InferenceServerClient) for c in https)
    (grpcs,) = _clients(["grpcs://a.example:443"])
    assert isinstance(grpcs, grpc.InferenceServerClient)
    with pytest.raises(RerankInputError, match="mix HTTP and gRPC"):
        _clients("https://a.example:8000,grpc://b.example:8001")
