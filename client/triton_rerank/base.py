"""What the four clients (rerank and embed, asyncio and blocking) share: the options they take,
the transport they hold, and how a call's texts become requests: grouped by length, so that each
request is padded only to its own longest row, cut to what the server takes per request, sent
concurrently, and put back in input order. N texts in, N rows out, or an error.

The asyncio clients (``AsyncClient``) hold that logic; a blocking client (``BlockingClient``) is a
thin driver that runs its asyncio twin's calls on the shared loop of ``triton_rerank.loop``. That
makes the blocking clients safe to share between threads."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import numpy as np

import triton_rerank.loop as loop
from triton_rerank.endpoints import DEFAULT_URL
from triton_rerank.errors import RerankInputError
from triton_rerank.protocol import CASCADE_K, MAX_ROWS_PER_REQUEST
from triton_rerank.transport import DEFAULT_MAX_IN_FLIGHT, DEFAULT_RETRY_S, AsyncTransport, Batch, Output

# Texts per request: the server's default max_rows_per_request. The dynamic batcher cannot merge
# requests padded to different lengths, and the runner already runs each request in
# length-sorted slices, so on a CPU one large request beats several small ones (docs/performance.md).
DEFAULT_BATCH_SIZE = 128

MakeBatch = Callable[[list[bytes]], Batch]  # one length group -> the request's string inputs and rows
Costs = Callable[[dict[str, int]], list[int]]  # the server's limits -> the rows each text may become there


def check_strings(values: object, what: str) -> list[bytes]:
    """``values`` must be a list (any sequence but a string) of str; returns them UTF-8 encoded."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise RerankInputError(f"{what} must be a list of str, got {type(values).__name__}")
    return [utf8(value, f"{what}[{i}]") for i, value in enumerate(values)]


def utf8(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise RerankInputError(f"{what} must be a str, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RerankInputError(f"{what} cannot be encoded as UTF-8: {err}") from err


def check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RerankInputError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def rows_per_request(batch_size: int, limits: dict[str, int]) -> int:
    """``batch_size``, or less when the server takes fewer rows per request: an honest large
    request is split, never refused. A cascade ranks the documents of a request among themselves,
    so it gets as many of a call's documents in one request as it takes."""
    server_limit = limits.get(MAX_ROWS_PER_REQUEST)
    if server_limit and CASCADE_K in limits:
        return server_limit
    return min(batch_size, server_limit) if server_limit else batch_size


def length_groups(
    items: list[bytes], size: int, costs: list[int] | None = None, budget: int | None = None
) -> tuple[np.ndarray, list[list[bytes]]]:
    """``items`` ordered by length and cut into groups of at most ``size``, and that order: each
    request then holds texts of similar length, so padding to its longest wastes little work. With
    ``costs`` (the rows each item may become on the server), a group also costs at most ``budget``."""
    order = np.argsort(np.array([len(item) for item in items], dtype=np.int64), kind="stable")
    groups: list[list[bytes]] = []
    spent = 0
    for i in order:
        cost = costs[i] if costs is not None else 1
        if not groups or len(groups[-1]) == size or (budget and costs is not None and spent + cost > budget):
            groups.append([])
            spent = 0
        groups[-1].append(items[i])
        spent += cost
    return order, groups


def in_input_order(order: np.ndarray, parts: list[np.ndarray], *, flat: bool = True) -> np.ndarray:
    """Undo ``length_groups``: rows of ``parts`` (in grouped order) put back where ``order`` took
    them; ``flat`` gives one value per row (scores), else rows of values (embeddings)."""
    if not parts:
        return np.empty(0 if flat else (0, 0), np.float32)
    grouped = np.concatenate([part.reshape(len(part), -1) for part in parts])
    out = np.empty_like(grouped)
    out[order] = grouped
    return out.reshape(-1) if flat else out


class AsyncClient:
    """The options every client takes; ``await`` on every call. See the concrete classes for what
    they call.

    Args:
        url: Server URL; the scheme picks HTTP or gRPC (default: ``grpc://127.0.0.1:8001``).
            Several URLs (a list, or separated by commas) are replicas: requests spread over them
            and fail over when one is down.
        model_name: The ensemble to call.
        batch_size: Most texts per Triton request; more go in several requests. Above the
            server's own limit (its ``max_rows_per_request``, read once) the server's wins.
        timeout_s: Connection and request timeout.
        headers: Extra HTTP headers / gRPC metadata sent with every request.
        max_in_flight: Most requests of one call on the wire at once.
        retry_s: How long a request is tried again while no server can serve it (a restart).
        api_key: The server's API key (default: ``$TRITON_RERANK_API_KEY``).
    """

    DEFAULT_MODEL_NAME = ""

    def __init__(
        self,
        url: str | Sequence[str] = DEFAULT_URL,
        *,
        model_name: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_s: float = DEFAULT_RETRY_S,
        api_key: str | None = None,
    ) -> None:
        self.batch_size = check_batch_size(batch_size)
        self._transport = AsyncTransport(
            url,
            model_name or self.DEFAULT_MODEL_NAME,
            timeout_s=timeout_s,
            headers=headers,
            max_in_flight=max_in_flight,
            retry_s=retry_s,
            api_key=api_key,
        )

    async def _send(
        self,
        encoded: list[bytes],
        make_batch: MakeBatch,
        output: Output,
        *,
        flat: bool,
        parameters: dict | None = None,
        costs: Costs | None = None,
    ) -> np.ndarray:
        limits = await self._transport.limits() if len(encoded) > 1 or costs else {}
        size = rows_per_request(self.batch_size, limits)
        budget = limits.get(MAX_ROWS_PER_REQUEST)
        order, groups = length_groups(encoded, size, costs(limits) if costs else None, budget)
        batches = [make_batch(group) for group in groups]
        return in_input_order(order, await self._transport.infer_many(batches, output, parameters), flat=flat)

    async def limits(self) -> dict[str, int]:
        """What the servers declare of ``protocol.LIMIT_PARAMETERS`` for this model (read once)."""
        return await self._transport.limits()

    async def is_ready(self) -> bool:
        """True when a server answers and the model is ready there; False when none does."""
        return await self._transport.is_ready()

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class BlockingClient:
    """A blocking client: its asyncio twin (``ASYNC_TYPE``, made with the same arguments) run on the
    shared loop; safe to call from several threads at once. A context manager."""

    ASYNC_TYPE: type[AsyncClient] = AsyncClient

    def __init__(self, *args, **kwargs) -> None:
        self._async = self.ASYNC_TYPE(*args, **kwargs)
        # A client its user never closed still closes its connections (when collected, or at exit),
        # so aiohttp has no unclosed session to warn about.
        self._finalizer = weakref.finalize(self, loop.close_soon, self._async.close)

    @property
    def batch_size(self) -> int:
        return self._async.batch_size

    def limits(self) -> dict[str, int]:
        return loop.run(self._async.limits())

    def is_ready(self) -> bool:
        """True when a server answers and the model is ready there; False when none does."""
        return loop.run(self._async.is_ready())

    def close(self) -> None:
        self._finalizer.detach()
        loop.run(self._async.close())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
