"""The ForecastingService over loopback gRPC with a trained (quick) artifact.

A forecast carries quantiles per day, each member's contribution and named feature importances;
bad requests get INVALID_ARGUMENT naming the field; a history-less request reads the twin
(a loopback stand-in speaking TwinService) and an unknown patient is NOT_FOUND; without an
artifact the service is not ready and says why.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from novamind.api.common.v1 import common_pb2
from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import health_status, running_service
from novamind.forecasting.app import SERVICE_NAME, build_runtime
from novamind.forecasting.config import ForecastingSettings
from novamind.forecasting.domain import synthetic

KNOWN_PATIENT = "pt_" + "a" * 20
UNKNOWN_PATIENT = "pt_" + "b" * 20
START = dt.date(2026, 6, 1)


class StandInTwin(twin_pb2_grpc.TwinServiceServicer):
    """Answers GetTwin for one patient with 40 days of PHQ-9 reports; NOT_FOUND otherwise."""

    async def GetTwin(self, request: twin_pb2.GetTwinRequest, context: Any) -> twin_pb2.GetTwinResponse:
        if request.patient.pseudonym != KNOWN_PATIENT:
            await context.abort(grpc.StatusCode.NOT_FOUND, "the patient has no twin")
        twin = twin_pb2.Twin(patient=request.patient, time_zone="Europe/Berlin")
        for day in range(40):
            at = Timestamp()
            at.FromDatetime(dt.datetime(2026, 6, 1, 18, tzinfo=dt.UTC) + dt.timedelta(days=day))
            twin.symptom_history.append(
                twin_pb2.SymptomReport(
                    report_id=f"r{day}",
                    instrument=common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
                    total=float(10 + day % 5),
                    reported_at=at,
                )
            )
        return twin_pb2.GetTwinResponse(twin=twin)


@pytest_asyncio.fixture
async def twin_address() -> AsyncIterator[str]:
    server = grpc.aio.server()
    twin_pb2_grpc.add_TwinServiceServicer_to_server(StandInTwin(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def settings_for(model_dir: Path, artifact_name: str, twin: str = "127.0.0.1:1") -> ForecastingSettings:
    return ForecastingSettings(
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        model_dir=model_dir,
        forecast_artifact=artifact_name,
        forecast_device="cpu",
        twin_address=twin,
    )


@pytest_asyncio.fixture
async def stub(
    quick_artifact: Path, twin_address: str
) -> AsyncIterator[forecasting_pb2_grpc.ForecastingServiceStub]:
    settings = settings_for(quick_artifact.parent, quick_artifact.name, twin_address)
    async with (
        running_service(build_runtime(settings)),
        grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
    ):
        yield forecasting_pb2_grpc.ForecastingServiceStub(channel)


def synthetic_request(days: int = 60, **fields: Any) -> forecasting_pb2.ForecastRequest:
    """A request built from one synthetic patient (never trained on: a fresh seed)."""
    cohort = synthetic.generate_cohort(synthetic.CohortConfig(patients=1, days=days), seed=424242)
    patient = cohort[0]
    panel = synthetic.panels(cohort, "phq9_total")[0]
    request = forecasting_pb2.ForecastRequest(
        patient=common_pb2.PatientRef(pseudonym=KNOWN_PATIENT),
        target=forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL,
        time_zone="Europe/Berlin",
    )
    for i in range(panel.length):
        value = panel.target[i]
        entry = common_pb2.DailyValue(date=panel.date_of(i).isoformat())
        if math.isfinite(value):
            entry.value = float(value)
        request.history.append(entry)
    for c, name in enumerate(synthetic.SCHEMA.past):
        series = common_pb2.DailySeries(name=name)
        for i in range(panel.length):
            if math.isfinite(panel.past[i, c]):
                series.values.append(
                    common_pb2.DailyValue(date=panel.date_of(i).isoformat(), value=panel.past[i, c])
                )
        request.covariates.append(
            forecasting_pb2.Covariate(series=series, kind=forecasting_pb2.COVARIATE_KIND_PAST_ONLY)
        )
    for c, name in enumerate(synthetic.SCHEMA.future):
        series = common_pb2.DailySeries(name=name)
        for i in range(panel.future.shape[0]):
            series.values.append(
                common_pb2.DailyValue(date=panel.date_of(i).isoformat(), value=panel.future[i, c])
            )
        request.covariates.append(
            forecasting_pb2.Covariate(series=series, kind=forecasting_pb2.COVARIATE_KIND_KNOWN_FUTURE)
        )
    assert patient.key
    for key, value in fields.items():
        if key == "quantiles":
            request.quantiles.extend(value)
        elif key == "include":
            request.include.CopyFrom(value)
        else:
            setattr(request, key, value)
    return request


async def rejected(call: Any, request: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, timeout=20)
    return caught.value


async def test_forecast_has_quantiles_per_day_contributions_and_named_importances(
    stub: forecasting_pb2_grpc.ForecastingServiceStub,
) -> None:
    request = synthetic_request(
        horizon_days=21,
        quantiles=[0.1, 0.25, 0.5, 0.75, 0.9],
        include=forecasting_pb2.ForecastInclude(model_contributions=True, feature_importances=True),
    )
    response = await stub.Forecast(request, timeout=30)

    origin = dt.date.fromisoformat(request.history[-1].date)
    assert response.origin_date == origin.isoformat()
    assert [f.horizon_day for f in response.forecasts] == list(range(1, 22))
    assert [f.target_date for f in response.forecasts] == [
        (origin + dt.timedelta(days=h)).isoformat() for h in range(1, 22)
    ]
    for day in response.forecasts:
        assert [q.quantile for q in day.quantiles] == [0.1, 0.25, 0.5, 0.75, 0.9]
        values = [q.value for q in day.quantiles]
        assert values == sorted(values) and values[0] >= 0 and values[-1] <= 27
    widths = [f.quantiles[-1].value - f.quantiles[0].value for f in response.forecasts]
    assert widths[-1] > 0
    assert response.interval_coverage_target == pytest.approx(0.8)
    assert response.calibration.method.startswith("conformalized quantile regression")
    assert response.calibration.calibration_samples > 0
    assert 0 < response.calibration.empirical_coverage <= 1
    assert response.model.weights_sha256 and response.model.runtime_device == "cpu"
    assert "wql" in response.model.quality_metrics

    names = {c.model_name for c in response.contributions}
    assert names == {"quantile-transformer", "xgboost-quantile"}
    assert sum(c.weight for c in response.contributions) == pytest.approx(1.0, abs=1e-6)
    for contribution in response.contributions:
        assert len(contribution.forecasts) == 21
        assert contribution.model.name.startswith(contribution.model_name)

    by_model: dict[str, list[forecasting_pb2.FeatureImportance]] = {}
    for item in response.feature_importances:
        by_model.setdefault(item.model_name, []).append(item)
        assert item.importance >= 0 and item.feature
    shap = by_model["xgboost-quantile"]
    assert {i.method for i in shap} == {forecasting_pb2.IMPORTANCE_METHOD_SHAP}
    assert any(i.feature.startswith("phq9_total_") for i in shap)
    attention = by_model["quantile-transformer"]
    assert {i.method for i in attention} == {forecasting_pb2.IMPORTANCE_METHOD_ATTENTION}
    assert {i.feature for i in attention} >= {"phq9_total", "total_sleep_time_minutes"}
    assert [i.importance for i in shap] == sorted((i.importance for i in shap), reverse=True)


async def test_defaults_fourteen_days_at_the_three_default_levels(
    stub: forecasting_pb2_grpc.ForecastingServiceStub,
) -> None:
    response = await stub.Forecast(synthetic_request(), timeout=30)
    assert len(response.forecasts) == 14
    assert [q.quantile for q in response.forecasts[0].quantiles] == [0.1, 0.5, 0.9]
    assert not response.contributions and not response.feature_importances


async def test_bad_requests_name_what_is_wrong(stub: forecasting_pb2_grpc.ForecastingServiceStub) -> None:
    short = synthetic_request(days=60)
    del short.history[:]
    for i in range(5):
        short.history.append(common_pb2.DailyValue(date=(START + dt.timedelta(days=i)).isoformat(), value=8))
    cases: dict[str, tuple[forecasting_pb2.ForecastRequest, str, str]] = {
        "short history": (short, "history", "history too short: 5 observed days"),
        "horizon": (synthetic_request(horizon_days=45), "horizon_days", "above the maximum of 30"),
        "quantile": (synthetic_request(quantiles=[0.33]), "quantiles[0]", "unknown quantile 0.33"),
        "target": (synthetic_request(target=forecasting_pb2.TARGET_SYMPTOM_UNSPECIFIED), "target", "target"),
        "not trained": (
            synthetic_request(target=forecasting_pb2.TARGET_SYMPTOM_GAD7_TOTAL),
            "target",
            "do not forecast gad7_total",
        ),
        "time zone": (synthetic_request(time_zone="Mars/Olympus"), "time_zone", "time zone"),
    }
    bad_date = synthetic_request()
    bad_date.history[3].date = "2026-13-01"
    cases["date"] = (bad_date, "history[3].date", "not a calendar date")
    out_of_range = synthetic_request()
    out_of_range.history[-1].value = 31
    cases["range"] = (
        out_of_range,
        f"history[{len(out_of_range.history) - 1}].value",
        "outside the phq9_total range",
    )
    uncovered = synthetic_request(horizon_days=14)
    future = uncovered.covariates[-1].series
    del future.values[len(uncovered.history) + 5 :]
    cases["future covariate"] = (uncovered, "covariates[5].series.values", "does not cover the horizon")
    for label, (request, field, message) in cases.items():
        error = await rejected(stub.Forecast, request)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, label
        assert message in (error.details() or ""), (label, error.details())
        metadata = dict(error.trailing_metadata() or ())
        assert any(field.encode() in v for v in metadata.values() if isinstance(v, bytes)), (label, field)
    # the rejected value itself never appears in the error
    error = await rejected(stub.Forecast, out_of_range)
    assert "31" not in (error.details() or "")


async def test_history_from_the_twin_and_unknown_patient(
    stub: forecasting_pb2_grpc.ForecastingServiceStub,
) -> None:
    request = forecasting_pb2.ForecastRequest(
        patient=common_pb2.PatientRef(pseudonym=KNOWN_PATIENT),
        target=forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL,
    )
    response = await stub.Forecast(request, timeout=30)
    # the reports are at 18:00 UTC = 20:00 in Berlin: the last one is on 2026-07-10 there
    assert response.origin_date == "2026-07-10"
    assert len(response.forecasts) == 14
    assert any("not supplied" in w for w in response.warnings)

    request.patient.pseudonym = UNKNOWN_PATIENT
    error = await rejected(stub.Forecast, request)
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "unknown patient" in (error.details() or "")
    assert UNKNOWN_PATIENT not in (error.details() or "")


async def test_backtest_scores_every_model_at_rolling_origins(
    stub: forecasting_pb2_grpc.ForecastingServiceStub,
) -> None:
    forecast = synthetic_request(days=120)
    request = forecasting_pb2.BacktestRequest(
        patient=forecast.patient,
        target=forecast.target,
        history=forecast.history,
        covariates=forecast.covariates,
        config=forecasting_pb2.RollingOriginConfig(
            initial_train_days=42, step_days=7, horizon_days=14, expanding_window=True
        ),
    )
    response = await stub.Backtest(request, timeout=60)
    models = {m.model_name: m for m in response.metrics}
    assert set(models) == {"ensemble", "quantile-transformer", "xgboost-quantile", "seasonal-naive"}
    assert len(response.origin_dates) >= 8
    assert response.origin_dates == sorted(response.origin_dates)
    assert (
        response.origin_dates[0]
        >= (dt.date.fromisoformat(forecast.history[0].date) + dt.timedelta(days=41)).isoformat()
    )
    for metrics in models.values():
        assert metrics.origins == len(response.origin_dates)
        assert metrics.scored_points > 0 and metrics.weighted_quantile_loss > 0 and metrics.mase > 0
        assert [c.nominal_coverage for c in metrics.coverage] == [pytest.approx(0.8)]
        assert next(h.horizon_day for h in metrics.by_horizon) == 1
    assert response.best_model == min(models.values(), key=lambda m: m.weighted_quantile_loss).model_name

    request.models.append("prophet")
    error = await rejected(stub.Backtest, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "unknown model 'prophet'" in (
        error.details() or ""
    )


async def test_model_info_lists_the_ensembles_and_members(
    stub: forecasting_pb2_grpc.ForecastingServiceStub,
) -> None:
    info = await stub.GetModelInfo(forecasting_pb2.GetModelInfoRequest(), timeout=10)
    assert info.ready
    names = sorted(m.name for m in info.models)
    assert "symptom-forecast-ensemble/phq9_total" in names and "xgboost-quantile/mood_rating" in names
    assert len({m.weights_sha256 for m in info.models}) == 1


async def test_without_an_artifact_the_service_is_not_ready_and_says_why(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "missing")
    async with running_service(build_runtime(settings)):
        assert SERVICE_NAME == "novamind.api.forecasting.v1.ForecastingService"
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "NOT_SERVING"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            stub = forecasting_pb2_grpc.ForecastingServiceStub(channel)
            info = await stub.GetModelInfo(forecasting_pb2.GetModelInfoRequest(), timeout=10)
            error = await rejected(stub.Forecast, synthetic_request())
    assert not info.ready and "manifest.json missing" in info.not_ready_reason
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
