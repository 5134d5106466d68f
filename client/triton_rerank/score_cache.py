"""A per-pair score cache that every path shares: the clients, the pipeline (through its client) and
the rerank API. Off unless asked for.

A key is the digest of what decides a score: the model's name, the version that serves (a digest of
its config as served, which every export and every ``deploy`` or rollback changes), every request
option that changes a score (max length, long-document policy, instruction, ...) and the exact
query and document. A value is what the server answered for the pair: its float32 score, the
tokens read and the span that decided, so a hit is bit for bit what was computed.

Two stores: ``MemoryScoreCache`` (this process, least recently used out first, bounded in bytes)
and ``RedisScoreCache`` (a Redis or Valkey shared by API replicas). A Redis that stops answering
degrades to computing: lookups miss, writes are dropped, a warning is logged once per outage and
the ``errors`` count rises; it is tried again after ``RETRY_S``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
import time
from collections import OrderedDict

import triton_rerank.protocol as protocol
from triton_rerank.errors import RerankInputError

log = logging.getLogger(__name__)

VALUE = struct.Struct("<fqqq")  # score (float32), tokens, span start, span end
KEY_PREFIX = b"triton-rerank:score:v1:"
ENTRY_OVERHEAD = 100  # bytes an entry costs beyond its key and value (the dict slot, the objects)
DEFAULT_MEMORY_BYTES = 256 << 20
RETRY_S = 5.0
Value = tuple[float, int, int, int]


def config_version(config: dict) -> str | None:
    """A digest of what a model's config says decides its scores: its name, its parameters (among
    them the export's ``model_id``) and, for an ensemble, the members it runs; the same over HTTP and
    gRPC. None for a cascade: its scores depend on the other documents of a call, so no pair's score
    can be cached."""
    parameters = {k: v.get("string_value") for k, v in config.get("parameters", {}).items()}
    if protocol.CASCADE_K in parameters:
        return None
    steps = [
        (step.get("model_name"), str(step.get("model_version", -1)))
        for step in config.get("ensemble_scheduling", {}).get("step", [])
    ]
    described = json.dumps([config.get("name"), parameters, steps], sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:16]


class CacheCounts:
    """Hits, misses and store errors since start (the API exports them as metrics)."""

    def __init__(self) -> None:
        self.hits = self.misses = self.errors = 0

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "errors": self.errors}


class ScoreCache:
    """What both stores share: keys, values and counts. ``get_many`` / ``put_many`` are theirs."""

    kind = "none"

    def __init__(self) -> None:
        self.counts = CacheCounts()

    @staticmethod
    def keys(model: str, version: str, parameters: dict | None, query: str, documents: list[str]) -> list[bytes]:
        head = json.dumps([model, version, parameters or {}, query], sort_keys=True, ensure_ascii=False).encode()
        prefix = hashlib.sha256(head).digest()
        return [KEY_PREFIX + hashlib.sha256(prefix + d.encode("utf-8")).digest() for d in documents]

    @staticmethod
    def pack(value: Value) -> bytes:
        return VALUE.pack(*value)

    @staticmethod
    def unpack(raw: bytes) -> Value:
        return VALUE.unpack(raw)

    def _count(self, found: list) -> list:
        hits = sum(v is not None for v in found)
        self.counts.hits += hits
        self.counts.misses += len(found) - hits
        return found

    async def start(self) -> None:
        """Called once before the first lookup: a store that cannot be reached at start is refused."""
        return None

    async def get_many(self, keys: list[bytes]) -> list[Value | None]:
        raise NotImplementedError

    async def put_many(self, items: list[tuple[bytes, Value]]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class MemoryScoreCache(ScoreCache):
    """In this process; the least recently used pairs leave first once ``max_bytes`` is reached."""

    kind = "memory"

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise RerankInputError(f"a memory score cache needs max_bytes >= 1, got {max_bytes!r}")
        super().__init__()
        self.max_bytes, self.bytes, self.evictions = max_bytes, 0, 0
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()  # API workers and blocking clients may share one

    async def get_many(self, keys: list[bytes]) -> list[Value | None]:
        with self._lock:
            found = []
            for key in keys:
                raw = self._entries.get(key)
                if raw is not None:
                    self._entries.move_to_end(key)
                found.append(None if raw is None else self.unpack(raw))
        return self._count(found)

    async def put_many(self, items: list[tuple[bytes, Value]]) -> None:
        with self._lock:
            for key, value in items:
                if key in self._entries:
                    continue
                self._entries[key] = self.pack(value)
                self.bytes += len(key) + VALUE.size + ENTRY_OVERHEAD
            while self.bytes > self.max_bytes and self._entries:
                old, _ = self._entries.popitem(last=False)
                self.bytes -= len(old) + VALUE.size + ENTRY_OVERHEAD
                self.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)


class RedisScoreCache(ScoreCache):
    """A Redis (or Valkey) at ``url``, shared by every process that names it. ``ttl_s``: how long a
    pair is kept (0: until Redis evicts it by its own ``maxmemory-policy``)."""

    kind = "redis"

    def __init__(self, url: str, *, ttl_s: int = 0, timeout_s: float = 1.0) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as err:
            raise ImportError(
                f"a Redis score cache needs the 'cache' extra: pip install 'triton-rerank[cache]' ({err})"
            ) from err
        super().__init__()
        self.url, self.ttl_s = url, ttl_s
        try:
            self._client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        except ValueError as err:
            raise RerankInputError(f"--score-cache {url!r} is not a Redis URL (redis://host:port/db): {err}") from err
        self._down_since: float | None = None
        self._started = False

    async def start(self) -> None:
        """Refuse to start on a Redis that does not answer: a typo must not silently mean no cache.
        Once started, an outage degrades to computing."""
        import redis

        if self._started:
            return
        try:
            await self._client.ping()
        except (redis.RedisError, OSError) as err:
            raise RerankInputError(f"the score cache at {self.url} does not answer: {err}") from err
        self._started = True

    async def get_many(self, keys: list[bytes]) -> list[Value | None]:
        if not keys or self._resting():
            return self._count([None] * len(keys))
        raws = await self._guarded(self._client.mget(keys))
        found = [None] * len(keys) if raws is None else [None if r is None else self.unpack(r) for r in raws]
        return self._count(found)

    async def put_many(self, items: list[tuple[bytes, Value]]) -> None:
        if not items or self._resting():
            return
        pipeline = self._client.pipeline(transaction=False)
        for key, value in items:
            pipeline.set(key, self.pack(value), ex=self.ttl_s or None)
        await self._guarded(pipeline.execute())

    async def _guarded(self, call):
        import redis

        try:
            result = await call
        except (redis.RedisError, OSError) as err:
            self.counts.errors += 1
            if self._down_since is None:
                log.warning("score cache %s failed (%s): computing every score until it answers again", self.url, err)
            self._down_since = time.monotonic()
            return None
        if self._down_since is not None:
            log.warning("score cache %s answers again", self.url)
            self._down_since = None
        return result

    def _resting(self) -> bool:
        """While down, Redis is asked again only every ``RETRY_S``: a dead one costs no timeout per call."""
        if self._down_since is None or time.monotonic() - self._down_since >= RETRY_S:
            return False
        self.counts.errors += 1
        return True

    async def close(self) -> None:
        await self._client.aclose()


def score_cache(choice: str | ScoreCache | None, *, max_bytes: int = DEFAULT_MEMORY_BYTES) -> ScoreCache | None:
    """``None`` (off), ``"memory"``, ``"redis://..."`` / ``"rediss://..."`` / ``"valkey://..."``, or a cache."""
    if choice is None or isinstance(choice, ScoreCache):
        return choice
    if choice == "memory":
        return MemoryScoreCache(max_bytes)
    if isinstance(choice, str) and choice.split("://", 1)[0] in ("redis", "rediss", "unix", "valkey", "valkeys"):
        return RedisScoreCache(choice.replace("valkey", "redis", 1) if choice.startswith("valkey") else choice)
    raise RerankInputError(f"score_cache must be 'memory' or a redis:// URL, got {choice!r}")


def check_reachable(choice: str | None) -> None:
    """Before a server starts: a ``redis://`` choice must answer (a blocking ping), else a clear error."""
    cache = score_cache(choice)
    if not isinstance(cache, RedisScoreCache):
        return
    import redis

    try:
        redis.Redis.from_url(cache.url, socket_timeout=2, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as err:
        raise RerankInputError(f"--score-cache {cache.url}: no Redis answers there ({err})") from err
