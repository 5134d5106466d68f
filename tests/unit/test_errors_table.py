"""The error table turns what tritonclient raises into the client's errors: real exceptions,
captured from a real Triton 2.51 over both protocols (data/triton_errors.json), each map to the
error a user should see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tritonclient.utils import InferenceServerException

from triton_rerank.errors import (
    ModelNotReadyError,
    RerankAuthError,
    RerankInputError,
    RerankTimeoutError,
    ServerOverloadedError,
    ServerResponseError,
    ServerUnavailableError,
)
from triton_rerank.triton_errors import translate

CASES = json.loads((Path(__file__).parent / "data" / "triton_errors.json").read_text())["cases"]
EXPECTED = {
    "auth_missing": RerankAuthError,
    "auth_wrong": RerankAuthError,
    "unknown_model": ModelNotReadyError,
    "too_many_rows": RerankInputError,
    "too_many_bytes": RerankInputError,
    "bad_utf8": RerankInputError,
    "wrong_input_name": RerankInputError,
    "wrong_dtype": RerankInputError,
    "deadline": RerankTimeoutError,
    "overloaded": ServerOverloadedError,
    "refused": ServerUnavailableError,
}


def raised(case: dict) -> BaseException:
    """The exception tritonclient raised for ``case``, rebuilt."""
    if case["status"] == "builtins.ConnectionRefusedError":
        return ConnectionRefusedError(111, case["message"].partition("] ")[2])
    return InferenceServerException(case["message"], status=case["status"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['protocol']}-{c['case']}")
def test_error_table_maps_each_real_triton_failure_to_its_error(case):
    error = translate(raised(case), where="Triton at grpc://host:8001", model_name="reranker", timeout_s=5)
    assert type(error) is EXPECTED[case["case"]]
    assert "Triton at grpc://host:8001" in str(error)


def test_the_captured_cases_cover_both_protocols_for_every_failure_a_server_answers():
    protocols = {}
    for case in CASES:
        protocols.setdefault(case["case"], set()).add(case["protocol"])
    for name in ("auth_missing", "unknown_model", "too_many_rows", "bad_utf8", "overloaded", "refused"):
        assert protocols[name] == {"grpc", "http"}, name


@pytest.mark.parametrize("status", ["StatusCode.NOT_FOUND", "StatusCode.UNAVAILABLE", "404", "503"])
def test_a_model_that_is_loading_is_transient_and_an_unknown_one_is_not(status):
    """Seen while a server restarts: the model is known but has no version loaded yet."""
    loading = InferenceServerException("Request for unknown model: 'reranker' has no available versions", status)
    unknown = InferenceServerException("Request for unknown model: 'nope' is not found", "StatusCode.NOT_FOUND")
    kwargs = {"where": "Triton", "model_name": "reranker", "timeout_s": 1}
    assert translate(loading, **kwargs).transient is True
    assert translate(unknown, **kwargs).transient is False


def test_the_word_invalid_in_a_server_failure_does_not_make_it_an_input_error():
    """The former substring chain read any 'invalid' as bad input; status decides now."""
    failure = InferenceServerException("onnxruntime: invalid memory access in node Attention", "500")
    error = translate(failure, where="Triton", model_name="reranker", timeout_s=1)
    assert type(error) is ServerResponseError


def test_a_timeout_before_any_answer_is_a_timeout():
    error = translate(TimeoutError("timed out"), where="Triton", model_name="reranker", timeout_s=2)
    assert isinstance(error, RerankTimeoutError) and "within 2 s" in str(error)


@pytest.mark.parametrize("words", ["has no available version", "is not ready", "Exceeds maximum queue size"])
@pytest.mark.parametrize("status", ["400", "StatusCode.INVALID_ARGUMENT"])
def test_request_text_in_a_bad_request_cannot_make_it_a_retried_model_failure(status, words):
    """The tokenizer quotes request values in its messages; a bad request stays an input error (not
    retried, its replica not marked down, answered 400 by the API) whatever the caller wrote."""
    quoted = f"in ensemble 'reranker', parameter long_documents must be one of first, max, mean, error, got '{words}'"
    error = translate(InferenceServerException(quoted, status), where="Triton", model_name="reranker", timeout_s=1)
    assert type(error) is RerankInputError


def test_a_request_id_cannot_steer_the_verdict_of_a_status_triton_reuses():
    failure = InferenceServerException("[request id: x has no available version] connection reset", "503")
    error = translate(failure, where="Triton", model_name="reranker", timeout_s=1)
    assert type(error) is ServerUnavailableError


def test_without_a_status_the_message_decides_nothing():
    failure = InferenceServerException("unknown model: deadline timed out, connection refused", None)
    error = translate(failure, where="Triton", model_name="reranker", timeout_s=1)
    assert type(error) is ServerResponseError


def test_a_server_that_goes_away_mid_request_is_unavailable_so_the_request_is_tried_again():
    """aiohttp (the asyncio HTTP client every call now runs on) says so with its own exceptions."""
    import aiohttp

    for err in (aiohttp.ServerDisconnectedError(), aiohttp.ClientConnectionError("reset")):
        error = translate(err, where="Triton", model_name="reranker", timeout_s=1)
        assert type(error) is ServerUnavailableError
