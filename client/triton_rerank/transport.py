"""One Triton model behind one or more URLs, for the reranking and embedding clients: protocol,
timeouts, failover, string tensors in, one float tensor out, and tritonclient's errors translated
into ours.

The URL's scheme picks the protocol: ``http://``, ``https://``, ``grpc://``, ``grpcs://`` (no
scheme means HTTP). Several URLs (a list, or one string separated by commas) are Triton replicas:
requests go round-robin over them, and a request that finds its replica down or its model not
ready is sent to the next one (inference is idempotent, so nothing is lost or done twice); a replica
that failed is skipped for ``RETRY_DOWN_AFTER_S`` before it is tried again. When every replica
fails that way (a restart, say), the request is tried again with exponential backoff for up to
``retry_s`` seconds (never longer than ``timeout_s``). A full queue (``ServerOverloadedError``), a
missing API key (``RerankAuthError``) and bad input are never retried. ``infer_many`` keeps up
to ``max_in_flight`` requests on the wire at once, so that the servers can batch them together and
are never idle between the requests of one call.

It is asyncio only, and creates its connections inside the running event loop, as aiohttp and
grpc.aio require; the blocking clients run it on the loop of ``triton_rerank.loop``, so the
failover logic exists once. A failure becomes one of ``errors`` through ``triton_errors.translate``;
an exception that table does not know (a bug) is raised as it is. The splits of one call run in a
task group: when one fails, the others are cancelled, and those not yet sent are never sent. The
connections belong to the process (and event loop) that made them: a forked child makes its own.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Sequence

import numpy as np

import triton_rerank.tracing as tracing
from triton_rerank.endpoints import (
    API_KEY_HEADER,
    GRPC_API_KEY_HEADER,
    TRITON_API_KEY_ENV,
    check_retry,
    check_timeout,
    parse_url,
    parse_urls,
)
from triton_rerank.errors import (
    ModelNotReadyError,
    RerankError,
    RerankInputError,
    RerankTimeoutError,
    ServerResponseError,
    ServerUnavailableError,
)
from triton_rerank.protocol import LIMIT_PARAMETERS, RESERVED_TOKENS
from triton_rerank.triton_errors import translate

# Requests of one call on the wire at once: enough to keep a server's batcher and instances fed.
DEFAULT_MAX_IN_FLIGHT = 4
# A replica that was down is skipped this long (unless every replica is down) before it is tried again.
RETRY_DOWN_AFTER_S = 5.0
# Failures that say "this replica cannot serve the request now": another replica may, or this one later.
FAILOVER_ERRORS = (ServerUnavailableError, ModelNotReadyError)
# How long a request keeps being tried again while no replica can serve it, and the waits between tries.
DEFAULT_RETRY_S = 10.0
RETRY_FIRST_DELAY_S, RETRY_MAX_DELAY_S = 0.25, 2.0
_UNKNOWN = object()  # no server has answered the question yet


Batch = tuple[dict[str, list[bytes]], int]  # string inputs by name, and the rows they hold
Output = str | tuple[str, ...]  # the output to read, or several read side by side (as float32)


class AsyncTransport:
    """One model on one or more replicas; see the module docstring."""

    def __init__(
        self,
        url: str | Sequence[str],
        model_name: str,
        *,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_s: float = DEFAULT_RETRY_S,
        api_key: str | None = None,
    ) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise RerankInputError(f"max_in_flight must be a positive int, got {max_in_flight!r}")
        self.max_in_flight = max_in_flight
        self.timeout_s = check_timeout(timeout_s)
        self.retry_s = min(check_retry(retry_s), self.timeout_s)
        self.urls = parse_urls(url)
        self.endpoints = [parse_url(u) for u in self.urls]
        self.endpoint = self.endpoints[0]  # the protocol, shared by all
        self.model_name = model_name
        self.headers = dict(headers or {})
        if api_key is None:  # the caller's key, else the environment's
            api_key = os.environ.get(TRITON_API_KEY_ENV) or None
        if api_key is not None:
            if not isinstance(api_key, str) or not api_key:
                raise RerankInputError("api_key must be a non-empty string")  # never echo a secret
            self.headers[GRPC_API_KEY_HEADER if self.endpoint.protocol == "grpc" else API_KEY_HEADER] = api_key
        self.headers = self.headers or None
        self._turn = itertools.count()
        self._down_until = [0.0] * len(self.urls)
        self._limits: dict[str, int] | object = _UNKNOWN  # read from the servers on first need
        self._clients: list | None = None  # connected inside the running loop, on first need
        self._owner_pid: int | None = None  # the process that connected them
        self._inherited: list = []  # a forked child's copy of its parent's clients: never used, never closed
        self._module = None

    def _backoff(self):
        """Waits before each new pass over the replicas, while ``retry_s`` lasts."""
        deadline = time.monotonic() + self.retry_s
        delay = RETRY_FIRST_DELAY_S
        while time.monotonic() + delay <= deadline:
            yield delay
            delay = min(2 * delay, RETRY_MAX_DELAY_S)

    def _order(self) -> list[int]:
        """Replicas to try for the next request: round-robin over those up, then those down, the
        one that went down first first."""
        n = len(self.urls)
        start = next(self._turn) % n
        rotated = [(start + i) % n for i in range(n)]
        now = time.monotonic()
        up = [i for i in rotated if self._down_until[i] <= now]
        return up + sorted((i for i in rotated if self._down_until[i] > now), key=self._down_until.__getitem__)

    @staticmethod
    def _next_wait(waits, failures: dict[int, RerankError]) -> float | None:
        """The wait before another pass, or None to give up: a server that could not be reached, or
        whose model is loading or unloading, may come back (a restart); a model that no server knows
        is not worth waiting for."""
        if not any(isinstance(f, ServerUnavailableError) or getattr(f, "transient", False) for f in failures.values()):
            return None
        return next(waits, None)

    def _failed(self, replica: int, err: BaseException, failures: dict[int, RerankError]) -> None:
        """Translate ``err`` and raise it, unless another replica (or this one later) may serve the
        request: then mark the replica down and keep its latest failure. An exception the table does
        not know is raised unchanged."""
        error = self.translate(err, self.urls[replica])
        if error is None:
            raise err
        if not isinstance(error, FAILOVER_ERRORS):
            raise error from err
        self._down_until[replica] = time.monotonic() + RETRY_DOWN_AFTER_S
        failures[replica] = error

    def _succeeded(self, replica: int) -> None:
        self._down_until[replica] = 0.0

    def _all_failed(self, failures: dict[int, RerankError]) -> RerankError:
        errors = [failures[replica] for replica in sorted(failures)]
        if len(errors) == 1:
            return errors[0]
        kind = ModelNotReadyError if all(isinstance(f, ModelNotReadyError) for f in errors) else None
        message = f"none of the {len(errors)} Triton servers could serve {self.model_name!r}: " + "; ".join(
            str(f) for f in errors
        )
        return kind(message, model_name=self.model_name) if kind else ServerUnavailableError(message)

    def _tensors(
        self, module, strings: dict[str, list[bytes]], output: Output, parameters: dict | None = None
    ) -> tuple[list, dict]:
        inputs = []
        for name, values in strings.items():
            tensor = module.InferInput(name, [len(values)], "BYTES")
            tensor.set_data_from_numpy(np.array(values, dtype=np.object_))
            inputs.append(tensor)
        kwargs = {"headers": self.headers, "parameters": parameters or None}
        names = (output,) if isinstance(output, str) else output
        if self.endpoint.protocol == "grpc":
            kwargs.update(client_timeout=self.timeout_s, outputs=[module.InferRequestedOutput(name) for name in names])
        else:
            kwargs.update(outputs=[module.InferRequestedOutput(name, binary_data=True) for name in names])
        return inputs, kwargs

    def _settle_limits(self, configs: list[dict]) -> dict[str, int]:
        """Remember the tightest of each ``LIMIT_PARAMETERS`` the answering servers' configs declare
        (the smallest; for reserved tokens the largest; absent: none declares it); when no server
        answered, remember nothing, so it is asked again."""
        if configs:
            limits: dict[str, int] = {}
            for config in configs:
                config = config.get("config", config)  # gRPC wraps the config, HTTP does not
                for name in LIMIT_PARAMETERS:
                    value = config.get("parameters", {}).get(name, {}).get("string_value")
                    if value and value.isdigit() and int(value) > 0:
                        tightest = max if name == RESERVED_TOKENS else min
                        limits[name] = tightest(limits.get(name, int(value)), int(value))
            self._limits = limits
        return {} if self._limits is _UNKNOWN else self._limits

    def _ready_kwargs(self) -> dict:
        return {"client_timeout": self.timeout_s} if self.endpoint.protocol == "grpc" else {}

    def _config_kwargs(self) -> dict:
        return {"as_json": True, **self._ready_kwargs()} if self.endpoint.protocol == "grpc" else {}

    def _output(self, result, output: Output, rows: int) -> np.ndarray:
        """The output as float32 [rows, ...] (several: side by side, [rows, their columns]); anything
        else is the server's fault, said plainly."""
        if not isinstance(output, str):
            return np.hstack([self._output(result, name, rows).reshape(rows, -1) for name in output])
        values = result.as_numpy(output)
        if values is None or values.ndim < 1 or values.shape[0] != rows:
            got = f"no {output}" if values is None else f"{output} of shape {list(values.shape)}"
            raise ServerResponseError(f"{self.model_name} returned {got} for {rows} inputs")
        return values.astype(np.float32, copy=False)

    def translate(self, err: BaseException, url: str | None = None) -> RerankError | None:
        """``triton_errors.translate`` for this model, naming the server(s) that failed."""
        where = f"Triton at {url or ', '.join(self.urls)}"
        return translate(err, where=where, model_name=self.model_name, timeout_s=self.timeout_s)

    def _connect(self) -> list:
        """tritonclient's asyncio clients, one per replica, made in the running loop on first use,
        and made again in a forked child: the parent's are bound to the parent's loop and sockets,
        which the child must neither use nor close (they are kept, unused)."""
        if self._clients is not None and self._owner_pid != os.getpid():
            self._inherited.append(self._clients)
            self._clients = None
        if self._clients is None:
            if self.endpoint.protocol == "grpc":
                _check_grpc_usable()
                import tritonclient.grpc.aio as module

                self._clients = [module.InferenceServerClient(e.address, ssl=e.ssl) for e in self.endpoints]
            else:
                import tritonclient.http.aio as module

                self._clients = [
                    module.InferenceServerClient(e.address, ssl=e.ssl, conn_timeout=self.timeout_s)
                    for e in self.endpoints
                ]
            self._module, self._owner_pid = module, os.getpid()
        return self._clients

    async def infer(
        self, strings: dict[str, list[bytes]], output: Output, rows: int, parameters: dict | None = None
    ) -> np.ndarray:
        clients = self._connect()
        inputs, kwargs = self._tensors(self._module, strings, output, parameters)
        failures: dict[int, RerankError] = {}
        waits = self._backoff()
        with tracing.span("triton.infer", **{"triton.model": self.model_name, "triton.rows": rows}) as span:
            # Triton's request id and its trace context: the same id on every split of one request.
            kwargs.update(request_id=tracing.request_id() or "", headers=self._traced_headers())
            while True:
                for replica in self._order():
                    try:
                        result = await clients[replica].infer(self.model_name, inputs, **kwargs)
                    except Exception as err:
                        self._failed(replica, err, failures)
                        continue
                    self._succeeded(replica)
                    if span is not None:
                        span.set_attribute("triton.url", self.urls[replica])
                    return self._output(result, output, rows)
                delay = self._next_wait(waits, failures)
                if delay is None:
                    raise self._all_failed(failures)
                await asyncio.sleep(delay)

    def _traced_headers(self) -> dict[str, str] | None:
        """This transport's headers and the current span's trace context (``traceparent``)."""
        carried = tracing.trace_headers()
        return {**(self.headers or {}), **carried} if carried else self.headers

    async def infer_many(
        self, batches: list[Batch], output: Output, parameters: dict | None = None
    ) -> list[np.ndarray]:
        """``infer`` for each batch, up to ``max_in_flight`` at once; results in batch order. The
        first failure is raised once every other batch has been cancelled (those in flight stop,
        those waiting for a slot are never sent)."""
        slots = asyncio.Semaphore(self.max_in_flight)

        async def one(strings: dict[str, list[bytes]], rows: int) -> np.ndarray:
            async with slots:
                return await self.infer(strings, output, rows, parameters)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(strings, rows)) for strings, rows in batches]
        except BaseExceptionGroup as failed:
            first = _first(failed)
            raise first from first.__cause__  # the failure itself, its own cause kept
        return [task.result() for task in tasks]

    async def served_config(self) -> dict:
        """The model's config as the first server that answers serves it now (the score cache keys
        a version on it, read on every call, so that a deploy or a rollback is seen at once)."""
        failure: BaseException | None = None
        for client in self._connect():
            try:
                config = await client.get_model_config(self.model_name, headers=self.headers, **self._config_kwargs())
            except Exception as err:
                if (failure := self.translate(err)) is None:
                    raise
                continue
            return config.get("config", config)
        raise failure

    async def limits(self) -> dict[str, int]:
        """The asyncio twin of ``Transport.limits``."""
        if self._limits is not _UNKNOWN:
            return self._limits
        configs = []
        for client in self._connect():
            try:
                configs.append(
                    await client.get_model_config(self.model_name, headers=self.headers, **self._config_kwargs())
                )
            except Exception as err:  # down, or an older repository: requests will say what is wrong
                if self.translate(err) is None:
                    raise
        return self._settle_limits(configs)

    async def ready_models(self) -> dict[str, dict]:
        """The config of every ready model on the first server that answers: what a front end such
        as the rerank API can serve. When none answers, the last one's failure, translated."""
        failure: BaseException | None = None
        for replica, client in enumerate(self._connect()):
            try:
                index = await client.get_model_repository_index(headers=self.headers, **self._config_kwargs())
                index = index.get("models", []) if isinstance(index, dict) else index  # gRPC wraps it
                configs = {}
                for entry in index:
                    if entry.get("state") == "READY":
                        name = entry["name"]
                        config = await client.get_model_config(name, headers=self.headers, **self._config_kwargs())
                        configs[name] = config.get("config", config)  # gRPC wraps the config, HTTP does not
                return configs
            except Exception as err:  # down: try the next replica
                failure = self.translate(err, self.urls[replica])
                if failure is None:
                    raise
        raise failure

    async def is_ready(self) -> bool:
        """True when a replica has the model ready; False when none can be reached or none has it
        ready. What says something else is wrong (a wrong API key, a bug) is raised: it would not
        mend by waiting, as "not ready" promises."""
        for replica, client in enumerate(self._connect()):
            try:
                if await client.is_model_ready(self.model_name, headers=self.headers, **self._ready_kwargs()):
                    return True
            except Exception as err:
                error = self.translate(err, self.urls[replica])
                if error is None:
                    raise
                if not isinstance(error, (*FAILOVER_ERRORS, RerankTimeoutError)):
                    raise error from err
        return False

    async def close(self) -> None:
        if self._clients is not None:
            for client in self._clients:
                await client.close()
            self._clients = None


_grpc_pid: int | None = None  # the process whose transports use gRPC


def _check_grpc_usable() -> None:
    """gRPC cannot run in a process forked from one that used it: grpc's threads are not copied by
    fork, and its asyncio channels hang there (grpc's own limit). Said at once instead."""
    global _grpc_pid
    if _grpc_pid is not None and _grpc_pid != os.getpid():
        raise RerankInputError(
            "this process was forked from one that used gRPC, which grpc does not support (its channels "
            "would hang here): start worker processes with multiprocessing's 'spawn' or 'forkserver' method, "
            "or use an http:// URL in forked workers"
        )
    _grpc_pid = os.getpid()


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first failure of a task group (nested groups opened), which the caller raises."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
