"""How what tritonclient raises becomes one of the client's errors (``errors``), as one table that
the transport applies to every failure.

A row matches when the exception's status is one of its statuses (an HTTP status code, or a gRPC
status as tritonclient spells it) and, if it names one, its pattern appears in the lower-cased
message; the first row that matches wins. Status decides: a bad request (HTTP 400, gRPC
INVALID_ARGUMENT) is an input error whatever its message says, because such messages quote the
request (a document's bytes, a parameter's value). Patterns only split a status that Triton uses
for several things (gRPC UNAVAILABLE: unreachable, queue full and a missing API key alike; NOT_FOUND
and UNAVAILABLE: an unknown model and one still loading), and they never see a request id, which a
caller may choose. tests/unit/test_errors_table.py runs real messages through it.

What the table does not know (no Triton status, no network failure) is not mapped at all:
``translate`` returns None and the caller re-raises the exception as it is, so that a bug, ours or a
library's, keeps its type and traceback instead of reading as "Triton failed" (httpx's
``map_httpcore_exceptions`` does the same).
"""

from __future__ import annotations

import re

from triton_rerank.endpoints import API_KEY_HEADER, TRITON_API_KEY_ENV
from triton_rerank.errors import (
    ModelNotReadyError,
    RerankAuthError,
    RerankError,
    RerankInputError,
    RerankTimeoutError,
    ServerOverloadedError,
    ServerResponseError,
    ServerUnavailableError,
)

_GRPC = "StatusCode."
_AUTH = frozenset({"401", "403", _GRPC + "PERMISSION_DENIED", _GRPC + "UNAUTHENTICATED"})
_INPUT = frozenset({"400", _GRPC + "INVALID_ARGUMENT"})
_TIMEOUT = frozenset({"408", "504", _GRPC + "DEADLINE_EXCEEDED"})
_UNAVAILABLE = frozenset({"503", _GRPC + "UNAVAILABLE"})
_NOT_FOUND = frozenset({"404", _GRPC + "NOT_FOUND"})

TRITON_ERROR_TABLE: tuple[tuple[frozenset[str], str | None, str], ...] = (
    (_AUTH, None, "auth"),
    (_INPUT, None, "input"),
    (_TIMEOUT, None, "timeout"),
    (frozenset({_GRPC + "UNAVAILABLE"}), "is restricted", "auth"),  # Triton's restricted gRPC protocols
    (_UNAVAILABLE, "maximum queue size", "overloaded"),
    (_UNAVAILABLE, "request timeout expired", "overloaded"),
    # A model the server knows but is loading or unloading (a restart) is answered like an unknown
    # model: only the message tells that it is worth waiting for.
    (_UNAVAILABLE | _NOT_FOUND, "has no available version", "model_loading"),
    (_UNAVAILABLE | _NOT_FOUND, "is not ready", "model_loading"),
    (_NOT_FOUND, None, "unknown_model"),
    (_UNAVAILABLE | {"502"}, None, "unavailable"),
)
# Failures before any answer: no status, only the exception's type.
UNAVAILABLE_TYPES = (OSError,)  # refused, reset, DNS: all are "cannot reach"
# The server went away mid-request: aiohttp's ServerDisconnectedError and its kin (the asyncio HTTP
# client), geventhttpclient's HTTPConnectionClosed (the blocking one). Matched by name along the class
# hierarchy, so that neither library is imported here.
UNAVAILABLE_TYPE_NAMES = ("ClientConnectionError", "HTTPConnectionClosed")
_REQUEST_ID = re.compile(r"\[request id: [^\]]*\]")


def classify(status: str, message: str) -> str | None:
    """The table's verdict for a tritonclient exception's status and message; None: no row."""
    lowered = _REQUEST_ID.sub("", message).lower()
    for statuses, pattern, verdict in TRITON_ERROR_TABLE:
        if status in statuses and (pattern is None or pattern in lowered):
            return verdict
    return None


def translate(err: BaseException, *, where: str, model_name: str, timeout_s: float) -> RerankError | None:
    """Map a tritonclient / network exception (from the server(s) ``where``) onto the error tree;
    None for any other exception, which the caller re-raises unchanged."""
    from tritonclient.utils import InferenceServerException

    if isinstance(err, RerankError):
        return err
    if isinstance(err, InferenceServerException):
        message = err.message() or str(err)
        verdict = classify(str(err.status() or ""), message)
    elif isinstance(err, TimeoutError):
        message, verdict = "", "timeout"
    elif isinstance(err, UNAVAILABLE_TYPES) or any(c.__name__ in UNAVAILABLE_TYPE_NAMES for c in type(err).__mro__):
        message, verdict = f"{type(err).__name__}: {err}", "unavailable"
    else:
        return None
    return _error(verdict, message, where=where, model_name=model_name, timeout_s=timeout_s)


def _error(verdict: str | None, message: str, *, where: str, model_name: str, timeout_s: float) -> RerankError:
    model = repr(model_name)
    if verdict == "auth":
        return RerankAuthError(
            f"{where} refused the request to {model}: it needs an API key (header {API_KEY_HEADER!r}) that "
            f"this client did not send, or another one; pass api_key= or set {TRITON_API_KEY_ENV}"
        )
    if verdict == "overloaded":
        return ServerOverloadedError(
            f"{where} is overloaded: {model} refused the request ({message}); try again later, or add replicas"
        )
    if verdict == "timeout":
        return RerankTimeoutError(f"{where}: no answer within {timeout_s:g} s" + (f" ({message})" if message else ""))
    if verdict == "unavailable":
        return ServerUnavailableError(f"{where} is unreachable: {message}")
    if verdict in ("unknown_model", "model_loading"):
        return ModelNotReadyError(
            f"model {model} is not available on {where}: {message}",
            model_name=model_name,
            transient=verdict == "model_loading",
        )
    if verdict == "input":
        return RerankInputError(f"{where} rejected the request to {model}: {message}")
    return ServerResponseError(f"{where} failed on {model}: {message}")
