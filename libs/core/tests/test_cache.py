"""Result caches: keys bind input and model version, LRU and TTL bounds hold, Redis is shared state."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from novamind.core.cache import InProcessCache, RedisCache, cache_key, make_cache
from novamind.devtools.net import free_port

REDIS_URL = os.environ.get("NOVAMIND_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

WEEK = bytes(range(256)) * 40


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- cache_key ------------------------------------------------------------------------------------


def test_key_is_a_sha256_hex_digest_stable_across_calls() -> None:
    key = cache_key("pat-m@1.0.0", WEEK)

    assert key == cache_key("pat-m@1.0.0", WEEK)
    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")


def test_key_changes_with_the_model_version_and_with_the_input() -> None:
    key = cache_key("pat-m@1.0.0", WEEK)

    assert cache_key("pat-m@1.0.1", WEEK) != key
    assert cache_key("pat-m@1.0.0", WEEK[:-1] + b"\x00") != key


def test_key_does_not_collide_when_bytes_move_between_version_and_input() -> None:
    assert cache_key("ab", b"c") != cache_key("a", b"bc")


# --- InProcessCache -------------------------------------------------------------------------------


async def test_in_process_cache_returns_what_was_stored_and_misses_otherwise() -> None:
    cache = InProcessCache(name="test")
    key = cache_key("v1", WEEK)

    await cache.set(key, b"result")

    assert await cache.get(key) == b"result"
    assert await cache.get(cache_key("v2", WEEK)) is None


async def test_in_process_cache_round_trips_json() -> None:
    cache = InProcessCache(name="test")
    value = {"sleep": {"efficiency_percent": 87.5}, "nights": [1, 2], "note": None}

    await cache.set_json("k", value)

    assert await cache.get_json("k") == value
    assert await cache.get_json("absent") is None


async def test_in_process_cache_evicts_the_least_recently_used_entry_beyond_its_bound() -> None:
    cache = InProcessCache(name="test", max_entries=2)
    await cache.set("a", b"1")
    await cache.set("b", b"2")
    await cache.get("a")  # "b" is now the least recently used

    await cache.set("c", b"3")

    assert len(cache) == 2
    assert await cache.get("b") is None
    assert await cache.get("a") == b"1"
    assert await cache.get("c") == b"3"


async def test_in_process_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    cache = InProcessCache(name="test", ttl_seconds=60, clock=clock)
    await cache.set("default-ttl", b"x")
    await cache.set("short-ttl", b"y", ttl_seconds=5)

    clock.now += 5
    assert await cache.get("short-ttl") is None
    assert await cache.get("default-ttl") == b"x"

    clock.now += 55
    assert await cache.get("default-ttl") is None
    assert len(cache) == 0


async def test_in_process_delete_forgets_the_key() -> None:
    cache = InProcessCache(name="test")
    await cache.set("k", b"x")

    await cache.delete("k")
    await cache.delete("never-stored")

    assert await cache.get("k") is None


def test_in_process_cache_rejects_non_positive_bounds() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        InProcessCache(max_entries=0)
    with pytest.raises(ValueError, match="ttl_seconds"):
        InProcessCache(ttl_seconds=0)


def test_make_cache_without_a_redis_url_is_in_process() -> None:
    assert isinstance(make_cache("", prefix="novamind:test:"), InProcessCache)


# --- RedisCache (real Redis) ----------------------------------------------------------------------


@pytest_asyncio.fixture
async def redis_cache() -> AsyncIterator[RedisCache]:
    """A cache on the local Redis under a prefix unique to the test; its keys are removed after."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__}: {exc})")
    prefix = f"novamind:test:{uuid.uuid4().hex}:"
    cache = RedisCache(client, prefix=prefix, name="test", ttl_seconds=60)
    try:
        yield cache
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_cache_returns_what_was_stored_and_a_new_model_version_misses(
    redis_cache: RedisCache,
) -> None:
    key = cache_key("pat-m@1.0.0", WEEK)

    await redis_cache.set(key, b"\x00embedding\xff")

    assert await redis_cache.get(key) == b"\x00embedding\xff"
    assert await redis_cache.get(cache_key("pat-m@1.1.0", WEEK)) is None


async def test_redis_cache_round_trips_json_under_its_prefix(redis_cache: RedisCache) -> None:
    from redis.asyncio import Redis

    value = {"embedding": [0.25, -1.5], "model": {"version": "1.0.0"}}

    await redis_cache.set_json("k", value)

    assert await redis_cache.get_json("k") == value
    async with Redis.from_url(REDIS_URL) as raw:
        assert (
            await raw.get(f"{redis_cache.prefix}k")
            == b'{"embedding":[0.25,-1.5],"model":{"version":"1.0.0"}}'
        )


async def test_redis_entries_carry_the_ttl_asked_for(redis_cache: RedisCache) -> None:
    from redis.asyncio import Redis

    await redis_cache.set("default-ttl", b"x")
    await redis_cache.set("short-ttl", b"y", ttl_seconds=5)

    async with Redis.from_url(REDIS_URL) as raw:
        default_ms = await raw.pttl(f"{redis_cache.prefix}default-ttl")
        short_ms = await raw.pttl(f"{redis_cache.prefix}short-ttl")
    assert 55_000 < default_ms <= 60_000
    assert 0 < short_ms <= 5_000


async def test_redis_delete_forgets_the_key(redis_cache: RedisCache) -> None:
    await redis_cache.set("k", b"x")

    await redis_cache.delete("k")

    assert await redis_cache.get("k") is None


async def test_unreachable_redis_misses_and_drops_writes_instead_of_failing() -> None:
    cache = RedisCache.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix="novamind:test:", name="test")
    try:
        await cache.set("k", b"x")
        assert await cache.get("k") is None
        assert await cache.get_json("k") is None
    finally:
        await cache.close()


async def test_make_cache_with_a_redis_url_is_redis() -> None:
    cache = make_cache(REDIS_URL, prefix="novamind:test:")
    try:
        assert isinstance(cache, RedisCache)
    finally:
        await cache.close()
