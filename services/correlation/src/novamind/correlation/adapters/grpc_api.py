"""The gRPC face of the correlation service (``novamind.api.correlation.v1.CorrelationService``).

AnalyzeCorrelations lays the request's daily series on one day grid
(:mod:`novamind.correlation.domain.alignment`), runs every lagged test with effective-sample-size
p-values and Benjamini-Hochberg q-values (:mod:`novamind.correlation.domain.engine`) and, when
asked, Granger tests (:mod:`novamind.correlation.domain.granger`). Signals must be ones the
service knows (their names are the contract's series names); errors name the field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc

from novamind.api.common.v1 import common_pb2
from novamind.api.correlation.v1 import correlation_pb2, correlation_pb2_grpc
from novamind.core.errors import ValidationError
from novamind.core.symptoms import SERIES_NAMES
from novamind.correlation.config import CorrelationSettings
from novamind.correlation.domain import engine, granger
from novamind.correlation.domain.alignment import DailyValue, NamedDailySeries, align_days, load_zone

#: Biometric series the service correlates (daily summaries the twin and devices produce).
BIOMETRICS = frozenset(
    {
        "total_sleep_time_minutes",
        "sleep_efficiency",
        "sleep_onset_latency_minutes",
        "wake_after_sleep_onset_minutes",
        "steps",
        "heart_rate",
        "resting_heart_rate",
        "hrv_rmssd",
        "interdaily_stability",
        "intradaily_variability",
        "relative_amplitude",
        "pat_embedding_shift",
    }
)
#: Symptom series (the instruments' daily totals).
SYMPTOMS = frozenset(SERIES_NAMES.values())
_METHODS = {
    correlation_pb2.CORRELATION_METHOD_PEARSON: engine.Method.PEARSON,
    correlation_pb2.CORRELATION_METHOD_SPEARMAN: engine.Method.SPEARMAN,
}
_PB_METHODS = {v: k for k, v in _METHODS.items()}


class CorrelationServicer(correlation_pb2_grpc.CorrelationServiceServicer):
    """Serves ``CorrelationService``."""

    def __init__(self, settings: CorrelationSettings) -> None:
        self._settings = settings

    async def AnalyzeCorrelations(
        self, request: correlation_pb2.AnalyzeCorrelationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> correlation_pb2.AnalyzeCorrelationsResponse:
        if request.time_zone:
            load_zone(request.time_zone)
        _check_names(request.biometrics, BIOMETRICS, "biometrics")
        _check_names(request.symptoms, SYMPTOMS, "symptoms")
        methods = []
        for i, method in enumerate(request.methods):
            if method not in _METHODS:
                raise ValidationError("unknown correlation method", field=f"methods[{i}]")
            methods.append(_METHODS[method])
        options = engine.AnalysisOptions(
            max_lag=request.max_lag_days if request.HasField("max_lag_days") else engine.MAX_LAG_DAYS,
            methods=tuple(methods) or (engine.Method.PEARSON, engine.Method.SPEARMAN),
            fdr_alpha=request.fdr_alpha if request.HasField("fdr_alpha") else 0.05,
            min_abs_coefficient=request.min_abs_coefficient
            if request.HasField("min_abs_coefficient")
            else self._settings.correlation_threshold,
            min_overlap_days=request.min_overlap_days if request.HasField("min_overlap_days") else 14,
            confidence_level=request.confidence_level if request.HasField("confidence_level") else 0.95,
        )
        if options.max_lag > engine.MAX_LAG_DAYS:
            raise ValidationError(
                f"lag range too large: at most {engine.MAX_LAG_DAYS} days", field="max_lag_days"
            )
        aligned = align_days(
            {"biometrics": _series(request.biometrics), "symptoms": _series(request.symptoms)},
            max_days=self._settings.correlation_max_days,
        )
        biometrics = {s.name: aligned.column(s.name) for s in request.biometrics}
        symptoms = {s.name: aligned.column(s.name) for s in request.symptoms}
        analysis, causality = await asyncio.to_thread(
            _analyze, biometrics, symptoms, options, request.include_granger
        )
        response = correlation_pb2.AnalyzeCorrelationsResponse(
            patient=request.patient,
            tests_performed=analysis.tests_performed,
            fdr_alpha=analysis.fdr_alpha,
            notes=list(analysis.notes),
            warnings=list(analysis.warnings),
        )
        response.generated_at.GetCurrentTime()
        for c in analysis.correlations:
            response.correlations.append(
                correlation_pb2.LaggedCorrelation(
                    biometric=c.biometric,
                    symptom=c.symptom,
                    lag_days=c.lag_days,
                    method=_PB_METHODS[c.method],
                    coefficient=c.coefficient,
                    ci_low=c.ci_low,
                    ci_high=c.ci_high,
                    p_value=c.p_value,
                    q_value=c.q_value,
                    n_effective=c.n_effective,
                    n_pairs=c.n_pairs,
                    significant=c.significant,
                )
            )
        if causality is not None:
            response.warnings.extend(causality.warnings)
            for g in causality.results:
                response.granger.append(
                    correlation_pb2.GrangerResult(
                        biometric=g.biometric,
                        symptom=g.symptom,
                        lag_order=g.lag_order,
                        f_statistic=g.f_statistic,
                        df_numerator=g.df_numerator,
                        df_denominator=g.df_denominator,
                        p_value=g.p_value,
                        q_value=g.q_value,
                        significant=g.significant,
                        n_observations=g.n_observations,
                        notes=list(g.notes),
                    )
                )
        if request.include_model_explanation:
            response.warnings.append("no attention model is loaded: the explanation is left out")
        return response

    async def GetModelInfo(
        self, request: correlation_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> correlation_pb2.GetModelInfoResponse:
        return correlation_pb2.GetModelInfoResponse(
            ready=False, not_ready_reason="no attention model is configured; the statistical engine serves"
        )


def _check_names(series: Sequence[common_pb2.DailySeries], known: frozenset[str], field: str) -> None:
    for i, s in enumerate(series):
        if s.name and s.name not in known:
            raise ValidationError(
                f"unknown signal; known {field}: {', '.join(sorted(known))}", field=f"{field}[{i}].name"
            )


def _series(series: Sequence[common_pb2.DailySeries]) -> list[NamedDailySeries]:
    return [
        NamedDailySeries(
            name=s.name,
            values=[DailyValue(v.date, v.value if v.HasField("value") else None) for v in s.values],
        )
        for s in series
    ]


def _analyze(
    biometrics: dict[str, Any], symptoms: dict[str, Any], options: engine.AnalysisOptions, with_granger: bool
) -> tuple[engine.CorrelationAnalysis, granger.GrangerAnalysis | None]:
    analysis = engine.analyze(biometrics, symptoms, options)
    if not with_granger:
        return analysis, None
    return analysis, granger.granger_tests(biometrics, symptoms, options.max_lag, options.fdr_alpha)
