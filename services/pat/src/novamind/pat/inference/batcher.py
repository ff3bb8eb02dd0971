"""Dynamic micro-batching: concurrent requests share one model call, a lone one waits at most ``max_wait``.

Requests are rows of one array shape. :meth:`MicroBatcher.submit` puts a row on a bounded queue
and awaits its future; one collector task takes the oldest row, keeps collecting until the batch
holds ``max_batch`` rows or ``max_wait_ms`` has passed since that oldest row arrived, stacks the
rows and runs the batch in a dedicated worker thread, so the event loop keeps serving while the
model computes. Batches run one at a time: on CPU the model already uses every core it is given,
and rows that arrive during a batch have been waiting, so they form the next batch at once.

Back-pressure: at most ``max_queue`` rows wait for a batch; a row beyond that is refused at once
with :class:`~novamind.core.errors.ResourceExhaustedError` (gRPC RESOURCE_EXHAUSTED through the
core interceptor) instead of letting the queue and every caller's latency grow without limit.
Rows already accepted are always answered.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from novamind.core.errors import (
    ModelInferenceError,
    NovamindError,
    ResourceExhaustedError,
    ServiceUnavailableError,
    ValidationError,
)

R = TypeVar("R")

#: A batch function: rows stacked on axis 0 in, one result per row out (sync or async).
BatchFunction = Callable[[npt.NDArray[np.float32]], "Sequence[R] | Awaitable[Sequence[R]]"]


@dataclass
class BatcherStats:
    """Counters since start: batches run, rows answered, rows refused, and each batch's size."""

    batches: int = 0
    rows: int = 0
    rejected: int = 0
    failed_batches: int = 0
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1024))


@dataclass(eq=False, slots=True)
class _Pending(Generic[R]):
    row: npt.NDArray[np.float32]
    future: asyncio.Future[R]
    enqueued: float  # time.monotonic() seconds


#: Called after each batch with (batch size, seconds in the model, rows still queued).
BatchObserver = Callable[[int, float, int], None]


class MicroBatcher(Generic[R]):
    """Groups concurrent :meth:`submit` calls into batches for ``run_batch``.

    ``max_batch`` (rows) bounds a batch; ``max_wait_ms`` (milliseconds) bounds how long the
    oldest queued row waits for company; ``max_queue`` (rows) bounds the rows waiting for a
    batch. ``run_batch`` gets a (rows, ...) float32 array and returns one result per row; a
    synchronous one runs in the batcher's worker thread (or in ``executor``, which batchers that
    share one model should share, so their batches never compete for the cores), a coroutine
    function on the loop.
    Use as ``async with MicroBatcher(...) as batcher`` or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        run_batch: BatchFunction[R],
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        name: str = "batch",
        observer: BatchObserver | None = None,
        executor: Executor | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValidationError("max_batch must be at least 1", field="max_batch")
        if max_wait_ms < 0:
            raise ValidationError("max_wait_ms must not be negative", field="max_wait_ms")
        if max_queue < 1:
            raise ValidationError("max_queue must be at least 1", field="max_queue")
        self._run_batch = run_batch
        self._is_async = inspect.iscoroutinefunction(run_batch)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.name = name
        self._observer = observer
        self._queue: deque[_Pending[R]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._collector: asyncio.Task[None] | None = None
        self._shared_executor = executor
        self._executor: Executor | None = executor
        self._accepting = False
        self.stats = BatcherStats()

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the collector task and the worker thread (idempotent)."""
        if self._collector is not None:
            return
        self._wakeup = asyncio.Event()
        if self._shared_executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-inference")
        self._accepting = True
        self._collector = asyncio.create_task(self._collect(), name=f"{self.name}-batcher")
        self._collector.add_done_callback(self._fail_queued)

    def _fail_queued(self, collector: asyncio.Task[None]) -> None:
        """Should the collector ever stop on an error, no accepted row is left waiting forever."""
        if collector.cancelled() or collector.exception() is not None:
            self._accepting = False
            while self._queue:
                pending = self._queue.popleft()
                if not pending.future.done():
                    pending.future.set_exception(
                        ServiceUnavailableError(f"the {self.name} batcher stopped before this row ran")
                    )

    async def close(self) -> None:
        """Stop accepting rows, answer every row already accepted, then stop the worker."""
        self._accepting = False
        if self._collector is None:
            return
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            await self._collector
        finally:
            self._collector = None
            if self._shared_executor is None and self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    async def __aenter__(self) -> MicroBatcher[R]:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def running(self) -> bool:
        return self._accepting and self._collector is not None and not self._collector.done()

    @property
    def queued(self) -> int:
        """Rows accepted and waiting for a batch (not counting the batch running now)."""
        return len(self._queue)

    # --- requests --------------------------------------------------------------------------------

    async def submit(self, row: npt.NDArray[np.float32]) -> R:
        """Queue one row and return its result once its batch has run.

        Raises ``ResourceExhaustedError`` at once when ``max_queue`` rows are already waiting,
        ``ServiceUnavailableError`` when the batcher is not running (closed or not started), and
        ``ModelInferenceError`` when the batch holding the row failed.
        """
        if not self.running:
            raise ServiceUnavailableError(f"the {self.name} batcher is not running")
        if len(self._queue) >= self.max_queue:
            self.stats.rejected += 1
            raise ResourceExhaustedError(
                f"the {self.name} inference queue is full; retry with backoff",
                details={"max_queue": self.max_queue},
            )
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(row, future, time.monotonic()))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    # --- the collector ---------------------------------------------------------------------------

    async def _collect(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if not self._accepting:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._queue[0].enqueued + self.max_wait_s
            while self._accepting and len(self._queue) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=remaining)
                except TimeoutError:
                    break
            batch = self._take_batch()
            if batch:
                await self._run(batch)

    def _take_batch(self) -> list[_Pending[R]]:
        batch: list[_Pending[R]] = []
        while self._queue and len(batch) < self.max_batch:
            pending = self._queue.popleft()
            if not pending.future.done():  # a caller that gave up (cancelled) costs no compute
                batch.append(pending)
        return batch

    async def _run(self, batch: list[_Pending[R]]) -> None:
        started = time.perf_counter()
        try:
            rows = np.stack([p.row for p in batch])
            if self._is_async:
                results = await self._run_batch(rows)  # type: ignore[misc]
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._executor, self._run_batch, rows)
            if len(results) != len(batch):
                raise ModelInferenceError(
                    f"the model returned {len(results)} results for a batch of {len(batch)}"
                )
        except Exception as exc:  # every failure becomes an answer to exactly this batch's callers
            self.stats.failed_batches += 1
            error = (
                exc
                if isinstance(exc, NovamindError)
                else ModelInferenceError(
                    f"{self.name} inference failed for a batch of {len(batch)}",
                    details={"batch_size": len(batch), "error_type": type(exc).__name__},
                )
            )
            if error is not exc:
                error.__cause__ = exc
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        finally:
            seconds = time.perf_counter() - started
            self.stats.batches += 1
            self.stats.rows += len(batch)
            self.stats.batch_sizes.append(len(batch))
            if self._observer is not None:
                self._observer(len(batch), seconds, len(self._queue))
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
