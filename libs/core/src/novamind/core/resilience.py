"""Deadlines, retries and circuit breakers: the one way Novamind survives slow or dead peers.

* **Deadline** — an absolute point in time carried in a context variable. The gRPC server
  interceptor sets it from the caller's deadline; outgoing calls and retries never run past it.
* **Retry** — tenacity with full-jitter exponential backoff (AWS Architecture Blog, "Exponential
  Backoff and Jitter", 2015). A retry is not attempted when its backoff would end after the
  deadline, so a retrying call never outlives its caller.
* **Circuit breaker** — purgatory's asyncio breaker (one per dependency, optional shared state in
  Redis across replicas), with its state exported to Prometheus.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from prometheus_client import Counter, Gauge
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from novamind.core.errors import DeadlineExceededError, NovamindError, ServiceUnavailableError

T = TypeVar("T")

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("novamind_deadline", default=None)


def current_deadline() -> float | None:
    """The active deadline as a :func:`time.monotonic` timestamp, or ``None`` if unbounded."""
    return _deadline.get()


def time_remaining() -> float | None:
    """Seconds left before the active deadline (never negative), or ``None`` if unbounded."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def effective_timeout(requested: float | None) -> float | None:
    """The timeout for a call: ``requested`` capped by the active deadline (seconds)."""
    remaining = time_remaining()
    if remaining is None:
        return requested
    if requested is None:
        return remaining
    return min(requested, remaining)


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[float | None]:
    """Narrow the active deadline to at most ``seconds`` from now (never widens it)."""
    if seconds is None:
        yield _deadline.get()
        return
    proposed = time.monotonic() + seconds
    existing = _deadline.get()
    deadline = proposed if existing is None else min(existing, proposed)
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


def check_deadline(operation: str) -> None:
    """Raise :class:`DeadlineExceededError` if the active deadline has already passed."""
    remaining = time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceededError(f"deadline exceeded before {operation}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff (seconds)."""

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0

    def wait_strategy(self) -> tenacity.wait.wait_base:
        return tenacity.wait_random_exponential(multiplier=self.initial_backoff, max=self.max_backoff)


class BreakerOpenError(ServiceUnavailableError):
    """The dependency's circuit breaker is open: the call was not made.

    Retryable for the caller's caller (after the cool-down), but never retried inside the same
    call: backing off against an open breaker only spends the caller's deadline.
    """


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: retryable taxonomy errors and connection-level failures."""
    if isinstance(exc, BreakerOpenError):
        return False
    if isinstance(exc, NovamindError):
        return exc.retryable and not isinstance(exc, DeadlineExceededError)
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


class _StopAtDeadlineOrAttempts(tenacity.stop.stop_base):
    def __init__(self, max_attempts: int) -> None:
        self._max_attempts = max_attempts

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self._max_attempts:
            return True
        remaining = time_remaining()
        # Tenacity has already drawn the upcoming sleep: give up if it would end past the deadline.
        return remaining is not None and retry_state.upcoming_sleep >= remaining


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy = RetryPolicy(),
    *,
    retry_if: Callable[[BaseException], bool] = is_transient,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run ``operation`` with retries; re-raises the last error when retries are exhausted.

    Stops after ``policy.max_attempts`` attempts, or earlier when the next backoff would end after
    the active deadline. Errors for which ``retry_if`` is false are raised at once.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(state.attempt_number, exc)

    retrying = tenacity.AsyncRetrying(
        stop=_StopAtDeadlineOrAttempts(policy.max_attempts),
        wait=policy.wait_strategy(),
        retry=tenacity.retry_if_exception(retry_if),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover


BREAKER_STATE = Gauge(
    "novamind_circuit_breaker_state",
    "Circuit breaker state per dependency (0 closed, 1 half-open, 2 open)",
    ["dependency"],
)
BREAKER_REJECTIONS = Counter(
    "novamind_circuit_breaker_rejections_total",
    "Calls rejected without trying because the dependency's breaker was open",
    ["dependency"],
)
_STATE_VALUES = {"closed": 0, "half-opened": 1, "opened": 2}


class CircuitBreakers:
    """One circuit breaker per named dependency.

    ``failure_threshold`` consecutive failures open a breaker; after ``recovery_seconds`` it
    half-opens and lets one trial call through, which closes it again on success. Errors that say
    the *request* was bad (validation, not found, ...) do not count as dependency failures.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        recovery_seconds: float = 30.0,
        redis_url: str = "",
    ) -> None:
        uow: Any = None
        if redis_url:
            from purgatory import AsyncRedisUnitOfWork

            uow = AsyncRedisUnitOfWork(redis_url)
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failure_threshold,
            default_ttl=recovery_seconds,
            exclude=[(NovamindError, lambda exc: not exc.retryable)],
            uow=uow,
        )
        self._factory.add_listener(self._on_event)
        self._initialized = False

    @staticmethod
    def _on_event(name: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            BREAKER_STATE.labels(dependency=name).set(_STATE_VALUES.get(event.state, 0))
        elif event_type == "circuit_breaker_created":
            BREAKER_STATE.labels(dependency=name).set(0)

    async def call(self, dependency: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` through ``dependency``'s breaker.

        Raises :class:`ServiceUnavailableError` without calling when the breaker is open.
        """
        if not self._initialized:
            await self._factory.initialize()
            self._initialized = True
        breaker = await self._factory.get_breaker(dependency)
        try:
            async with breaker:
                return await operation()
        except OpenedState as exc:
            BREAKER_REJECTIONS.labels(dependency=dependency).inc()
            raise BreakerOpenError(
                "circuit breaker open; not calling the dependency", service=dependency
            ) from exc

    async def state(self, dependency: str) -> str:
        """``closed``, ``half-opened`` or ``opened``."""
        return (await self.snapshot(dependency)).state

    async def snapshot(self, dependency: str) -> BreakerSnapshot:
        """The dependency's breaker state with its open time and cool-down.

        Before the first call the breakers have not connected their store (Redis, when shared),
        and the breaker is closed as far as this process knows.
        """
        if not self._initialized:
            return BreakerSnapshot("closed", None, None)
        context = (await self._factory.get_breaker(dependency)).context
        opened_at = getattr(context, "opened_at", None)
        ttl = getattr(context, "ttl", None)
        return BreakerSnapshot(
            str(context.state),
            None if opened_at is None else float(opened_at),
            None if ttl is None else float(ttl),
        )


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state, when it opened (epoch seconds) and its cool-down (seconds)."""

    state: str
    opened_at: float | None
    ttl: float | None

    def seconds_to_half_open(self) -> float | None:
        """Seconds until an open breaker lets a trial call through; None unless open."""
        if self.state != "opened" or self.opened_at is None or self.ttl is None:
            return None
        return max(0.0, self.opened_at + self.ttl - time.time())
