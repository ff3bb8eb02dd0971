"""The gRPC face of the forecasting service (``novamind.api.forecasting.v1.ForecastingService``).

Forecast and Backtest validate the request (clear errors naming the field: target, horizon above
the maximum, unknown quantile level, too short a history, bad dates or values), lay the history
on a day grid (:mod:`novamind.forecasting.domain.requests`) and run the loaded ensemble off the
event loop. A request without a history forecasts the patient's history as the twin holds it;
a patient the twin does not know is NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from novamind.api.common.v1 import common_pb2
from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.errors import NotFoundError, ValidationError
from novamind.core.rpc import ServiceClient
from novamind.core.symptoms import daily_symptom_totals
from novamind.forecasting.adapters.model_holder import ModelHolder
from novamind.forecasting.artifact import ENSEMBLE, SEASONAL_NAIVE, ForecastArtifact, score_models
from novamind.forecasting.config import ForecastingSettings
from novamind.forecasting.domain.conformal import METHOD, central_pairs
from novamind.forecasting.domain.evaluation import ModelScore
from novamind.forecasting.domain.requests import CovariateInput, DatedValue, PreparedRequest, prepare
from novamind.forecasting.domain.series import Panel
from novamind.forecasting.domain.windows import rolling_windows
from novamind.forecasting.models.base import Importance, ImportanceMethod
from novamind.forecasting.models.ensemble import Ensemble, EnsemblePrediction

TARGETS: dict[int, str] = {
    forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL: "phq9_total",
    forecasting_pb2.TARGET_SYMPTOM_GAD7_TOTAL: "gad7_total",
    forecasting_pb2.TARGET_SYMPTOM_MOOD_RATING: "mood_rating",
}
INSTRUMENTS: dict[int, int] = {
    forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL: common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
    forecasting_pb2.TARGET_SYMPTOM_GAD7_TOTAL: common_pb2.SYMPTOM_INSTRUMENT_GAD7,
    forecasting_pb2.TARGET_SYMPTOM_MOOD_RATING: common_pb2.SYMPTOM_INSTRUMENT_MOOD,
}
DEFAULT_LEVELS = (0.1, 0.5, 0.9)
_METHODS = {
    ImportanceMethod.SHAP: forecasting_pb2.IMPORTANCE_METHOD_SHAP,
    ImportanceMethod.ATTENTION: forecasting_pb2.IMPORTANCE_METHOD_ATTENTION,
    ImportanceMethod.PERMUTATION: forecasting_pb2.IMPORTANCE_METHOD_PERMUTATION,
}
#: Importances per member in a response (the strongest ones).
MAX_IMPORTANCES_PER_MODEL = 15


class TwinHistory:
    """Reads a patient's symptom history from the twin, for requests that carry none."""

    def __init__(self, client: ServiceClient, timeout: float) -> None:
        self._client = client
        self._stub = twin_pb2_grpc.TwinServiceStub(client.channel)
        self._timeout = timeout

    async def history(self, patient: str, target: int, days: int) -> list[DatedValue]:
        response: twin_pb2.GetTwinResponse = await self._client.call(
            self._stub.GetTwin,
            twin_pb2.GetTwinRequest(
                patient=common_pb2.PatientRef(pseudonym=patient), symptom_history_days=days
            ),
            timeout=self._timeout,
        )
        try:
            zone = ZoneInfo(response.twin.time_zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        totals = daily_symptom_totals(response.twin.symptom_history, zone).get(INSTRUMENTS[target], {})
        return [DatedValue(day.isoformat(), value) for day, value in sorted(totals.items())]


class ForecastingServicer(forecasting_pb2_grpc.ForecastingServiceServicer):
    """Serves ``ForecastingService``."""

    def __init__(
        self, settings: ForecastingSettings, holder: ModelHolder, twin: TwinHistory | None = None
    ) -> None:
        self._settings = settings
        self._holder = holder
        self._twin = twin
        # one worker: forecasts are short CPU bursts; parallel ones would only contend for cores
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast")

    # ---- Forecast ----------------------------------------------------------------------------

    async def Forecast(
        self, request: forecasting_pb2.ForecastRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> forecasting_pb2.ForecastResponse:
        artifact = self._holder.require()
        ensemble = self._ensemble(artifact, request.target)
        horizon = self._horizon(request.horizon_days, ensemble, "horizon_days")
        levels = requested_levels(request.quantiles, ensemble.levels)
        _check_time_zone(request.time_zone)
        history = await self._history(request.patient.pseudonym, request.target, request.history)
        prepared = self._prepare(history, request.covariates, ensemble, horizon)
        include = request.include
        prediction, importances = await self._run(
            lambda: _forecast(ensemble, prepared, horizon, include.feature_importances)
        )
        response = forecasting_pb2.ForecastResponse(
            patient=request.patient,
            target=request.target,
            origin_date=prepared.origin_date.isoformat(),
            interval_coverage_target=_outer_coverage(levels),
            model=self._model_info(artifact, ensemble, ENSEMBLE),
            warnings=prepared.warnings,
        )
        response.generated_at.GetCurrentTime()
        response.forecasts.extend(
            _quantile_forecasts(prediction.quantiles[0], ensemble.levels, levels, prepared.origin_date)
        )
        response.calibration.CopyFrom(self._calibration(artifact, ensemble, levels, horizon))
        if include.model_contributions:
            for name, values in prediction.members.items():
                response.contributions.append(
                    forecasting_pb2.ModelContribution(
                        model_name=name,
                        weight=float(np.mean(prediction.median_weights[name])),
                        forecasts=_quantile_forecasts(
                            values[0], ensemble.levels, levels, prepared.origin_date
                        ),
                        model=self._model_info(artifact, ensemble, name),
                    )
                )
        if include.feature_importances:
            response.feature_importances.extend(_importances(importances))
        return response

    # ---- Backtest ----------------------------------------------------------------------------

    async def Backtest(
        self, request: forecasting_pb2.BacktestRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> forecasting_pb2.BacktestResponse:
        artifact = self._holder.require()
        ensemble = self._ensemble(artifact, request.target)
        config = request.config
        horizon = self._horizon(config.horizon_days, ensemble, "config.horizon_days")
        levels = requested_levels(request.quantiles, ensemble.levels)
        known = {ENSEMBLE, SEASONAL_NAIVE, *ensemble.members}
        for i, name in enumerate(request.models):
            if name not in known:
                raise ValidationError(
                    f"unknown model '{name}'; known: {', '.join(sorted(known))}", field=f"models[{i}]"
                )
        history = await self._history(request.patient.pseudonym, request.target, request.history)
        prepared = self._prepare(history, request.covariates, ensemble, 0)
        if config.step_days == 0:
            raise ValidationError("step_days must be at least 1", field="config.step_days")
        if not config.expanding_window and config.window_days == 0:
            raise ValidationError("a sliding window needs window_days", field="config.window_days")
        max_origins = min(
            config.max_origins or self._settings.backtest_max_origins, self._settings.backtest_max_origins
        )
        windows = rolling_windows(
            [prepared.panel],
            horizon,
            stride=config.step_days,
            min_observed_days=ensemble.config.min_observed_days,
            first_origin=max(0, config.initial_train_days - 1),
            max_origins=max_origins,
        )
        if len(windows) == 0:
            raise ValidationError(
                "the history leaves no origin to evaluate: it needs more days after initial_train_days "
                "with observed values in the horizon",
                field="history",
            )
        season = request.mase_seasonality_days or 7
        models = list(request.models) or [ENSEMBLE, *ensemble.members, SEASONAL_NAIVE]
        window_days = 0 if config.expanding_window else config.window_days
        scores = await self._run(
            lambda: _backtest(
                ensemble,
                prepared.panel,
                windows.origins.tolist(),
                windows.actual,
                horizon,
                levels,
                models,
                season,
                window_days,
            )
        )
        response = forecasting_pb2.BacktestResponse(
            patient=request.patient,
            target=request.target,
            origin_dates=[prepared.panel.date_of(o).isoformat() for o in windows.origins.tolist()],
            warnings=prepared.warnings,
        )
        for s in scores:
            response.metrics.append(_backtest_metrics(s, len(windows)))
        finite = [s for s in scores if math.isfinite(s.wql)]
        if finite:
            response.best_model = min(finite, key=lambda s: s.wql).model
        return response

    # ---- GetModelInfo ------------------------------------------------------------------------

    async def GetModelInfo(
        self, request: forecasting_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> forecasting_pb2.GetModelInfoResponse:
        artifact = self._holder.artifact
        if artifact is None:
            return forecasting_pb2.GetModelInfoResponse(ready=False, not_ready_reason=self._holder.problem)
        response = forecasting_pb2.GetModelInfoResponse(ready=True)
        for ensemble in artifact.ensembles.values():
            response.models.append(self._model_info(artifact, ensemble, ENSEMBLE))
            for name in ensemble.members:
                response.models.append(self._model_info(artifact, ensemble, name))
        return response

    # ---- helpers -----------------------------------------------------------------------------

    async def _run(self, work: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _ensemble(self, artifact: ForecastArtifact, target: int) -> Ensemble:
        name = TARGETS.get(target)
        if name is None:
            raise ValidationError("target must be PHQ9_TOTAL, GAD7_TOTAL or MOOD_RATING", field="target")
        ensemble = artifact.ensembles.get(name)
        if ensemble is None:
            raise ValidationError(f"the loaded models do not forecast {name}", field="target")
        return ensemble

    def _horizon(self, requested: int, ensemble: Ensemble, field: str) -> int:
        horizon = requested or self._settings.default_forecast_horizon
        maximum = min(self._settings.max_forecast_horizon, ensemble.max_horizon)
        if horizon > maximum:
            raise ValidationError(f"horizon of {horizon} days is above the maximum of {maximum}", field=field)
        return horizon

    async def _history(
        self, patient: str, target: int, history: Sequence[common_pb2.DailyValue]
    ) -> list[DatedValue]:
        if history:
            return [DatedValue(v.date, v.value if v.HasField("value") else None) for v in history]
        if not patient:
            raise ValidationError(
                "a request without a history must name the patient", field="patient.pseudonym"
            )
        if self._twin is None:
            raise ValidationError(
                "history is empty and no twin is configured to read it from", field="history"
            )
        try:
            found = await self._twin.history(patient, target, self._settings.forecast_max_history_days)
        except NotFoundError:
            raise NotFoundError(
                "unknown patient: the twin holds no such patient", field="patient.pseudonym"
            ) from None
        if not found:
            raise ValidationError("the twin holds no history of this score for the patient", field="history")
        return found

    def _prepare(
        self,
        history: Sequence[DatedValue],
        covariates: Sequence[forecasting_pb2.Covariate],
        ensemble: Ensemble,
        horizon: int,
    ) -> PreparedRequest:
        inputs = [
            CovariateInput(
                name=c.series.name,
                values=[
                    DatedValue(v.date, v.value if v.HasField("value") else None) for v in c.series.values
                ],
                known_future=c.kind == forecasting_pb2.COVARIATE_KIND_KNOWN_FUTURE,
            )
            for c in covariates
        ]
        return prepare(
            history,
            inputs,
            spec=ensemble.spec,
            schema=ensemble.schema,
            horizon=horizon,
            min_observed_days=ensemble.config.min_observed_days,
            max_history_days=self._settings.forecast_max_history_days,
        )

    def _model_info(self, artifact: ForecastArtifact, ensemble: Ensemble, name: str) -> common_pb2.ModelInfo:
        manifest = artifact.manifest
        trained_at = Timestamp()
        trained_at.FromDatetime(dt.datetime.fromisoformat(manifest["trained_at"]))
        metrics = manifest["backtest"]["metrics"].get(ensemble.spec.name, {}).get(name, {})
        cohort = manifest["data"]["cohort"]
        return common_pb2.ModelInfo(
            name=f"{manifest['name']}/{ensemble.spec.name}"
            if name == ENSEMBLE
            else f"{name}/{ensemble.spec.name}",
            version=str(manifest["version"]),
            weights_sha256=artifact.sha256,
            trained_at=trained_at,
            training_data=f"synthetic cohort: {cohort.get('patients')} patients x {cohort.get('days')} days "
            f"(seed {manifest['seed']})",
            quality_metrics={k: float(v) for k, v in metrics.items()},
            runtime_device=self._holder.device,
        )

    def _calibration(
        self, artifact: ForecastArtifact, ensemble: Ensemble, levels: Sequence[float], horizon: int
    ) -> forecasting_pb2.IntervalCalibration:
        pairs = central_pairs(levels)
        out = forecasting_pb2.IntervalCalibration(method=METHOD, coverage_target=_outer_coverage(levels))
        if not pairs:
            return out
        outer = pairs[0]
        try:
            p = ensemble.conformal.pairs.index(outer)
        except ValueError:
            return out
        out.calibration_samples = int(ensemble.conformal.samples[p, :horizon].sum())
        metrics = artifact.manifest["backtest"]["metrics"].get(ensemble.spec.name, {}).get(ENSEMBLE, {})
        key = f"coverage_{round((outer[1] - outer[0]) * 100)}"
        if key in metrics:
            out.empirical_coverage = float(metrics[key])
        return out


def requested_levels(requested: Sequence[float], trained: Sequence[float]) -> tuple[float, ...]:
    """The request's quantile levels (default 0.1/0.5/0.9), each one the models were trained for."""
    levels = sorted({round(q, 9) for q in requested}) if requested else list(DEFAULT_LEVELS)
    served = {round(q, 9) for q in trained}
    for i, level in enumerate(levels):
        if not 0.0 < level < 1.0:
            raise ValidationError(f"quantile {level:g} is outside (0, 1)", field=f"quantiles[{i}]")
        if level not in served:
            raise ValidationError(
                f"unknown quantile {level:g}; the models serve {', '.join(f'{q:g}' for q in sorted(served))}",
                field=f"quantiles[{i}]",
            )
    return tuple(levels)


def _check_time_zone(name: str) -> None:
    if not name:
        return
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("unknown IANA time zone", field="time_zone") from None


def _outer_coverage(levels: Sequence[float]) -> float:
    pairs = central_pairs(levels)
    return round(pairs[0][1] - pairs[0][0], 9) if pairs else 0.0


def _forecast(
    ensemble: Ensemble, prepared: PreparedRequest, horizon: int, explain: bool
) -> tuple[EnsemblePrediction, list[Importance]]:
    prediction = ensemble.predict([prepared.panel], [prepared.origin], horizon)
    importances = ensemble.explain(prepared.panel, prepared.origin, horizon) if explain else []
    return prediction, importances


def _quantile_forecasts(
    values: np.ndarray, trained: Sequence[float], levels: Sequence[float], origin: dt.date
) -> list[common_pb2.QuantileForecast]:
    index = {round(q, 9): i for i, q in enumerate(trained)}
    return [
        common_pb2.QuantileForecast(
            horizon_day=h + 1,
            target_date=(origin + dt.timedelta(days=h + 1)).isoformat(),
            quantiles=[
                common_pb2.QuantileValue(quantile=q, value=round(float(values[h, index[round(q, 9)]]), 4))
                for q in levels
            ],
        )
        for h in range(values.shape[0])
    ]


def _importances(importances: Sequence[Importance]) -> list[forecasting_pb2.FeatureImportance]:
    by_model: dict[str, list[Importance]] = {}
    for item in importances:
        if item.horizon_day == 0 and math.isfinite(item.value):
            by_model.setdefault(item.model, []).append(item)
    chosen: list[Importance] = []
    for items in by_model.values():
        chosen.extend(sorted(items, key=lambda i: -i.value)[:MAX_IMPORTANCES_PER_MODEL])
    chosen.sort(key=lambda i: (i.model, -i.value))
    return [
        forecasting_pb2.FeatureImportance(
            feature=i.feature,
            importance=round(float(max(i.value, 0.0)), 6),
            method=_METHODS[i.method],
            model_name=i.model,
            horizon_day=i.horizon_day,
        )
        for i in chosen
    ]


def _backtest(
    ensemble: Ensemble,
    panel: Panel,
    origins: list[int],
    actual: np.ndarray,
    horizon: int,
    levels: Sequence[float],
    models: Sequence[str],
    season: int,
    window_days: int,
) -> list[ModelScore]:
    views = [_window_view(panel, origin, horizon, window_days) for origin in origins]
    local_origins = [view.length - 1 for view in views]
    return score_models(
        ensemble, views, local_origins, actual, horizon, levels=levels, season=season, models=models
    )


def _window_view(panel: Panel, origin: int, horizon: int, window_days: int) -> Panel:
    """The panel as seen at ``origin``: known-future values through the horizon (NaN past the
    end of the data); a sliding window keeps only the last ``window_days`` of history."""
    view = panel.truncated(origin, horizon)
    future = np.full((origin + 1 + horizon, view.future.shape[1]), np.nan)
    future[: view.future.shape[0]] = view.future
    cut = view.length - window_days if window_days and view.length > window_days else 0
    return Panel(
        key=view.key,
        start=view.date_of(cut),
        target=view.target[cut:],
        past=view.past[cut:],
        future=future[cut:],
    )


def _backtest_metrics(s: ModelScore, origins: int) -> forecasting_pb2.BacktestModelMetrics:
    out = forecasting_pb2.BacktestModelMetrics(
        model_name=s.model,
        weighted_quantile_loss=_finite(s.wql),
        mase=_finite(s.mase),
        origins=origins,
        scored_points=s.scored_points,
    )
    for interval in s.intervals:
        out.coverage.append(
            forecasting_pb2.IntervalCoverage(
                lower_quantile=interval.lower,
                upper_quantile=interval.upper,
                nominal_coverage=interval.nominal,
                empirical_coverage=_finite(interval.coverage),
                mean_width=_finite(interval.mean_width),
            )
        )
    for h in s.by_horizon:
        out.by_horizon.append(
            forecasting_pb2.HorizonMetrics(
                horizon_day=h.horizon_day,
                weighted_quantile_loss=_finite(h.wql),
                mase=_finite(h.mase),
                coverage=_finite(h.coverage),
            )
        )
    return out


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0
