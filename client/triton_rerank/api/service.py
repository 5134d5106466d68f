"""What every route of the rerank API shares: which rerankers Triton serves under which names,
what a request may ask of them (the operator's long-document policies and row budget), and scoring
a query against documents on one of them, with Triton's failures turned into the API's
(``ApiError``). It holds no model: it calls Triton through the project's asyncio client, so
replicas, failover, retries and request splitting are the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

import triton_rerank.protocol as protocol
from triton_rerank.api.schemas import ApiError
from triton_rerank.api.settings import ApiSettings
from triton_rerank.client import AsyncTritonRerankFunction
from triton_rerank.errors import (
    InvalidScoresError,
    ModelNotReadyError,
    RerankAuthError,
    RerankError,
    RerankInputError,
    RerankTimeoutError,
    ServerOverloadedError,
    ServerUnavailableError,
)
from triton_rerank.options import RerankOptions
from triton_rerank.score_cache import ScoreCache
from triton_rerank.transport import AsyncTransport

log = logging.getLogger(__name__)
# How often an unknown model name makes the service look at Triton's models again.
REFRESH_AFTER_S = 5.0


@dataclass(frozen=True)
class ServedModel:
    """One reranker ensemble on Triton, and what /info says about it."""

    name: str
    max_length: int | None  # tokens per (query, document) pair, from its tokenizer step
    max_rows_per_request: int | None
    counts_tokens: bool = False  # it outputs TOKENS (each pair's tokens), so usage can be reported


@dataclass
class RerankService:
    """The rerankers on ``triton_url`` under their own names and the ``aliases`` (alias -> name).

    Args:
        triton_url: Triton's URL(s), as the client takes them (gRPC is the fast path).
        default_model: What a request that names no model gets (TEI's and, optionally, Jina's).
        aliases: Other names for served models, e.g. ``{"rerank-v3.5": "reranker"}``.
        timeout_s: Triton request timeout.
        batch_size: Documents per Triton request (more are split, up to the server's limit).
        settings: The operator's long-document policies and row budget (``ApiSettings``).
        score_cache: The pair scores' cache (``triton_rerank.score_cache``), or None.
    """

    triton_url: str | Sequence[str]
    default_model: str = protocol.RERANKER
    aliases: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    batch_size: int | None = None
    settings: ApiSettings = field(default_factory=ApiSettings)
    score_cache: ScoreCache | None = None  # shared by every model's client (keys name the model)
    models: dict[str, ServedModel] = field(default_factory=dict, init=False)
    _clients: dict[str, AsyncTritonRerankFunction] = field(default_factory=dict, init=False)
    failure: RerankError | None = field(default=None, init=False)  # why Triton did not answer the last refresh
    _refreshed_at: float = field(default=float("-inf"), init=False)
    _refresh_lock: asyncio.Lock | None = field(default=None, init=False)
    rows_in_use: int = field(default=0, init=False)  # rows requests have on Triton now (``admitted``)

    async def refresh(self) -> dict[str, ServedModel]:
        """Ask Triton which rerankers it serves now (an ensemble with QUERY and DOCUMENTS in and
        SCORES out), with their limits."""
        transport = AsyncTransport(self.triton_url, self.default_model, timeout_s=min(self.timeout_s, 10.0))
        self._refreshed_at = time.monotonic()
        try:
            configs = await transport.ready_models()
        except RerankError as err:  # no answer: keep what was known (a restart should not empty the list)
            self.failure = err
            return self.models
        finally:
            await transport.close()
        self.failure = None
        models = {}
        for name, config in configs.items():
            inputs = {tensor["name"] for tensor in config.get("input", [])}
            outputs = {tensor["name"] for tensor in config.get("output", [])}
            if config.get("platform") != "ensemble" or inputs != set(protocol.RERANKER_INPUTS):
                continue
            if protocol.SCORES not in outputs:
                continue
            steps = config.get("ensemble_scheduling", {}).get("step", [])
            tokenizer = configs.get(steps[0]["model_name"], {}) if steps else {}
            models[name] = ServedModel(
                name=name,
                max_length=_int_parameter(tokenizer, protocol.MAX_LENGTH),
                max_rows_per_request=_int_parameter(config, protocol.MAX_ROWS_PER_REQUEST),
                counts_tokens=protocol.TOKENS in outputs,
            )
        self.models = models
        return self.models

    async def current(self) -> dict[str, ServedModel]:
        """The served models, looked up again at most every ``REFRESH_AFTER_S`` (for /info and
        /v1/models, which any caller may ask for as often as it likes)."""
        if time.monotonic() - self._refreshed_at > REFRESH_AFTER_S:
            self._refresh_lock = self._refresh_lock or asyncio.Lock()
            async with self._refresh_lock:  # many requests at once: one look at Triton
                if time.monotonic() - self._refreshed_at > REFRESH_AFTER_S:
                    await self.refresh()
        return self.models

    def names(self) -> list[str]:
        """Every name a request may use: the served models and the aliases that point at one."""
        return sorted(self.models) + sorted(a for a, target in self.aliases.items() if target in self.models)

    async def resolve(self, requested: str | None) -> ServedModel:
        """The served model that ``requested`` (a name, an alias, or None for the default) means;
        404 naming the models served when there is none."""
        name = self.aliases.get(requested, requested) if requested else self.default_model
        if name not in self.models:  # new since the last look, perhaps
            await self.current()
        if name not in self.models and self.failure is not None:
            raise api_error(self.failure)
        if name not in self.models:
            served = ", ".join(self.names()) or "none"
            raise ApiError("not_found", f"model {requested or name!r} is not served here; models served: {served}")
        return self.models[name]

    @contextlib.contextmanager
    def admitted(self, rows: int) -> Iterator[None]:
        """Hold ``rows`` of ``settings.max_concurrent_rows`` while the ``with`` lasts: one 1,000-document
        request weighs what it costs, and one that does not fit now is refused at once (429), never
        queued (TEI's permits, per pair)."""
        limit = self.settings.max_concurrent_rows
        if self.rows_in_use + rows > limit:
            raise ApiError(
                "overloaded",
                f"the reranker is busy with {self.rows_in_use:,} of its {limit:,} rows; these {rows:,} do not fit "
                "now: try again later",
            )
        self.rows_in_use += rows
        try:
            yield
        finally:
            self.rows_in_use -= rows

    def options(
        self, model: ServedModel, query: str, documents: list[str], *, long_documents: str | None = None, **choices
    ) -> tuple[RerankOptions, int]:
        """What a request asked for (``long_documents`` and the other ``RerankOptions`` fields), within
        what the operator allows: a policy among ``settings.allowed_policies()``, at most
        ``settings.max_rows_per_request`` rows on Triton. Anything else is refused before any call.
        Returns the options and the rows the documents may become on Triton (one each, or up to
        their windows)."""
        settings = self.settings
        policy = long_documents or settings.long_documents
        if policy not in settings.allowed_policies():
            allowed = ", ".join(settings.allowed_policies())
            raise ApiError("invalid", f"long_documents {policy!r} is not allowed by this service; allowed: {allowed}")
        chunks = {"max_chunks_per_doc": settings.max_chunks_per_doc} if policy in protocol.WINDOWED_POLICIES else {}
        try:
            options = RerankOptions(long_documents=policy, **chunks, **choices)
        except RerankError as err:
            raise ApiError("invalid", str(err)) from None
        costs = options.row_costs(query)
        if costs is None:
            return options, len(documents)
        rows = sum(costs({protocol.MAX_LENGTH: model.max_length or 0}, [d.encode("utf-8") for d in documents]))
        if rows > settings.max_rows_per_request:
            raise ApiError(
                "invalid",
                f"long_documents {policy!r} may read these {len(documents):,} documents as {rows:,} windows "
                f"(up to {options.chunks_per_doc} per document longer than the model reads); this service "
                f"takes at most {settings.max_rows_per_request:,} per request: send fewer or shorter documents",
            )
        return options, rows

    async def logits(
        self, model: ServedModel, query: str, documents: list[str], options: RerankOptions
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One raw score (the model's logit) per document, in input order, and each pair's token
        count (None for a model exported without the TOKENS output)."""
        client = self.client(model.name)
        try:
            found = await client.score_details(query, documents, tokens=model.counts_tokens, options=options)
            return found.scores, found.tokens
        except RerankError as err:
            raise api_error(err) from err

    def client(self, name: str) -> AsyncTritonRerankFunction:
        """One client per served model, kept: its connections and what it learnt of the server."""
        if name not in self._clients:
            options = {"batch_size": self.batch_size} if self.batch_size else {}
            self._clients[name] = AsyncTritonRerankFunction(
                self.triton_url, model_name=name, timeout_s=self.timeout_s, score_cache=self.score_cache, **options
            )
        return self._clients[name]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        if self.score_cache is not None:
            await self.score_cache.close()


def api_error(err: RerankError) -> ApiError:
    """The client's error as the API's: input errors keep Triton's words (they name what is wrong
    with the request); the others say what happened without Triton's address, which is logged."""
    if isinstance(err, RerankInputError):
        return ApiError("invalid", _server_words(err))
    log.warning("Triton failed a rerank request: %s", err)
    if isinstance(err, ServerOverloadedError):
        return ApiError("overloaded", "the reranker is overloaded; try again later")
    if isinstance(err, RerankTimeoutError):
        return ApiError("timeout", "the reranker did not answer in time")
    if isinstance(err, (ServerUnavailableError, ModelNotReadyError)):
        return ApiError("unavailable", "the reranker is unavailable; try again later")
    if isinstance(err, InvalidScoresError):  # says what is wrong, and holds no address
        return ApiError("backend", str(err))
    if isinstance(err, RerankAuthError):
        return ApiError("backend", "this service is not authorised by its Triton server (its API key is wrong)")
    return ApiError("backend", "the reranker failed on this request")


def _server_words(err: RerankInputError) -> str:
    """What Triton said about a rejected request, without the client's preamble (Triton's address)."""
    cause = err.__cause__
    message = cause.message() if cause is not None and hasattr(cause, "message") else str(err)
    if message.startswith("in ensemble"):  # "in ensemble 'reranker', <the step's message>"
        message = message.split(", ", 1)[-1]
    return message


def _int_parameter(config: dict, name: str) -> int | None:
    value = config.get("parameters", {}).get(name, {}).get("string_value", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
