"""MicroBatcher: shared batches, bounded waiting, back-pressure, failure isolation, draining."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from novamind.core.errors import (
    ModelInferenceError,
    ResourceExhaustedError,
    ServiceUnavailableError,
    ValidationError,
)
from novamind.pat.inference import MicroBatcher


def row(value: float) -> np.ndarray:
    return np.full(3, value, dtype=np.float32)


def doubled_first_column(rows: np.ndarray) -> list[float]:
    return [float(v) for v in rows[:, 0] * 2]


async def test_concurrent_requests_share_batches_and_each_gets_its_own_answer() -> None:
    async with MicroBatcher(doubled_first_column, max_batch=16, max_wait_ms=50, max_queue=100) as batcher:
        answers = await asyncio.gather(*(batcher.submit(row(i)) for i in range(64)))

    assert answers == [2.0 * i for i in range(64)]
    assert batcher.stats.rows == 64
    assert batcher.stats.batches <= 5  # 64 rows in batches of at most 16: four, five at worst
    assert max(batcher.stats.batch_sizes) == 16


async def test_a_lone_request_waits_for_company_no_longer_than_max_wait() -> None:
    max_wait_ms = 200.0
    started: list[float] = []

    def run(rows: np.ndarray) -> list[float]:
        started.append(time.monotonic())
        return doubled_first_column(rows)

    async with MicroBatcher(run, max_batch=8, max_wait_ms=max_wait_ms, max_queue=10) as batcher:
        submitted = time.monotonic()
        assert await batcher.submit(row(1)) == 2.0

    waited_ms = (started[0] - submitted) * 1000
    # It waited for company (about max_wait), and not much longer: a generous margin for busy CI.
    assert max_wait_ms * 0.8 <= waited_ms <= max_wait_ms + 300


async def test_a_full_batch_runs_without_waiting_for_max_wait() -> None:
    async with MicroBatcher(doubled_first_column, max_batch=4, max_wait_ms=10_000, max_queue=10) as batcher:
        began = time.monotonic()
        answers = await asyncio.gather(*(batcher.submit(row(i)) for i in range(4)))

    assert answers == [0.0, 2.0, 4.0, 6.0]
    assert time.monotonic() - began < 2.0  # far below the 10 s max_wait
    assert list(batcher.stats.batch_sizes) == [4]


async def test_a_full_queue_refuses_at_once_and_accepted_requests_still_complete() -> None:
    running, release = threading.Event(), threading.Event()

    def slow(rows: np.ndarray) -> list[float]:
        running.set()
        release.wait(timeout=10)
        return doubled_first_column(rows)

    async with MicroBatcher(slow, max_batch=1, max_wait_ms=0, max_queue=3) as batcher:
        first = asyncio.create_task(batcher.submit(row(0)))
        await asyncio.to_thread(running.wait, 5)  # row 0 is in the model, the queue is empty
        queued = [asyncio.create_task(batcher.submit(row(i))) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        assert batcher.queued == 3

        began = time.monotonic()
        with pytest.raises(ResourceExhaustedError) as refused:
            await batcher.submit(row(4))
        assert time.monotonic() - began < 0.1
        assert refused.value.mapping.grpc_status.name == "RESOURCE_EXHAUSTED"
        assert batcher.stats.rejected == 1

        release.set()
        assert await asyncio.gather(first, *queued) == [0.0, 2.0, 4.0, 6.0]


async def test_a_failing_batch_fails_exactly_its_own_requests() -> None:
    def fails_on_negative(rows: np.ndarray) -> list[float]:
        if (rows < 0).any():
            raise RuntimeError("kernel exploded")
        return doubled_first_column(rows)

    async with MicroBatcher(fails_on_negative, max_batch=3, max_wait_ms=1_000, max_queue=10) as batcher:
        outcomes = await asyncio.gather(
            *(batcher.submit(row(v)) for v in (1, -1, 2, 3, 4, 5)), return_exceptions=True
        )

    assert all(isinstance(o, ModelInferenceError) for o in outcomes[:3])
    assert outcomes[3:] == [6.0, 8.0, 10.0]
    error = outcomes[0]
    assert isinstance(error, ModelInferenceError)
    assert error.details == {"batch_size": 3, "error_type": "RuntimeError"}
    assert "kernel exploded" not in error.message  # the message is safe to show; the cause is chained
    assert isinstance(error.__cause__, RuntimeError)
    assert batcher.stats.failed_batches == 1


async def test_a_wrong_number_of_results_is_a_model_error() -> None:
    async with MicroBatcher(lambda rows: [1.0], max_batch=2, max_wait_ms=1_000, max_queue=10) as batcher:
        outcomes = await asyncio.gather(
            batcher.submit(row(1)), batcher.submit(row(2)), return_exceptions=True
        )
    assert all(isinstance(o, ModelInferenceError) for o in outcomes)


async def test_rows_that_cannot_share_a_batch_fail_that_batch_only() -> None:
    async with MicroBatcher(doubled_first_column, max_batch=2, max_wait_ms=1_000, max_queue=10) as batcher:
        outcomes = await asyncio.gather(
            batcher.submit(row(1)),
            batcher.submit(np.ones(4, np.float32)),  # another shape: the batch cannot be stacked
            batcher.submit(row(3)),
            return_exceptions=True,
        )
        assert await batcher.submit(row(4)) == 8.0
    assert all(isinstance(o, ModelInferenceError) for o in outcomes[:2])
    assert outcomes[2] == 6.0


async def test_close_answers_every_accepted_request_then_refuses_new_ones() -> None:
    batcher: MicroBatcher[float] = MicroBatcher(
        doubled_first_column, max_batch=4, max_wait_ms=5_000, max_queue=50
    )
    await batcher.start()
    pending = [asyncio.create_task(batcher.submit(row(i))) for i in range(10)]
    await asyncio.sleep(0)
    await batcher.close()  # does not wait the 5 s max_wait: closing flushes the queue

    assert [task.result() for task in pending] == [2.0 * i for i in range(10)]
    with pytest.raises(ServiceUnavailableError):
        await batcher.submit(row(1))


async def test_an_async_batch_function_runs_on_the_loop() -> None:
    async def run(rows: np.ndarray) -> list[float]:
        await asyncio.sleep(0)
        return doubled_first_column(rows)

    async with MicroBatcher(run, max_batch=8, max_wait_ms=5, max_queue=10) as batcher:
        assert await asyncio.gather(*(batcher.submit(row(i)) for i in range(3))) == [0.0, 2.0, 4.0]


async def test_a_cancelled_request_is_left_out_of_its_batch() -> None:
    seen: list[int] = []

    def run(rows: np.ndarray) -> list[float]:
        seen.append(len(rows))
        return doubled_first_column(rows)

    async with MicroBatcher(run, max_batch=8, max_wait_ms=100, max_queue=10) as batcher:
        gone = asyncio.create_task(batcher.submit(row(1)))
        kept = asyncio.create_task(batcher.submit(row(2)))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == 4.0
    assert seen == [1]


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError) as error:
        MicroBatcher(doubled_first_column, max_batch=0, max_wait_ms=1, max_queue=1)
    assert error.value.field == "max_batch"
