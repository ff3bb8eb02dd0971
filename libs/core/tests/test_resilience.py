"""Retries never outlive the caller's deadline; breakers open, reject, half-open and close."""

from __future__ import annotations

import time

import pytest

from novamind.core.errors import ServiceUnavailableError, ValidationError
from novamind.core.resilience import (
    BreakerOpenError,
    CircuitBreakers,
    RetryPolicy,
    deadline_scope,
    effective_timeout,
    retry_async,
    time_remaining,
)


async def test_transient_failures_are_retried_until_success() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ServiceUnavailableError("down")
        return "ok"

    assert (
        await retry_async(flaky, RetryPolicy(max_attempts=5, initial_backoff=0.001, max_backoff=0.002))
        == "ok"
    )
    assert calls == 3


async def test_non_retryable_errors_are_raised_at_once() -> None:
    calls = 0

    async def bad_input() -> None:
        nonlocal calls
        calls += 1
        raise ValidationError("bad")

    with pytest.raises(ValidationError):
        await retry_async(bad_input, RetryPolicy(max_attempts=5, initial_backoff=0.001))
    assert calls == 1


async def test_attempts_are_bounded() -> None:
    calls = 0

    async def always_down() -> None:
        nonlocal calls
        calls += 1
        raise ServiceUnavailableError("down")

    with pytest.raises(ServiceUnavailableError):
        await retry_async(always_down, RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.001))
    assert calls == 4


async def test_retry_never_outlives_the_deadline() -> None:
    attempts: list[float] = []

    async def always_down() -> None:
        attempts.append(time.monotonic())
        raise ServiceUnavailableError("down")

    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.2)
    with deadline_scope(0.5) as deadline, pytest.raises(ServiceUnavailableError):
        await retry_async(always_down, policy)
    assert deadline is not None
    # Every attempt starts before the deadline: no backoff is begun that would end after it.
    assert max(attempts) < deadline, f"an attempt started {max(attempts) - deadline:.3f} s after the deadline"
    # The caller gets its error back at the deadline, give or take event-loop latency.
    assert time.monotonic() - deadline < 0.05
    assert 1 < len(attempts) < 1000


async def test_deadline_scopes_only_narrow() -> None:
    assert time_remaining() is None
    with deadline_scope(1.0):
        with deadline_scope(10.0):
            remaining = time_remaining()
            assert remaining is not None and remaining <= 1.0
        assert effective_timeout(5.0) is not None and effective_timeout(5.0) <= 1.0  # type: ignore[operator]
    assert effective_timeout(5.0) == 5.0


async def test_breaker_opens_rejects_half_opens_and_closes() -> None:
    breakers = CircuitBreakers(failure_threshold=3, recovery_seconds=0.2)
    calls = 0
    healthy = False

    async def dependency() -> str:
        nonlocal calls
        calls += 1
        if not healthy:
            raise ServiceUnavailableError("down")
        return "ok"

    for _ in range(3):
        with pytest.raises(ServiceUnavailableError):
            await breakers.call("forecasting", dependency)
    assert await breakers.state("forecasting") == "opened"

    with pytest.raises(ServiceUnavailableError, match="circuit breaker open"):
        await breakers.call("forecasting", dependency)
    assert calls == 3, "an open breaker must not call the dependency"

    healthy = True
    deadline = time.monotonic() + 2.0
    result = None
    while result is None and time.monotonic() < deadline:
        try:
            result = await breakers.call("forecasting", dependency)
        except ServiceUnavailableError:
            await _tick()
    assert result == "ok"
    assert await breakers.state("forecasting") == "closed"


async def test_bad_requests_do_not_open_the_breaker() -> None:
    breakers = CircuitBreakers(failure_threshold=2, recovery_seconds=60)

    async def rejects() -> None:
        raise ValidationError("bad")

    for _ in range(5):
        with pytest.raises(ValidationError):
            await breakers.call("pharmacogenomics", rejects)
    assert await breakers.state("pharmacogenomics") == "closed"


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.02)


async def test_an_open_breaker_is_not_retried_within_the_call() -> None:
    breakers = CircuitBreakers(failure_threshold=1, recovery_seconds=60)
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ServiceUnavailableError("down", service="dep")

    with pytest.raises(ServiceUnavailableError):
        await breakers.call("dep", failing)
    attempts = 0

    async def through_breaker() -> None:
        nonlocal attempts
        attempts += 1
        await breakers.call("dep", failing)

    with pytest.raises(BreakerOpenError):
        await retry_async(
            through_breaker, RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.02)
        )
    assert attempts == 1 and calls == 1
