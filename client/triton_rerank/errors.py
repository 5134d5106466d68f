"""Errors raised by the reranking client.

Every failure the client reports is a ``RerankError``; tritonclient's and the network's
exceptions are wrapped with ``raise ... from err`` so the original stays attached::

    RerankError
    ├── RerankInputError        bad query / documents / top_k, or a request the server rejected
    ├── ServerUnavailableError  no server answers at the URL
    ├── ModelNotReadyError      the server answers, but the model is unknown or not loaded
    ├── RerankTimeoutError      no answer within ``timeout_s``
    ├── ServerOverloadedError   the server's queue is full: it refused the request at once
    ├── RerankAuthError         the server wants an API key this client did not send (or another one)
    └── ServerResponseError     the server answered something the client cannot use

``translate`` maps what tritonclient raises onto this tree through one table, ``TRITON_ERROR_TABLE``.
"""

from __future__ import annotations


class RerankError(Exception):
    """Base class of every error raised by ``triton_rerank``."""


class RerankInputError(RerankError, ValueError):
    """The request is invalid: caught by the client, or rejected by the server."""


class ServerUnavailableError(RerankError, ConnectionError):
    """The Triton server cannot be reached."""


class ModelNotReadyError(RerankError):
    """The server is up but the named model is unknown, failed to load, or is not ready."""

    def __init__(self, message: str, *, model_name: str, transient: bool = False) -> None:
        super().__init__(message)
        self.model_name = model_name
        self.transient = transient  # the server knows the model but has no version loaded: loading or stopping


class RerankTimeoutError(RerankError, TimeoutError):
    """The server did not answer within the client's timeout."""


class ServerOverloadedError(RerankError):
    """The server refused the request because its queue is full (its queue policy); try later."""


class RerankAuthError(RerankError, PermissionError):
    """The server restricts this API to requests carrying its API key."""


class ServerResponseError(RerankError):
    """The server answered, but with an error or a result the client cannot use."""


# How a failure from tritonclient becomes one of the errors above, as a table. A row matches when
# the exception's status is one of its statuses (an HTTP status code, or a gRPC status as
# tritonclient spells it; an empty set matches any) and, if it names one, its pattern appears in
# the lower-cased message; the first row that matches wins. Status decides; patterns only split a
# status that Triton uses for several things (gRPC UNAVAILABLE: unreachable, queue full and a
# missing API key alike; NOT_FOUND: an unknown model and one still loading), and stand in where
# there is no status. tests/unit/test_errors_table.py runs real messages through it.
_GRPC = "StatusCode."
TRITON_ERROR_TABLE: tuple[tuple[frozenset[str], str | None, str], ...] = (
    # A model the server knows but is loading or unloading (a restart) is answered like an unknown
    # model, whatever the protocol: only the message tells that it is worth waiting for.
    (frozenset(), "has no available version", "model_loading"),
    (frozenset(), "is not ready", "model_loading"),
    (frozenset({"401", "403", _GRPC + "PERMISSION_DENIED", _GRPC + "UNAUTHENTICATED"}), None, "auth"),
    (frozenset({_GRPC + "UNAVAILABLE"}), "is restricted", "auth"),  # Triton's restricted gRPC protocols
    (frozenset({"503", _GRPC + "UNAVAILABLE"}), "maximum queue size", "overloaded"),
    (frozenset({"503", _GRPC + "UNAVAILABLE"}), "request timeout expired", "overloaded"),
    (frozenset({_GRPC + "DEADLINE_EXCEEDED", "408", "504"}), None, "timeout"),
    (frozenset({"404", _GRPC + "NOT_FOUND"}), None, "unknown_model"),
    (frozenset({_GRPC + "UNAVAILABLE", "502", "503"}), None, "unavailable"),
    (frozenset({"400", _GRPC + "INVALID_ARGUMENT"}), None, "input"),
    # No status (or an unexpected one): what the message says.
    (frozenset(), "unknown model", "unknown_model"),
    (frozenset(), "deadline", "timeout"),
    (frozenset(), "timed out", "timeout"),
    (frozenset(), "failed to connect", "unavailable"),
    (frozenset(), "connection refused", "unavailable"),
)
# Failures before any answer: no status, only the exception's type.
UNAVAILABLE_TYPES = (OSError,)  # refused, reset, DNS: all are "cannot reach"
UNAVAILABLE_TYPE_NAMES = ("HTTPConnectionClosed",)  # geventhttpclient: the server went away mid-request


def classify(status: str, message: str) -> str | None:
    """The table's verdict for a tritonclient exception's status and message; None: no row."""
    lowered = message.lower()
    for statuses, pattern, verdict in TRITON_ERROR_TABLE:
        if (not statuses or status in statuses) and (pattern is None or pattern in lowered):
            return verdict
    return None


def translate(err: BaseException, *, where: str, model_name: str, timeout_s: float) -> RerankError:
    """Map a tritonclient / network exception (from the server(s) ``where``) onto the error tree."""
    from tritonclient.utils import InferenceServerException

    from triton_rerank.endpoints import API_KEY_ENV, API_KEY_HEADER

    if isinstance(err, RerankError):
        return err
    if isinstance(err, InferenceServerException):
        message = err.message() or str(err)
        verdict = classify(str(err.status() or ""), message)
    elif isinstance(err, TimeoutError):
        message, verdict = "", "timeout"
    elif isinstance(err, UNAVAILABLE_TYPES) or type(err).__name__ in UNAVAILABLE_TYPE_NAMES:
        message, verdict = f"{type(err).__name__}: {err}", "unavailable"
    else:
        message, verdict = f"unexpected {type(err).__name__}: {err}", None
    model = repr(model_name)
    if verdict == "auth":
        return RerankAuthError(
            f"{where} refused the request to {model}: it needs an API key (header {API_KEY_HEADER!r}) that "
            f"this client did not send, or another one; pass api_key= or set {API_KEY_ENV}"
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
