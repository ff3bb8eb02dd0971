"""Per-client request rate limits (the ``limits`` library, moving-window strategy).

One GraphQL operation is one hit. The client is the token's subject, or the client address when
the caller is anonymous. Counters live in process memory, or in Redis when a Redis URL is given,
so every gateway replica draws from the same allowance.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass

import limits
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from novamind.core.errors import RateLimitedError, ValidationError


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a hit was admitted; ``retry_after`` in whole seconds when it was not."""

    allowed: bool
    retry_after: int = 0
    limit: str = ""


def _storage_uri(redis_url: str) -> str:
    if not redis_url:
        return "async+memory://"
    scheme, sep, rest = redis_url.partition("://")
    if not sep or scheme not in ("redis", "rediss"):
        raise ValidationError("expected a redis:// or rediss:// URL", field="redis_url")
    return f"async+{scheme}://{rest}"


class RequestRateLimiter:
    """Moving-window limits per client key.

    ``rate_limit`` reads like ``"600/minute"`` or ``"10/second;600/minute"``. Raises
    :class:`ValidationError` for an unreadable limit.
    """

    def __init__(self, rate_limit: str, *, redis_url: str = "", namespace: str = "novamind-gateway") -> None:
        try:
            self._items = limits.parse_many(rate_limit)
        except ValueError:
            raise ValidationError("not a rate limit such as 600/minute", field="rate_limit") from None
        options = {"implementation": "redispy"} if redis_url else {}
        self._storage = storage_from_string(_storage_uri(redis_url), **options)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._namespace = namespace

    @property
    def backend(self) -> str:
        """``memory`` or ``redis``."""
        return "redis" if "redis" in type(self._storage).__name__.lower() else "memory"

    async def hit(self, client: str) -> RateDecision:
        """Count one operation for ``client``; refused when any configured limit is exhausted."""
        for item in self._items:
            if not await self._limiter.hit(item, self._namespace, client):
                stats = await self._limiter.get_window_stats(item, self._namespace, client)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                return RateDecision(False, wait, str(item))
        return RateDecision(True)

    async def check(self, client: str) -> None:
        """Count one operation; raises :class:`RateLimitedError` (with ``retryAfter`` seconds) when over."""
        decision = await self.hit(client)
        if not decision.allowed:
            raise RateLimitedError(
                f"rate limit of {decision.limit} exceeded; retry after {decision.retry_after} s",
                details={"retryAfter": decision.retry_after},
            )

    async def reset(self, client: str) -> None:
        """Forget ``client``'s counters (operations tooling and tests)."""
        for item in self._items:
            await self._limiter.clear(item, self._namespace, client)

    async def ping(self) -> None:
        """Raises when the counter storage is unreachable (readiness)."""
        healthy = self._storage.check()
        if not (await healthy if inspect.isawaitable(healthy) else healthy):
            raise ConnectionError(f"rate-limit storage ({self.backend}) unreachable")
