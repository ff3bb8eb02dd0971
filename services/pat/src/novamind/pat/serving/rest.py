"""The REST mirror of the actigraphy API, for ad-hoc use (FastAPI; OpenAPI at ``/openapi.json``).

``POST /v1/analyses`` takes one week of minute-level activity counts and answers

* ``200`` with the analysis when it finishes within ``sync_budget_seconds`` (or is cached);
* ``202`` with ``{"job_id", "status": "pending"}`` and a ``Location`` to poll when the caller
  asks ``?async=true`` or the analysis outlasts the budget (it keeps running).

``GET /v1/analyses/{job_id}`` answers ``{"job_id", "status", "result", "error"}`` with status
``pending``, ``done`` or ``failed``; a job is kept ``job_ttl_seconds`` after it ends, then
forgotten (404). Jobs live in this process (:class:`JobRegistry`, bounded; when every slot holds
a running job a new one is refused with RESOURCE_EXHAUSTED, 503, retryable).

The analysis itself is injected (:data:`AnalyseWeek`); results are cached under a hash of the
week and the model version, so a new model version recomputes. Errors answer the core mapping's
HTTP status with ``{"code", "message", "field"}``. The OIP v2 REST routes are mounted too when
an :class:`~.oip.OpenInferenceServer` is given.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import Gauge
from pydantic import BaseModel, Field, field_validator

from novamind.core.cache import ResultCache, cache_key
from novamind.core.errors import NotFoundError, NovamindError, ResourceExhaustedError
from novamind.pat.serving.http_errors import BodySizeLimit, error_body, install_error_handlers
from novamind.pat.serving.model import MINUTES_PER_WEEK
from novamind.pat.serving.oip import OpenInferenceServer, oip_router

log = logging.getLogger(__name__)

#: Default bound on a request body: a week in JSON is about 0.1-0.2 MB; OIP batches are larger.
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024

ANALYSIS_JOBS = Gauge("novamind_pat_analysis_jobs", "Analysis jobs held by the REST mirror", ["status"])


@dataclass(frozen=True, eq=False)
class WeekInput:
    """One week as the REST mirror received it, validated.

    ``values`` (10080,) float64: activity counts per minute, NaN = missing minute.
    ``start``: timezone-aware local start of the first minute, in ``timezone``.
    ``timezone``: IANA zone name (``"Europe/Zurich"``).
    """

    values: npt.NDArray[np.float64]
    start: datetime
    timezone: str

    def payload_bytes(self) -> bytes:
        """Canonical bytes of the week (values little-endian float64, start ISO 8601, zone)."""
        return b"\x00".join(
            [
                np.ascontiguousarray(self.values, dtype="<f8").tobytes(),
                self.start.isoformat().encode(),
                self.timezone.encode(),
            ]
        )


AnalyseWeek = Callable[[WeekInput], Awaitable[Mapping[str, Any]]]
"""Analyses one week; returns the analysis as a JSON-serialisable mapping.

Raises a :class:`~novamind.core.errors.NovamindError` for failures the caller should see
(anything else is reported as an internal error, without details).
"""

Count = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class WeekIn(BaseModel):
    """One week: 10,080 consecutive minutes of activity counts starting at ``start``."""

    values: list[Count | None] = Field(
        min_length=MINUTES_PER_WEEK,
        max_length=MINUTES_PER_WEEK,
        description="Activity counts per minute ({counts}/min), 10,080 of them; null = missing minute.",
    )
    start: datetime = Field(
        description="Local start of the first minute (ISO 8601); read in `timezone` when it has no offset."
    )
    timezone: str = Field(
        description="IANA time zone of the wearer, e.g. Europe/Zurich.", examples=["Europe/Zurich"]
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone") from None
        return value

    def to_input(self) -> WeekInput:
        zone = ZoneInfo(self.timezone)
        start = self.start.replace(tzinfo=zone) if self.start.tzinfo is None else self.start.astimezone(zone)
        values = np.array([np.nan if v is None else v for v in self.values], dtype=np.float64)
        return WeekInput(values=values, start=start, timezone=self.timezone)


class AnalysisRequest(BaseModel):
    week: WeekIn


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class ErrorOut(BaseModel):
    code: str
    message: str
    field: str | None = None


class JobOut(BaseModel):
    job_id: str
    status: JobStatus
    result: dict[str, Any] | None = None
    error: ErrorOut | None = None


@dataclass(eq=False)
class Job:
    """One analysis: pending while its task runs, then done (``result``) or failed (``error``)."""

    id: str
    status: JobStatus = JobStatus.PENDING
    result: Mapping[str, Any] | None = None
    error: NovamindError | None = None
    finished_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_out(self) -> JobOut:
        return JobOut(
            job_id=self.id,
            status=self.status,
            result=dict(self.result) if self.result is not None else None,
            error=ErrorOut(**error_body(self.error)) if self.error is not None else None,
        )


class JobRegistry:
    """Analysis jobs of this process: at most ``max_jobs``, each kept ``ttl_seconds`` after it ends.

    A new job first displaces expired jobs, then the oldest finished one; when every slot holds a
    running job it is refused (:class:`ResourceExhaustedError`). ``clock`` returns seconds.
    """

    def __init__(
        self,
        *,
        max_jobs: int = 256,
        ttl_seconds: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_jobs < 1 or not ttl_seconds > 0:
            raise ValueError("max_jobs and ttl_seconds must be positive")
        self.max_jobs = max_jobs
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def __len__(self) -> int:
        return len(self._jobs)

    def _expire(self) -> None:
        now = self._clock()
        for job_id in [
            j.id
            for j in self._jobs.values()
            if j.finished_at is not None and now - j.finished_at >= self.ttl_seconds
        ]:
            del self._jobs[job_id]

    def _make_room(self) -> None:
        self._expire()
        if len(self._jobs) < self.max_jobs:
            return
        oldest_finished = next((j for j in self._jobs.values() if j.status is not JobStatus.PENDING), None)
        if oldest_finished is None:
            raise ResourceExhaustedError("too many analyses are running; retry later")
        del self._jobs[oldest_finished.id]

    def _finish(self, job: Job, result: Mapping[str, Any] | None, error: NovamindError | None) -> None:
        job.result, job.error = result, error
        job.status = JobStatus.DONE if error is None else JobStatus.FAILED
        job.finished_at = self._clock()
        self._export()

    def _export(self) -> None:
        for status in JobStatus:
            ANALYSIS_JOBS.labels(status.value).set(sum(1 for j in self._jobs.values() if j.status is status))

    def submit(self, work: Callable[[], Awaitable[Mapping[str, Any]]]) -> Job:
        """Start ``work`` as a task and track it. Raises ResourceExhaustedError when full."""
        self._make_room()
        job = Job(id=uuid.uuid4().hex)

        async def run() -> None:
            try:
                result = await work()
            except NovamindError as exc:
                self._finish(job, None, exc)
            except Exception:
                log.exception("analysis job failed")
                self._finish(job, None, NovamindError("internal error"))
            else:
                self._finish(job, result, None)

        self._jobs[job.id] = job
        job.task = asyncio.create_task(run(), name=f"analysis-{job.id}")
        self._export()
        return job

    def completed(self, result: Mapping[str, Any]) -> Job:
        """Track a job that is already done (a cached result). Raises ResourceExhaustedError when full."""
        self._make_room()
        job = Job(id=uuid.uuid4().hex)
        self._jobs[job.id] = job
        self._finish(job, result, None)
        return job

    def get(self, job_id: str) -> Job:
        """The job. Raises NotFoundError when unknown or expired."""
        self._expire()
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError("no such analysis job (unknown or expired)", field="job_id")
        return job

    def discard(self, job_id: str) -> None:
        """Forget a job (its task, if running, is not stopped)."""
        self._jobs.pop(job_id, None)
        self._export()

    async def close(self) -> None:
        """Cancel running jobs and wait for them to end (for the service's shutdown hooks)."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._export()


def create_app(
    analyse: AnalyseWeek,
    *,
    model_version: Callable[[], str],
    cache: ResultCache | None = None,
    cache_ttl_seconds: float | None = None,
    jobs: JobRegistry | None = None,
    inference_server: OpenInferenceServer | None = None,
    sync_budget_seconds: float = 2.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The REST mirror app (see the module docstring).

    ``model_version`` names the model behind ``analyse`` now (cache keys include it);
    ``jobs`` defaults to a fresh :class:`JobRegistry` (close it on shutdown: ``app.state.jobs``).
    Mount the app in the service's HTTP server, e.g. ``Mount("", app=create_app(...))``.
    """
    registry = jobs if jobs is not None else JobRegistry()
    app = FastAPI(
        title="Novamind PAT",
        version="1.0.0",
        summary="Actigraphy analysis (REST mirror of ActigraphyService) and the Open Inference Protocol v2",
    )
    app.state.jobs = registry
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    if inference_server is not None:
        app.include_router(oip_router(inference_server))

    async def analyse_and_cache(week: WeekInput, key: str) -> Mapping[str, Any]:
        result = await analyse(week)
        if cache is not None:
            try:
                await cache.set_json(key, dict(result), ttl_seconds=cache_ttl_seconds)
            except (TypeError, ValueError) as exc:  # not strict JSON (NaN, objects): serve uncached
                log.warning("analysis result not cached: %s", type(exc).__name__)
        return result

    def accepted(job: Job, response: Response) -> JobOut:
        response.status_code = 202
        response.headers["Location"] = f"/v1/analyses/{job.id}"
        return job.to_out()

    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 422, 500, 503)}

    @app.post(
        "/v1/analyses",
        summary="Analyse one week",
        tags=["analyses"],
        responses={200: {"description": "The analysis"}, 202: {"model": JobOut}, **errors},
        response_model=None,
    )
    async def create_analysis(
        request: AnalysisRequest,
        response: Response,
        run_async: Annotated[
            bool, Query(alias="async", description="Always answer 202 with a job to poll.")
        ] = False,
    ) -> dict[str, Any] | JobOut | JSONResponse:
        week = request.week.to_input()
        key = cache_key(model_version(), week.payload_bytes())
        cached = await cache.get_json(key) if cache is not None else None
        if cached is not None:
            return accepted(registry.completed(cached), response) if run_async else dict(cached)
        job = registry.submit(lambda: analyse_and_cache(week, key))
        if run_async:
            return accepted(job, response)
        assert job.task is not None
        await asyncio.wait({job.task}, timeout=sync_budget_seconds)
        if job.status is JobStatus.PENDING:
            return accepted(job, response)
        registry.discard(job.id)
        if job.error is not None:
            raise job.error
        return dict(job.result or {})

    @app.get(
        "/v1/analyses/{job_id}",
        summary="Poll an analysis job",
        tags=["analyses"],
        response_model=JobOut,
        responses=errors,
    )
    async def get_analysis(job_id: str) -> JobOut:
        return registry.get(job_id).to_out()

    return app


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "AnalyseWeek",
    "Job",
    "JobRegistry",
    "JobStatus",
    "WeekInput",
    "create_app",
]
