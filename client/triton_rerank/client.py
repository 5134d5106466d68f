"""A drop-in for pymilvus' ``CrossEncoderRerankFunction`` that reranks on a Triton server.

    rf = TritonRerankFunction("grpc://127.0.0.1:8001")      # or http://127.0.0.1:8000
    rf(query="...", documents=["...", "..."], top_k=3)       # -> [RerankResult(text, score, index)]

Same call, same result type, same order (score descending, ties in input order) and, by default,
the same score meaning as ``cross-encoder/ms-marco-*`` models give in-process: the raw logit.
``activation="sigmoid"`` maps scores into (0, 1).

The URL's scheme picks the protocol: ``http://``, ``https://``, ``grpc://``, ``grpcs://`` (no
scheme means HTTP). Documents go in requests of at most ``batch_size``; N documents in, N scores
out, or an error. ``AsyncTritonRerankFunction`` is the asyncio twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from tritonclient.utils import InferenceServerException

from triton_rerank.errors import (
    ModelNotReadyError,
    RerankError,
    RerankInputError,
    RerankTimeoutError,
    ServerResponseError,
    ServerUnavailableError,
)

Activation = Literal["identity", "sigmoid"]
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_MODEL_NAME = "reranker"
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its text, its score, and its position in the input list."""

    text: str
    score: float
    index: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Endpoint:
    protocol: Literal["http", "grpc"]
    address: str
    ssl: bool


def parse_url(url: str) -> _Endpoint:
    """``grpc://host:port`` -> gRPC; ``http://`` or no scheme -> HTTP; ``https``/``grpcs`` -> TLS."""
    if not isinstance(url, str) or not url.strip():
        raise RerankInputError(f"url must be a non-empty string like 'grpc://host:8001', got {url!r}")
    scheme, sep, address = url.strip().partition("://")
    if not sep:
        scheme, address = "http", url.strip()
    schemes = {"http": ("http", False), "https": ("http", True), "grpc": ("grpc", False), "grpcs": ("grpc", True)}
    if scheme.lower() not in schemes or not address.strip("/"):
        raise RerankInputError(f"url {url!r}: expected http://, https://, grpc:// or grpcs:// followed by host:port")
    protocol, ssl = schemes[scheme.lower()]
    return _Endpoint(protocol, address.rstrip("/"), ssl)


def check_request(query: object, documents: object, top_k: object) -> list[bytes]:
    """Validate a rerank call; returns the documents UTF-8 encoded, in order."""
    if not isinstance(query, str):
        raise RerankInputError(f"query must be a str, got {type(query).__name__}")
    _utf8(query, "query")
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise RerankInputError(f"documents must be a list of str, got {type(documents).__name__}")
    encoded = []
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise RerankInputError(f"documents[{i}] must be a str, got {type(doc).__name__}")
        encoded.append(_utf8(doc, f"documents[{i}]"))
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RerankInputError(f"top_k must be a positive int or None (all documents), got {top_k!r}")
    return encoded


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RerankInputError(f"{what} cannot be encoded as UTF-8: {err}") from err


def rank(documents: Sequence[str], scores: np.ndarray, top_k: int | None) -> list[RerankResult]:
    """Results sorted by score, descending; equal scores keep input order (as pymilvus does)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    return [RerankResult(text=documents[i], score=float(scores[i]), index=i) for i in order[:top_k]]


def activate(logits: np.ndarray, activation: Activation) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return logits


def _check_options(activation: object, batch_size: object, timeout_s: object) -> None:
    if activation not in ("identity", "sigmoid"):
        raise RerankInputError(f"activation must be 'identity' (raw logits) or 'sigmoid', got {activation!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RerankInputError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise RerankInputError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")


def _chunks(items: list[bytes], size: int) -> list[list[bytes]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class _Core:
    """What the sync and async clients share: endpoint, request tensors, error translation."""

    def __init__(self, url: str, model_name: str, activation: Activation, batch_size: int, timeout_s: float, headers):
        _check_options(activation, batch_size, timeout_s)
        self.endpoint = parse_url(url)
        self.url = url
        self.model_name = model_name
        self.activation = activation
        self.batch_size = batch_size
        self.timeout_s = float(timeout_s)
        self.headers = dict(headers or {})

    def inputs(self, module, query: bytes, documents: list[bytes]) -> list:
        query_input = module.InferInput("QUERY", [1], "BYTES")
        query_input.set_data_from_numpy(np.array([query], dtype=np.object_))
        documents_input = module.InferInput("DOCUMENTS", [len(documents)], "BYTES")
        documents_input.set_data_from_numpy(np.array(documents, dtype=np.object_))
        return [query_input, documents_input]

    def infer_kwargs(self, module) -> dict:
        kwargs = {"headers": self.headers or None}
        if self.endpoint.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
            kwargs["outputs"] = [module.InferRequestedOutput("SCORES")]
        else:
            kwargs["outputs"] = [module.InferRequestedOutput("SCORES", binary_data=True)]
        return kwargs

    def scores(self, result, expected: int) -> np.ndarray:
        scores = result.as_numpy("SCORES")
        if scores is None or scores.size != expected:
            got = "no SCORES" if scores is None else f"{scores.size} scores"
            raise ServerResponseError(f"{self.model_name} returned {got} for {expected} documents")
        return scores.reshape(-1).astype(np.float32)

    def translate(self, err: BaseException) -> RerankError:
        """Map a tritonclient / network exception onto the error tree."""
        where = f"Triton at {self.url}"
        if isinstance(err, RerankError):
            return err
        if isinstance(err, InferenceServerException):
            message = err.message() or str(err)
            status = str(err.status() or "")
            lowered = message.lower()
            if "deadline" in lowered or "timed out" in lowered or "timeout" in status.lower():
                return RerankTimeoutError(f"{where}: no answer within {self.timeout_s:g} s ({message})")
            if "unavailable" in status.lower() or "failed to connect" in lowered or "connection refused" in lowered:
                return ServerUnavailableError(f"{where} is unreachable: {message}")
            if "unknown model" in lowered or "not ready" in lowered or ("not found" in lowered and "model" in lowered):
                return ModelNotReadyError(
                    f"model {self.model_name!r} is not available on {where}: {message}", model_name=self.model_name
                )
            if status in ("400", "StatusCode.INVALID_ARGUMENT") or "invalid" in lowered:
                return RerankInputError(f"{where} rejected the request to {self.model_name!r}: {message}")
            return ServerResponseError(f"{where} failed on {self.model_name!r}: {message}")
        if isinstance(err, (TimeoutError, asyncio.TimeoutError)):
            return RerankTimeoutError(f"{where}: no answer within {self.timeout_s:g} s")
        if isinstance(err, OSError):  # refused, reset, DNS: all are "cannot reach"
            return ServerUnavailableError(f"{where} is unreachable: {err}")
        return ServerResponseError(f"{where}: unexpected {type(err).__name__}: {err}")


class TritonRerankFunction:
    """Rerank documents for a query on a Triton server; see the module docstring.

    Args:
        url: Server URL; the scheme picks HTTP or gRPC.
        model_name: The ensemble to call.
        activation: ``identity`` returns raw logits (as ms-marco cross-encoders do in-process);
            ``sigmoid`` maps them into (0, 1).
        batch_size: Most documents per Triton request; larger lists go in several requests.
            Must not exceed the server's ``cross_encoder`` max_batch_size.
        timeout_s: Connection and request timeout.
        headers: Extra HTTP headers / gRPC metadata sent with every request.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        activation: Activation = "identity",
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._core = _Core(url, model_name, activation, batch_size, timeout_s, headers)
        endpoint = self._core.endpoint
        if endpoint.protocol == "grpc":
            import tritonclient.grpc as module

            self._client = module.InferenceServerClient(endpoint.address, ssl=endpoint.ssl)
        else:
            import tritonclient.http as module

            self._client = module.InferenceServerClient(
                endpoint.address, ssl=endpoint.ssl, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        self._module = module

    def __call__(self, query: str, documents: list[str], top_k: int | None = 5) -> list[RerankResult]:
        """Rerank ``documents`` for ``query``; the ``top_k`` best (all for ``None``), best first."""
        return rank(documents, self._score(query, check_request(query, documents, top_k)), top_k)

    def score(self, query: str, documents: list[str]) -> np.ndarray:
        """One score per document, in input order (float32 logits, or float64 after sigmoid)."""
        return self._score(query, check_request(query, documents, None))

    def _score(self, query: str, encoded: list[bytes]) -> np.ndarray:
        core = self._core
        query_bytes = query.encode("utf-8")
        parts = [
            self._infer(core.inputs(self._module, query_bytes, chunk), len(chunk))
            for chunk in _chunks(encoded, core.batch_size)
        ]
        return activate(np.concatenate(parts) if parts else np.empty(0, np.float32), core.activation)

    def _infer(self, inputs: list, expected: int) -> np.ndarray:
        core = self._core
        try:
            result = self._client.infer(core.model_name, inputs, **core.infer_kwargs(self._module))
        except Exception as err:
            raise core.translate(err) from err
        return core.scores(result, expected)

    def is_ready(self) -> bool:
        """True when the server answers and the model is ready; False when it is not."""
        core = self._core
        kwargs = {"client_timeout": core.timeout_s} if core.endpoint.protocol == "grpc" else {}
        try:
            return bool(self._client.is_model_ready(core.model_name, headers=core.headers or None, **kwargs))
        except Exception:
            return False

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonRerankFunction:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTritonRerankFunction:
    """The asyncio twin of ``TritonRerankFunction``: same arguments, ``await rf(...)``.

    The requests of one call (one per ``batch_size`` documents) are sent concurrently.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        activation: Activation = "identity",
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._core = _Core(url, model_name, activation, batch_size, timeout_s, headers)
        self._client = None

    def _connect(self):
        """Create the aio client inside the running event loop (aiohttp requires it)."""
        if self._client is None:
            endpoint = self._core.endpoint
            if endpoint.protocol == "grpc":
                import tritonclient.grpc.aio as module

                self._client = module.InferenceServerClient(endpoint.address, ssl=endpoint.ssl)
            else:
                import tritonclient.http.aio as module

                self._client = module.InferenceServerClient(
                    endpoint.address, ssl=endpoint.ssl, conn_timeout=self._core.timeout_s
                )
            self._module = module
        return self._client

    async def __call__(self, query: str, documents: list[str], top_k: int | None = 5) -> list[RerankResult]:
        return rank(documents, await self._score(query, check_request(query, documents, top_k)), top_k)

    async def score(self, query: str, documents: list[str]) -> np.ndarray:
        return await self._score(query, check_request(query, documents, None))

    async def _score(self, query: str, encoded: list[bytes]) -> np.ndarray:
        client = self._connect()
        query_bytes = query.encode("utf-8")
        chunks = _chunks(encoded, self._core.batch_size)
        parts = await asyncio.gather(*(self._infer(client, query_bytes, chunk) for chunk in chunks))
        return activate(np.concatenate(parts) if parts else np.empty(0, np.float32), self._core.activation)

    async def _infer(self, client, query: bytes, chunk: list[bytes]) -> np.ndarray:
        core = self._core
        try:
            result = await client.infer(
                core.model_name, core.inputs(self._module, query, chunk), **core.infer_kwargs(self._module)
            )
        except Exception as err:
            raise core.translate(err) from err
        return core.scores(result, len(chunk))

    async def is_ready(self) -> bool:
        core = self._core
        client = self._connect()
        kwargs = {"client_timeout": core.timeout_s} if core.endpoint.protocol == "grpc" else {}
        try:
            return bool(await client.is_model_ready(core.model_name, headers=core.headers or None, **kwargs))
        except Exception:
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> AsyncTritonRerankFunction:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
