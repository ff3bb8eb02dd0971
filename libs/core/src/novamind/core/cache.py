"""Result caches: model outputs keyed by a hash of the input and the model version.

A result is stored under :func:`cache_key` ``(model_version, payload)``, a SHA-256 over both, so
loading a new model version makes every earlier result unreachable (a miss) without a flush, and
the key reveals nothing about the input (no PHI in Redis keys).

Two backends share the :class:`ResultCache` protocol:

* :class:`InProcessCache` — a bounded LRU with per-entry TTL, for a single replica or tests;
* :class:`RedisCache` — Redis (``redis.asyncio``), shared by every replica, entries expire by
  Redis TTL; keys carry a prefix naming what is cached (``novamind:pat:analysis:``).

:func:`make_cache` picks Redis when a URL is configured (``NOVAMIND_REDIS_URL``) and the
in-process cache otherwise. A cache is an optimisation: when Redis is unreachable, reads are
misses and writes are dropped (both counted in ``novamind_cache_requests_total``), and the
caller computes the result as if nothing were cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import Counter

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: Default lifetime of a cached result (seconds).
DEFAULT_TTL_SECONDS = 24 * 60 * 60
#: Default bound of an in-process cache (entries).
DEFAULT_MAX_ENTRIES = 1024

CACHE_REQUESTS = Counter(
    "novamind_cache_requests_total",
    "Result-cache lookups and writes by outcome (hit, miss, write, error)",
    ["cache", "outcome"],
)


def cache_key(model_version: str, payload: bytes) -> str:
    """The cache key of ``payload`` under ``model_version``: 64 lowercase hex digits.

    SHA-256 over the length-prefixed UTF-8 model version followed by the payload bytes, so no
    (version, payload) pair can collide with another by moving bytes across the boundary.
    """
    version = model_version.encode("utf-8")
    digest = hashlib.sha256()
    digest.update(len(version).to_bytes(8, "big"))
    digest.update(version)
    digest.update(payload)
    return digest.hexdigest()


class ResultCache(Protocol):
    """Bytes or JSON values by key, each with a time to live; ``None`` means a miss."""

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or ``None`` when absent, expired or the backend is unreachable."""
        ...

    async def set(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        """Store ``value`` for ``ttl_seconds`` (the cache's default when ``None``)."""
        ...

    async def get_json(self, key: str) -> Any | None:
        """The stored JSON value decoded, or ``None`` on a miss (or an undecodable entry)."""
        ...

    async def set_json(self, key: str, value: Any, *, ttl_seconds: float | None = None) -> None:
        """Store ``value`` encoded as compact UTF-8 JSON. Raises ``TypeError`` if not JSON-able."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens when it is absent)."""
        ...

    async def close(self) -> None:
        """Release connections; the cache must not be used afterwards."""
        ...


class _JsonValues:
    """JSON on top of a bytes ``get``/``set``, shared by both backends."""

    name: str

    async def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def set(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        raise NotImplementedError

    async def get_json(self, key: str) -> Any | None:
        raw = await self.get(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            log.warning("cache %s held an undecodable entry; treated as a miss", self.name)
            return None

    async def set_json(self, key: str, value: Any, *, ttl_seconds: float | None = None) -> None:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")
        await self.set(key, encoded, ttl_seconds=ttl_seconds)


def _validated_ttl(ttl_seconds: float) -> float:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    return ttl_seconds


class InProcessCache(_JsonValues):
    """A least-recently-used cache of at most ``max_entries`` values, each expiring after its TTL.

    Not shared between processes. ``clock`` returns seconds (monotonic); tests may inject one.
    Raises ``ValueError`` for a non-positive bound or TTL.
    """

    def __init__(
        self,
        *,
        name: str = "default",
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.name = name
        self.max_entries = max_entries
        self.ttl_seconds = _validated_ttl(ttl_seconds)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            if entry is not None:
                del self._entries[key]
            CACHE_REQUESTS.labels(self.name, "miss").inc()
            return None
        self._entries.move_to_end(key)
        CACHE_REQUESTS.labels(self.name, "hit").inc()
        return entry[1]

    async def set(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        ttl = self.ttl_seconds if ttl_seconds is None else _validated_ttl(ttl_seconds)
        self._entries[key] = (self._clock() + ttl, bytes(value))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        CACHE_REQUESTS.labels(self.name, "write").inc()

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache(_JsonValues):
    """Values in Redis under ``prefix + key``, each with a Redis TTL (millisecond resolution).

    ``client`` is a ``redis.asyncio.Redis`` (see :meth:`from_url`). Connection and protocol
    errors are logged (type only) and counted; a read then misses and a write is dropped.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        name: str = "default",
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.name = name
        self.ttl_seconds = _validated_ttl(ttl_seconds)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str,
        name: str = "default",
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        timeout_seconds: float = 1.0,
    ) -> RedisCache:
        """A cache on a new client for ``url`` (``redis://host:port/db``); connects lazily.

        ``timeout_seconds`` bounds connecting and each command, so a dead Redis costs a request
        at most that long before the cache steps aside.
        """
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        return cls(client, prefix=prefix, name=name, ttl_seconds=ttl_seconds)

    def _failed(self, operation: str, exc: Exception) -> None:
        CACHE_REQUESTS.labels(self.name, "error").inc()
        log.warning("cache %s %s failed: %s", self.name, operation, type(exc).__name__)

    async def get(self, key: str) -> bytes | None:
        from redis.exceptions import RedisError

        try:
            value = await self._client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            return None
        CACHE_REQUESTS.labels(self.name, "miss" if value is None else "hit").inc()
        if value is None:
            return None
        # A client built with decode_responses=True hands back text; values are bytes here.
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        from redis.exceptions import RedisError

        ttl = self.ttl_seconds if ttl_seconds is None else _validated_ttl(ttl_seconds)
        try:
            await self._client.set(self.prefix + key, value, px=max(1, round(ttl * 1000)))
        except (RedisError, OSError) as exc:
            self._failed("set", exc)
            return
        CACHE_REQUESTS.labels(self.name, "write").inc()

    async def delete(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._client.delete(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed("delete", exc)

    async def close(self) -> None:
        await self._client.aclose()


def make_cache(
    redis_url: str,
    *,
    prefix: str,
    name: str = "default",
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> ResultCache:
    """Redis when ``redis_url`` is set (``CoreSettings.redis_url``), else an in-process LRU.

    ``prefix`` namespaces the Redis keys (``novamind:pat:analysis:``); ``name`` labels the
    cache's metrics; ``max_entries`` bounds only the in-process cache.
    """
    if redis_url:
        return RedisCache.from_url(redis_url, prefix=prefix, name=name, ttl_seconds=ttl_seconds)
    return InProcessCache(name=name, max_entries=max_entries, ttl_seconds=ttl_seconds)


__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_TTL_SECONDS",
    "InProcessCache",
    "RedisCache",
    "ResultCache",
    "cache_key",
    "make_cache",
]
