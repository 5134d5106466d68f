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
        └── InvalidScoresError  ... scores that cannot be ranked (NaN)

This module is a leaf: it imports nothing of the package. What tritonclient raises is mapped onto
this tree by the transport that calls it (``triton_errors.translate``).
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


class InvalidScoresError(ServerResponseError):
    """The model answered scores that cannot be ranked (NaN): its export or its weights are broken
    for these inputs."""
