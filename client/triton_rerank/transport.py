"""One Triton model behind a URL, for the reranking and embedding clients: protocol, timeouts,
string tensors in, one float tensor out, and tritonclient's errors translated into ours.

The URL's scheme picks the protocol: ``http://``, ``https://``, ``grpc://``, ``grpcs://`` (no
scheme means HTTP). ``Transport`` is blocking; ``AsyncTransport`` is its asyncio twin and creates
its connection inside the running event loop, as aiohttp requires. ``infer_many`` keeps up to
``max_in_flight`` requests on the wire at once, so that the server can batch them together and is
never idle between the requests of one call.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Endpoint:
    protocol: Literal["http", "grpc"]
    address: str
    ssl: bool


def parse_url(url: str) -> Endpoint:
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
    return Endpoint(protocol, address.rstrip("/"), ssl)


def check_timeout(timeout_s: object) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise RerankInputError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


# Requests of one call on the wire at once: enough to keep a server's batcher and instances fed.
DEFAULT_MAX_IN_FLIGHT = 4

Batch = tuple[dict[str, list[bytes]], int]  # string inputs by name, and the rows they hold


class _Base:
    """What both transports share: the request tensors, the checks on answers, error translation."""

    def __init__(
        self, url: str, model_name: str, timeout_s: float, headers: dict[str, str] | None, max_in_flight: int
    ) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise RerankInputError(f"max_in_flight must be a positive int, got {max_in_flight!r}")
        self.max_in_flight = max_in_flight
        self.timeout_s = check_timeout(timeout_s)
        self.endpoint = parse_url(url)
        self.url = url
        self.model_name = model_name
        self.headers = dict(headers or {}) or None

    def _request(self, module, strings: dict[str, list[bytes]], output: str) -> tuple[list, dict]:
        inputs = []
        for name, values in strings.items():
            tensor = module.InferInput(name, [len(values)], "BYTES")
            tensor.set_data_from_numpy(np.array(values, dtype=np.object_))
            inputs.append(tensor)
        kwargs = {"headers": self.headers}
        if self.endpoint.protocol == "grpc":
            kwargs.update(client_timeout=self.timeout_s, outputs=[module.InferRequestedOutput(output)])
        else:
            kwargs.update(outputs=[module.InferRequestedOutput(output, binary_data=True)])
        return inputs, kwargs

    def _ready_kwargs(self) -> dict:
        return {"client_timeout": self.timeout_s} if self.endpoint.protocol == "grpc" else {}

    def _output(self, result, output: str, rows: int) -> np.ndarray:
        """The output as float32 [rows, ...]; anything else is the server's fault, said plainly."""
        values = result.as_numpy(output)
        if values is None or values.ndim < 1 or values.shape[0] != rows:
            got = f"no {output}" if values is None else f"{output} of shape {list(values.shape)}"
            raise ServerResponseError(f"{self.model_name} returned {got} for {rows} inputs")
        return values.astype(np.float32, copy=False)

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


class Transport(_Base):
    """Blocking calls to one model."""

    def __init__(
        self, url: str, model_name: str, *, timeout_s: float = 60.0, headers=None, max_in_flight=DEFAULT_MAX_IN_FLIGHT
    ) -> None:
        super().__init__(url, model_name, timeout_s, headers, max_in_flight)
        if self.endpoint.protocol == "grpc":
            import tritonclient.grpc as module

            self._client = module.InferenceServerClient(self.endpoint.address, ssl=self.endpoint.ssl)
        else:
            import tritonclient.http as module

            self._client = module.InferenceServerClient(
                self.endpoint.address,
                ssl=self.endpoint.ssl,
                connection_timeout=self.timeout_s,
                network_timeout=self.timeout_s,
                concurrency=self.max_in_flight,  # connections, for infer_many
            )
        self._module = module

    def infer(self, strings: dict[str, list[bytes]], output: str, rows: int) -> np.ndarray:
        inputs, kwargs = self._request(self._module, strings, output)
        try:
            result = self._client.infer(self.model_name, inputs, **kwargs)
        except Exception as err:
            raise self.translate(err) from err
        return self._output(result, output, rows)

    def infer_many(self, batches: list[Batch], output: str) -> list[np.ndarray]:
        """``infer`` for each batch, up to ``max_in_flight`` at once; results in batch order."""
        if len(batches) <= 1 or self.max_in_flight == 1:
            return [self.infer(strings, output, rows) for strings, rows in batches]
        try:
            if self.endpoint.protocol == "grpc":
                results = self._grpc_many(batches, output)
            else:  # the HTTP client's own pool keeps max_in_flight connections busy
                pending = []
                for strings, _ in batches:
                    inputs, kwargs = self._request(self._module, strings, output)
                    pending.append(self._client.async_infer(self.model_name, inputs, **kwargs))
                results = [request.get_result() for request in pending]
        except Exception as err:
            raise self.translate(err) from err
        return [self._output(result, output, rows) for result, (_, rows) in zip(results, batches, strict=True)]

    def _grpc_many(self, batches: list[Batch], output: str) -> list:
        slots = threading.BoundedSemaphore(self.max_in_flight)
        futures: list[Future] = []
        for strings, _ in batches:
            future: Future = Future()
            futures.append(future)

            def done(result, error, future=future) -> None:
                slots.release()
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)

            inputs, kwargs = self._request(self._module, strings, output)
            slots.acquire()
            try:
                self._client.async_infer(self.model_name, inputs, done, **kwargs)
            except Exception:
                slots.release()
                raise
        return [future.result() for future in futures]

    def is_ready(self) -> bool:
        """True when the server answers and the model is ready; False when it is not."""
        try:
            return bool(self._client.is_model_ready(self.model_name, headers=self.headers, **self._ready_kwargs()))
        except Exception:
            return False

    def close(self) -> None:
        self._client.close()


class AsyncTransport(_Base):
    """The asyncio twin of ``Transport``."""

    def __init__(
        self, url: str, model_name: str, *, timeout_s: float = 60.0, headers=None, max_in_flight=DEFAULT_MAX_IN_FLIGHT
    ) -> None:
        super().__init__(url, model_name, timeout_s, headers, max_in_flight)
        self._client = None

    def _connect(self):
        if self._client is None:
            if self.endpoint.protocol == "grpc":
                import tritonclient.grpc.aio as module

                self._client = module.InferenceServerClient(self.endpoint.address, ssl=self.endpoint.ssl)
            else:
                import tritonclient.http.aio as module

                self._client = module.InferenceServerClient(
                    self.endpoint.address, ssl=self.endpoint.ssl, conn_timeout=self.timeout_s
                )
            self._module = module
        return self._client

    async def infer(self, strings: dict[str, list[bytes]], output: str, rows: int) -> np.ndarray:
        client = self._connect()
        inputs, kwargs = self._request(self._module, strings, output)
        try:
            result = await client.infer(self.model_name, inputs, **kwargs)
        except Exception as err:
            raise self.translate(err) from err
        return self._output(result, output, rows)

    async def infer_many(self, batches: list[Batch], output: str) -> list[np.ndarray]:
        """``infer`` for each batch, up to ``max_in_flight`` at once; results in batch order."""
        slots = asyncio.Semaphore(self.max_in_flight)

        async def one(strings: dict[str, list[bytes]], rows: int) -> np.ndarray:
            async with slots:
                return await self.infer(strings, output, rows)

        return list(await asyncio.gather(*(one(strings, rows) for strings, rows in batches)))

    async def is_ready(self) -> bool:
        client = self._connect()
        try:
            return bool(await client.is_model_ready(self.model_name, headers=self.headers, **self._ready_kwargs()))
        except Exception:
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
