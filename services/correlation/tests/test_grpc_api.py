"""AnalyzeCorrelations over loopback gRPC: a planted lag is found, and bad requests name the field."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import pytest_asyncio

from novamind.api.common.v1 import common_pb2
from novamind.api.correlation.v1 import correlation_pb2, correlation_pb2_grpc
from novamind.correlation.app import SERVICE_NAME, build_runtime
from novamind.correlation.config import CorrelationSettings
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import health_status, running_service

START = dt.date(2026, 3, 1)  # the window crosses the spring-forward change in Europe


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    out = np.zeros(n)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + rng.normal()
    return out


def daily(name: str, values: np.ndarray, missing: np.ndarray | None = None) -> common_pb2.DailySeries:
    series = common_pb2.DailySeries(name=name)
    for i, value in enumerate(values):
        entry = common_pb2.DailyValue(date=(START + dt.timedelta(days=i)).isoformat())
        if missing is None or not missing[i]:
            entry.value = float(value)
        series.values.append(entry)
    return series


def planted_request(days: int = 90, seed: int = 3) -> correlation_pb2.AnalyzeCorrelationsRequest:
    """Sleep drives mood two days later; steps are independent (both autocorrelated)."""
    rng = np.random.default_rng(seed)
    sleep = ar1(rng, days + 2, 0.5)
    mood = 0.8 * sleep[:-2] + 0.6 * ar1(rng, days, 0.6)
    steps = ar1(rng, days, 0.8)
    missing = rng.random(days) < 0.1
    return correlation_pb2.AnalyzeCorrelationsRequest(
        patient=common_pb2.PatientRef(pseudonym="pt_" + "c" * 20),
        biometrics=[
            daily("total_sleep_time_minutes", 420 + 30 * sleep[2:], missing),
            daily("steps", 8000 + 1500 * steps),
        ],
        symptoms=[daily("mood_rating", 5 + mood)],
        include_granger=True,
        include_model_explanation=True,
        time_zone="Europe/Berlin",
    )


@pytest_asyncio.fixture
async def stub() -> AsyncIterator[correlation_pb2_grpc.CorrelationServiceStub]:
    settings = CorrelationSettings(
        grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
    )
    async with running_service(build_runtime(settings)):
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "SERVING"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            yield correlation_pb2_grpc.CorrelationServiceStub(channel)


async def test_the_planted_lag_is_the_strongest_significant_finding(
    stub: correlation_pb2_grpc.CorrelationServiceStub,
) -> None:
    response = await stub.AnalyzeCorrelations(planted_request(), timeout=30)
    assert response.tests_performed == 2 * 1 * 8 * 2  # biometrics x symptoms x lags 0-7 x methods
    assert len(response.correlations) == response.tests_performed
    top = response.correlations[0]
    assert (top.biometric, top.symptom, top.lag_days) == ("total_sleep_time_minutes", "mood_rating", 2)
    assert top.significant and top.coefficient > 0.5 and top.ci_low < top.coefficient < top.ci_high
    assert top.n_effective < top.n_pairs
    significant = {(c.biometric, c.lag_days) for c in response.correlations if c.significant}
    assert all(biometric == "total_sleep_time_minutes" for biometric, _ in significant)
    q_values = [c.q_value for c in response.correlations]
    assert q_values == sorted(q_values)
    assert any("effective sample size" in note for note in response.notes)
    assert response.fdr_alpha == pytest.approx(0.05)

    causes = {g.biometric: g for g in response.granger}
    assert set(causes) == {"total_sleep_time_minutes", "steps"}
    assert causes["total_sleep_time_minutes"].significant and not causes["steps"].significant
    assert any("attention model" in w for w in response.warnings)

    info = await stub.GetModelInfo(correlation_pb2.GetModelInfoRequest(), timeout=5)
    assert not info.ready and "statistical engine" in info.not_ready_reason


async def test_bad_requests_name_what_is_wrong(stub: correlation_pb2_grpc.CorrelationServiceStub) -> None:
    short = planted_request(days=10)
    unknown = planted_request()
    unknown.biometrics[1].name = "blood_glucose"
    too_far = planted_request()
    too_far.max_lag_days = 10
    bad_date = planted_request()
    bad_date.symptoms[0].values[4].date = "2026-02-30"
    duplicate = planted_request()
    duplicate.biometrics[1].name = "total_sleep_time_minutes"
    bad_zone = planted_request()
    bad_zone.time_zone = "Atlantis/Capital"
    cases = {
        "overlap": (short, "too little overlap", b"min_overlap_days"),
        "unknown signal": (unknown, "unknown signal", b"biometrics[1].name"),
        "lag range": (too_far, "lag range too large", b"max_lag_days"),
        "date": (bad_date, "date", b"symptoms[0].values[4].date"),
        "duplicate": (duplicate, "", b"biometrics[1].name"),
        "time zone": (bad_zone, "", b"time_zone"),
    }
    for label, (request, message, field) in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.AnalyzeCorrelations(request, timeout=30)
        error = caught.value
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, label
        assert message in (error.details() or ""), (label, error.details())
        details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
        assert isinstance(details, bytes) and field in details, (label, details)
