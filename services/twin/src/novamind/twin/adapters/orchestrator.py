"""Integrated insights: the four model services called in parallel, with partial results.

Each requested section (actigraphy via pat, forecast, correlations, medications) runs as its
own task under its own deadline: ``min(section deadline, overall deadline remaining)``. Calls go
through the dependency's :class:`~novamind.core.rpc.ServiceClient`, so each dependency has its
circuit breaker and transient failures are retried with jittered backoff (all four calls are
reads, hence idempotent); the retries stop at the section deadline. A dependency whose breaker
is open is not called at all: its section fails at once with SERVICE_UNAVAILABLE and a
``retry_after`` of the breaker's remaining cool-down.

A section that fails is absent from the response and listed in ``section_errors`` with the
core error mapping (code, message, service, retryable). A section whose inputs are missing is
not called: NOT_FOUND when nothing is recorded (no genotype, no symptom history, no actigraphy),
VALIDATION_ERROR when too little is (fewer days of history than the section needs); the
error's service is ``twin`` and its field names the missing input. Sections switched off in the
options are neither called nor reported.

Actigraphy: with a stored minute-level week (``InsightInputs.week``) pat analyses it now (metrics,
plus the explanation and FHIR Bundle when the options ask). Without a week the section is the
twin's stored latest analysis, not a call; it then has no explanation or FHIR Bundle, which the
proto expresses by their absence (they are not an error: the section itself is present). The
``previous`` analysis is the twin's stored latest when pat analysed a later week, else
``InsightInputs.previous_actigraphy``.

Forecast: one Forecast call per target score with at least ``forecast_min_history_days`` days
of history (the last report per local day, within the lookback window ending at the newest
observation); the section holds the forecasts that succeeded and fails only when all failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf.duration_pb2 import Duration
from prometheus_client import Counter

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.api.common.v1 import common_pb2
from novamind.api.correlation.v1 import correlation_pb2, correlation_pb2_grpc
from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2, pharmacogenomics_pb2_grpc
from novamind.api.twin.v1 import twin_pb2
from novamind.core.errors import (
    DeadlineExceededError,
    ErrorCode,
    NotFoundError,
    NovamindError,
    ServiceUnavailableError,
    ValidationError,
)
from novamind.core.logging import safe
from novamind.core.resilience import (
    BreakerSnapshot,
    CircuitBreakers,
    RetryPolicy,
    deadline_scope,
    time_remaining,
)
from novamind.core.rpc import ServiceClient, error_detail, open_channel
from novamind.core.symptoms import daily_symptom_totals
from novamind.twin.domain import recommendations as rules
from novamind.twin.domain.medications import MedicationEntry, antidepressant_days

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The dependencies the orchestrator calls, by ServiceClient dependency name.
DEPENDENCIES: tuple[str, ...] = ("pat", "forecasting", "correlation", "pharmacogenomics")

SECTION_ACTIGRAPHY = rules.SECTION_ACTIGRAPHY
SECTION_FORECAST = rules.SECTION_FORECAST
SECTION_CORRELATIONS = rules.SECTION_CORRELATIONS
SECTION_MEDICATIONS = rules.SECTION_MEDICATIONS

#: Which dependency serves each section.
SECTION_DEPENDENCY: Mapping[str, str] = {
    SECTION_ACTIGRAPHY: "pat",
    SECTION_FORECAST: "forecasting",
    SECTION_CORRELATIONS: "correlation",
    SECTION_MEDICATIONS: "pharmacogenomics",
}

#: The service named in errors about the twin's own inputs.
TWIN_SERVICE = "twin"

INSIGHT_SECTIONS = Counter(
    "novamind_twin_insight_sections_total",
    "Insight sections computed, by section and outcome (OK or the error code)",
    ["section", "outcome"],
)

_SYMPTOM_SERIES: Mapping[int, tuple[str, forecasting_pb2.TargetSymptom.ValueType]] = {
    common_pb2.SYMPTOM_INSTRUMENT_PHQ9: ("phq9_total", forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL),
    common_pb2.SYMPTOM_INSTRUMENT_GAD7: ("gad7_total", forecasting_pb2.TARGET_SYMPTOM_GAD7_TOTAL),
    common_pb2.SYMPTOM_INSTRUMENT_MOOD: ("mood_rating", forecasting_pb2.TARGET_SYMPTOM_MOOD_RATING),
}
_INSTRUMENTS: Mapping[int, rules.Instrument] = {
    common_pb2.SYMPTOM_INSTRUMENT_PHQ9: rules.Instrument.PHQ9,
    common_pb2.SYMPTOM_INSTRUMENT_GAD7: rules.Instrument.GAD7,
    common_pb2.SYMPTOM_INSTRUMENT_MOOD: rules.Instrument.MOOD,
}
_TARGETS: Mapping[int, rules.ForecastTarget] = {
    forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL: rules.ForecastTarget.PHQ9_TOTAL,
    forecasting_pb2.TARGET_SYMPTOM_GAD7_TOTAL: rules.ForecastTarget.GAD7_TOTAL,
    forecasting_pb2.TARGET_SYMPTOM_MOOD_RATING: rules.ForecastTarget.MOOD_RATING,
}
_pgx = pharmacogenomics_pb2
_ACTIONS: Mapping[int, rules.GuidanceAction] = {
    _pgx.RECOMMENDATION_ACTION_STANDARD_DOSING: rules.GuidanceAction.STANDARD_DOSING,
    _pgx.RECOMMENDATION_ACTION_REDUCE_DOSE: rules.GuidanceAction.REDUCE_DOSE,
    _pgx.RECOMMENDATION_ACTION_INCREASE_DOSE: rules.GuidanceAction.INCREASE_DOSE,
    _pgx.RECOMMENDATION_ACTION_CONSIDER_ALTERNATIVE: rules.GuidanceAction.CONSIDER_ALTERNATIVE,
    _pgx.RECOMMENDATION_ACTION_AVOID: rules.GuidanceAction.AVOID,
    _pgx.RECOMMENDATION_ACTION_NO_RECOMMENDATION: rules.GuidanceAction.NO_RECOMMENDATION,
    _pgx.RECOMMENDATION_ACTION_INSUFFICIENT_DATA: rules.GuidanceAction.INSUFFICIENT_DATA,
}
_STRENGTHS: Mapping[int, str] = {
    pharmacogenomics_pb2.RECOMMENDATION_STRENGTH_STRONG: "strong",
    pharmacogenomics_pb2.RECOMMENDATION_STRENGTH_MODERATE: "moderate",
    pharmacogenomics_pb2.RECOMMENDATION_STRENGTH_OPTIONAL: "optional",
}
_SEVERITIES: Mapping[int, rules.Severity] = {
    pharmacogenomics_pb2.SEVERITY_LOW: rules.Severity.LOW,
    pharmacogenomics_pb2.SEVERITY_MODERATE: rules.Severity.MODERATE,
    pharmacogenomics_pb2.SEVERITY_HIGH: rules.Severity.HIGH,
}
_INTERACTION_KINDS: Mapping[int, str] = {
    pharmacogenomics_pb2.INTERACTION_KIND_DRUG_GENE: "drug-gene",
    pharmacogenomics_pb2.INTERACTION_KIND_DRUG_DRUG: "drug-drug",
    pharmacogenomics_pb2.INTERACTION_KIND_DRUG_DRUG_GENE: "drug-drug-gene",
}


@dataclass
class InsightInputs:
    """What the twin supplies for one insights computation.

    ``week`` is the trailing minute-level week of stored activity counts (None when none is
    stored); ``daily_biometrics`` are daily summaries such as steps, heart rate and total sleep
    time per night, patient-local dates.
    """

    twin: twin_pb2.Twin
    previous_actigraphy: twin_pb2.ActigraphySummary | None = None
    week: common_pb2.TimeSeries | None = None
    daily_biometrics: list[common_pb2.DailySeries] = field(default_factory=list)


@dataclass(frozen=True)
class InsightsSettings:
    """Deadlines (seconds) and input minimums of the insights computation."""

    #: The whole GetInsights computation; also capped by the caller's gRPC deadline.
    overall_deadline_seconds: float = 2.0
    #: Each dependency's own section deadline (capped by what is left of the overall one).
    pat_timeout_seconds: float = 1.5
    forecasting_timeout_seconds: float = 1.5
    correlation_timeout_seconds: float = 1.5
    pharmacogenomics_timeout_seconds: float = 1.5
    #: Days with a value a score needs before it is forecast.
    forecast_min_history_days: int = 7
    #: Days with a value a symptom and a biometric series need before correlations are computed.
    correlation_min_days: int = 14
    #: Horizon when the options leave it 0.
    default_forecast_days: int = 14
    #: Lookback window when the options leave it 0.
    default_lookback_days: int = 90
    #: Thresholds of the recommendation rules.
    thresholds: rules.RuleThresholds = field(default_factory=rules.RuleThresholds)

    def timeout_for(self, dependency: str) -> float:
        """The section deadline of ``dependency`` in seconds."""
        return {
            "pat": self.pat_timeout_seconds,
            "forecasting": self.forecasting_timeout_seconds,
            "correlation": self.correlation_timeout_seconds,
            "pharmacogenomics": self.pharmacogenomics_timeout_seconds,
        }.get(dependency, self.overall_deadline_seconds)


def build_clients(
    addresses: Mapping[str, str],
    *,
    breakers: CircuitBreakers,
    retry_policy: RetryPolicy,
    default_timeout: float,
) -> dict[str, ServiceClient]:
    """One ServiceClient per entry of ``addresses`` (dependency name -> "host:port")."""
    return {
        name: ServiceClient(
            name,
            open_channel(address, default_timeout=default_timeout),
            breakers=breakers,
            retry_policy=retry_policy,
        )
        for name, address in addresses.items()
    }


@dataclass
class _Outcome:
    section: str
    value: Any = None
    error: common_pb2.ErrorDetail | None = None


class InsightsOrchestrator:
    """Computes GetInsights responses from the twin and the four model services.

    ``clients`` maps "pat", "forecasting", "correlation" and "pharmacogenomics" to their
    ServiceClient (see :func:`build_clients`); ``breakers`` is the CircuitBreakers the clients
    share (taken from the clients when omitted).
    """

    def __init__(
        self,
        clients: Mapping[str, ServiceClient],
        settings: InsightsSettings,
        *,
        breakers: CircuitBreakers | None = None,
    ) -> None:
        self._clients = dict(clients)
        self._settings = settings
        if breakers is None:
            # Every client of build_clients shares one CircuitBreakers.
            breakers = next((c.breakers for c in self._clients.values()), None) or CircuitBreakers()
        self._breakers = breakers

    # ---- public API ------------------------------------------------------------------------

    async def insights(
        self, inputs: InsightInputs, options: twin_pb2.InsightOptions
    ) -> twin_pb2.GetInsightsResponse:
        """The insights of ``inputs.twin``; failed sections are listed in ``section_errors``.

        Returns within ``overall_deadline_seconds`` (or the caller's deadline, if sooner)
        whatever the dependencies do.
        """
        response = twin_pb2.GetInsightsResponse(twin_version=inputs.twin.version)
        response.patient.CopyFrom(inputs.twin.patient)
        response.generated_at.GetCurrentTime()
        context = _Context.build(inputs, options, self._settings)

        work: dict[str, Callable[[], Awaitable[Any]]] = {}
        if _enabled(options, "include_actigraphy"):
            work[SECTION_ACTIGRAPHY] = lambda: self._actigraphy(context)
        if _enabled(options, "include_forecast"):
            work[SECTION_FORECAST] = lambda: self._forecast(context)
        if _enabled(options, "include_correlations"):
            work[SECTION_CORRELATIONS] = lambda: self._correlations(context)
        if _enabled(options, "include_medications"):
            work[SECTION_MEDICATIONS] = lambda: self._medications(context)

        with deadline_scope(self._settings.overall_deadline_seconds):
            outcomes = await asyncio.gather(*(self._run_section(name, run) for name, run in work.items()))

        for outcome in outcomes:
            INSIGHT_SECTIONS.labels(
                outcome.section, "OK" if outcome.error is None else outcome.error.code
            ).inc()
            if outcome.error is not None:
                response.section_errors.add(section=outcome.section, error=outcome.error)
            elif outcome.section == SECTION_ACTIGRAPHY:
                response.actigraphy.CopyFrom(outcome.value)
            elif outcome.section == SECTION_FORECAST:
                response.forecast.CopyFrom(outcome.value)
            elif outcome.section == SECTION_CORRELATIONS:
                response.correlations.CopyFrom(outcome.value)
            elif outcome.section == SECTION_MEDICATIONS:
                response.medications.CopyFrom(outcome.value)

        for rec in rules.recommend(recommendation_inputs(response, context, self._settings.thresholds)):
            response.recommendations.add(
                id=rec.rule_id,
                text=rec.text,
                priority=int(rec.priority),
                evidence=rec.evidence,
                sections_used=rec.sections_used,
            )
        return response

    async def breaker_state(self, dependency: str) -> str:
        """``closed``, ``half-opened`` (a trial call may go through) or ``opened``."""
        snapshot = await self._breaker_snapshot(dependency)
        if snapshot.state == "opened" and snapshot.seconds_to_half_open() == 0.0:
            return "half-opened"
        return snapshot.state

    async def close(self) -> None:
        """Close the dependency channels."""
        for client in self._clients.values():
            await client.channel.close(None)

    # ---- sections --------------------------------------------------------------------------

    async def _run_section(self, section: str, run: Callable[[], Awaitable[Any]]) -> _Outcome:
        dependency = SECTION_DEPENDENCY[section]
        remaining = time_remaining()
        own = self._settings.timeout_for(dependency)
        timeout = own if remaining is None else min(own, remaining)
        try:
            if timeout <= 0:
                raise DeadlineExceededError(
                    "deadline exceeded before the section started", service=dependency
                )
            with deadline_scope(timeout):
                async with asyncio.timeout(timeout):
                    return _Outcome(section, value=await run())
        except TimeoutError:
            error: NovamindError = DeadlineExceededError(
                "deadline exceeded waiting for the service", service=dependency
            )
        except NovamindError as exc:
            error = exc
        except Exception:
            log.exception("insight section %s failed", safe(section))
            error = NovamindError("internal error computing the section", service=TWIN_SERVICE)
        detail = error_detail(error, dependency)
        if error.code is ErrorCode.SERVICE_UNAVAILABLE and detail.service == dependency:
            wait = (await self._breaker_snapshot(dependency)).seconds_to_half_open()
            if wait is not None:
                detail.retry_after.CopyFrom(Duration(seconds=int(wait), nanos=int((wait % 1) * 1e9)))
        log.info(
            "insight section %s unavailable: %s from %s",
            safe(section),
            safe(detail.code),
            safe(detail.service),
        )
        return _Outcome(section, error=detail)

    async def _actigraphy(self, context: _Context) -> twin_pb2.ActigraphySection:
        inputs, options = context.inputs, context.options
        twin = inputs.twin
        section = twin_pb2.ActigraphySection()
        if inputs.week is None:
            if not twin.HasField("latest_actigraphy"):
                raise NotFoundError(
                    "no actigraphy analysis or stored week of activity counts",
                    field="twin.latest_actigraphy",
                    service=TWIN_SERVICE,
                )
            section.latest.CopyFrom(twin.latest_actigraphy)
            if inputs.previous_actigraphy is not None:
                section.previous.CopyFrom(inputs.previous_actigraphy)
            return section
        request = actigraphy_pb2.AnalyzeRequest(
            patient=twin.patient,
            week=inputs.week,
            include=actigraphy_pb2.AnalysisInclude(
                metrics=True, explanation=options.actigraphy_explanation, fhir=options.actigraphy_fhir
            ),
        )
        stub = actigraphy_pb2_grpc.ActigraphyServiceStub(self._client("pat").channel)
        analysed = await self._call("pat", stub.Analyze, request)
        section.latest.CopyFrom(summary_from_analysis(analysed, inputs.week))
        stored = twin.latest_actigraphy if twin.HasField("latest_actigraphy") else None
        if stored is not None and stored.week.start.ToDatetime() < section.latest.week.start.ToDatetime():
            section.previous.CopyFrom(stored)
        elif inputs.previous_actigraphy is not None:
            section.previous.CopyFrom(inputs.previous_actigraphy)
        if options.actigraphy_explanation and analysed.HasField("explanation"):
            section.explanation.CopyFrom(analysed.explanation)
        if options.actigraphy_fhir:
            section.fhir_bundle_json = analysed.fhir_bundle_json
        return section

    async def _forecast(self, context: _Context) -> twin_pb2.ForecastSection:
        if not context.symptom_series:
            raise NotFoundError("no symptom history", field="twin.symptom_history", service=TWIN_SERVICE)
        minimum = self._settings.forecast_min_history_days
        targets = list(context.options.forecast_targets) or [t for _, t in _SYMPTOM_SERIES.values()]
        eligible = [
            (target, series)
            for target in targets
            if (series := context.series_for_target(target)) is not None
            and _days_with_values(series) >= minimum
        ]
        if not eligible:
            raise ValidationError(
                f"a forecast needs at least {minimum} days of history of a score",
                field="twin.symptom_history",
                service=TWIN_SERVICE,
            )
        stub = forecasting_pb2_grpc.ForecastingServiceStub(self._client("forecasting").channel)
        horizon = context.options.forecast_days or self._settings.default_forecast_days
        covariates = [
            forecasting_pb2.Covariate(series=series, kind=forecasting_pb2.COVARIATE_KIND_PAST_ONLY)
            for series in context.biometrics
        ]
        covariates.append(
            forecasting_pb2.Covariate(
                series=_antidepressant_series(context, [series for _, series in eligible], horizon),
                kind=forecasting_pb2.COVARIATE_KIND_KNOWN_FUTURE,
            )
        )
        requests = [
            forecasting_pb2.ForecastRequest(
                patient=context.inputs.twin.patient,
                target=target,
                history=series.values,
                covariates=covariates,
                horizon_days=horizon,
                time_zone=context.time_zone_name,
                # the clinician sees why: named feature importances of every member
                include=forecasting_pb2.ForecastInclude(feature_importances=True),
            )
            for target, series in eligible
        ]
        results = await asyncio.gather(
            *(self._call("forecasting", stub.Forecast, request) for request in requests),
            return_exceptions=True,
        )
        forecasts = [r for r in results if isinstance(r, forecasting_pb2.ForecastResponse)]
        if not forecasts:
            failure = next(r for r in results if isinstance(r, BaseException))
            raise failure
        return twin_pb2.ForecastSection(forecasts=forecasts)

    async def _correlations(self, context: _Context) -> twin_pb2.CorrelationSection:
        minimum = self._settings.correlation_min_days
        if not context.symptom_series:
            raise NotFoundError("no symptom history", field="twin.symptom_history", service=TWIN_SERVICE)
        if not context.biometrics:
            raise NotFoundError("no daily biometric series", field="daily_biometrics", service=TWIN_SERVICE)
        if max(_days_with_values(s) for s in context.symptom_series) < minimum:
            raise ValidationError(
                f"correlations need at least {minimum} days of symptom history",
                field="twin.symptom_history",
                service=TWIN_SERVICE,
            )
        if max(_days_with_values(s) for s in context.biometrics) < minimum:
            raise ValidationError(
                f"correlations need at least {minimum} days of a biometric series",
                field="daily_biometrics",
                service=TWIN_SERVICE,
            )
        stub = correlation_pb2_grpc.CorrelationServiceStub(self._client("correlation").channel)
        request = correlation_pb2.AnalyzeCorrelationsRequest(
            patient=context.inputs.twin.patient,
            biometrics=context.biometrics,
            symptoms=context.symptom_series,
            time_zone=context.time_zone_name,
        )
        analysis = await self._call("correlation", stub.AnalyzeCorrelations, request)
        return twin_pb2.CorrelationSection(analysis=analysis)

    async def _medications(self, context: _Context) -> twin_pb2.MedicationSection:
        twin = context.inputs.twin
        if not twin.HasField("genotype") or not twin.genotype.genes:
            raise NotFoundError("no genotype recorded", field="twin.genotype", service=TWIN_SERVICE)
        current = current_medications(twin)
        candidates = list(dict.fromkeys(context.options.candidate_drugs))
        if candidates:
            # Guidance on what the patient already takes is always wanted.
            candidates += [m.name for m in current if m.name not in candidates]
        request = pharmacogenomics_pb2.RecommendMedicationsRequest(
            patient=twin.patient,
            genotype_results=pharmacogenomics_pb2.GenotypeResults(genes=twin.genotype.genes),
            current_medications=current,
            candidate_drugs=candidates,
        )
        stub = pharmacogenomics_pb2_grpc.PharmacogenomicsServiceStub(self._client("pharmacogenomics").channel)
        recommended = await self._call("pharmacogenomics", stub.RecommendMedications, request)
        return twin_pb2.MedicationSection(recommendations=recommended)

    # ---- calls -----------------------------------------------------------------------------

    def _client(self, dependency: str) -> ServiceClient:
        client = self._clients.get(dependency)
        if client is None:
            raise ServiceUnavailableError("dependency not configured", service=dependency)
        return client

    async def _call(self, dependency: str, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """One idempotent call through the dependency's client (an open breaker fails it at once)."""
        return await self._client(dependency).call(method, request, idempotent=True)

    async def _breaker_snapshot(self, dependency: str) -> BreakerSnapshot:
        return await self._breakers.snapshot(dependency)


# ---- inputs ----------------------------------------------------------------------------------


def _enabled(options: twin_pb2.InsightOptions, name: str) -> bool:
    """Unset booleans mean true."""
    return not options.HasField(name) or bool(getattr(options, name))  # type: ignore[arg-type]


def _time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _days_with_values(series: common_pb2.DailySeries) -> int:
    return sum(1 for v in series.values if v.HasField("value"))


def current_medications(twin: twin_pb2.Twin) -> list[common_pb2.Medication]:
    """The twin's medications that have not been stopped."""
    return [m for m in twin.medications if not m.HasField("stopped_at")]


def daily_symptom_series(
    reports: Sequence[twin_pb2.SymptomReport], time_zone: ZoneInfo
) -> dict[int, common_pb2.DailySeries]:
    """Per instrument, the daily series of totals: the last report of each patient-local day."""
    return {
        instrument: common_pb2.DailySeries(
            name=_SYMPTOM_SERIES[instrument][0],
            unit="{score}",
            values=[common_pb2.DailyValue(date=d.isoformat(), value=v) for d, v in sorted(days.items())],
        )
        for instrument, days in daily_symptom_totals(reports, time_zone).items()
        if instrument in _SYMPTOM_SERIES
    }


def _window(series: common_pb2.DailySeries, start: str) -> common_pb2.DailySeries:
    kept = [v for v in series.values if v.date >= start]
    return common_pb2.DailySeries(name=series.name, unit=series.unit, values=kept)


def _antidepressant_series(
    context: _Context, histories: Sequence[common_pb2.DailySeries], horizon: int
) -> common_pb2.DailySeries:
    """The known-future covariate ``antidepressant_active`` over the histories and the horizon."""
    dates = [date.fromisoformat(v.date) for s in histories for v in s.values]
    entries = [
        MedicationEntry(
            name=m.name,
            started_at=m.started_at.ToDatetime(tzinfo=UTC) if m.HasField("started_at") else None,
            stopped_at=m.stopped_at.ToDatetime(tzinfo=UTC) if m.HasField("stopped_at") else None,
        )
        for m in context.inputs.twin.medications
    ]
    days = antidepressant_days(
        entries, min(dates), max(dates) + timedelta(days=horizon), _time_zone(context.time_zone_name)
    )
    return common_pb2.DailySeries(
        name="antidepressant_active",
        unit="1",
        values=[common_pb2.DailyValue(date=d.isoformat(), value=v) for d, v in days.items()],
    )


@dataclass
class _Context:
    """Inputs of one insights computation, with the daily series derived once."""

    inputs: InsightInputs
    options: twin_pb2.InsightOptions
    time_zone_name: str
    symptom_series_by_instrument: dict[int, common_pb2.DailySeries]
    biometrics: list[common_pb2.DailySeries]

    @classmethod
    def build(
        cls, inputs: InsightInputs, options: twin_pb2.InsightOptions, settings: InsightsSettings
    ) -> _Context:
        zone_name = inputs.twin.time_zone or "UTC"
        symptoms = daily_symptom_series(inputs.twin.symptom_history, _time_zone(zone_name))
        biometrics = [s for s in inputs.daily_biometrics if _days_with_values(s) > 0]
        dates = [v.date for s in (*symptoms.values(), *biometrics) for v in s.values]
        if dates:
            # The lookback window ends at the newest observation.
            lookback = options.lookback_days or settings.default_lookback_days
            start = (date.fromisoformat(max(dates)) - timedelta(days=lookback - 1)).isoformat()
            symptoms = {k: _window(s, start) for k, s in symptoms.items()}
            biometrics = [_window(s, start) for s in biometrics]
        return cls(
            inputs=inputs,
            options=options,
            time_zone_name=zone_name,
            symptom_series_by_instrument={k: s for k, s in symptoms.items() if s.values},
            biometrics=[s for s in biometrics if _days_with_values(s) > 0],
        )

    @property
    def symptom_series(self) -> list[common_pb2.DailySeries]:
        return list(self.symptom_series_by_instrument.values())

    def series_for_target(self, target: int) -> common_pb2.DailySeries | None:
        for instrument, (_, series_target) in _SYMPTOM_SERIES.items():
            if series_target == target:
                return self.symptom_series_by_instrument.get(instrument)
        return None


# ---- proto -> domain -------------------------------------------------------------------------


def summary_from_analysis(
    analysed: actigraphy_pb2.AnalyzeResponse, week: common_pb2.TimeSeries
) -> twin_pb2.ActigraphySummary:
    """The twin's summary form of a pat analysis of ``week``."""
    summary = twin_pb2.ActigraphySummary(
        analysis_id=analysed.analysis_id,
        analyzed_at=analysed.analyzed_at,
        sleep=analysed.sleep,
        circadian=analysed.circadian,
        nights=analysed.nights,
        input_quality=analysed.input_quality,
        model=analysed.model,
    )
    if analysed.HasField("embedding"):
        summary.embedding.CopyFrom(analysed.embedding)
    summary.week.start.CopyFrom(week.start)
    end = week.start.ToDatetime(tzinfo=UTC) + timedelta(seconds=len(week.values) * (week.step_seconds or 60))
    summary.week.end.FromDatetime(end)
    return summary


def _sleep_summary(summary: twin_pb2.ActigraphySummary) -> rules.SleepSummary:
    sleep, circadian = summary.sleep, summary.circadian
    return rules.SleepSummary(
        nights_analyzed=sleep.nights_analyzed,
        total_sleep_time_minutes=(
            sleep.total_sleep_time_minutes if sleep.HasField("total_sleep_time_minutes") else None
        ),
        sleep_efficiency_percent=(
            sleep.sleep_efficiency_percent if sleep.HasField("sleep_efficiency_percent") else None
        ),
        interdaily_stability=(
            circadian.interdaily_stability if circadian.HasField("interdaily_stability") else None
        ),
        intradaily_variability=(
            circadian.intradaily_variability if circadian.HasField("intradaily_variability") else None
        ),
    )


def _symptom_forecast(response: forecasting_pb2.ForecastResponse) -> rules.SymptomForecast | None:
    target = _TARGETS.get(response.target)
    if target is None:
        return None
    days: list[rules.ForecastDay] = []
    coverage: float | None = response.interval_coverage_target or None
    for day in response.forecasts:
        quantiles = sorted(day.quantiles, key=lambda q: q.quantile)
        if not quantiles:
            continue
        median = min(quantiles, key=lambda q: abs(q.quantile - 0.5))
        outer = len(quantiles) >= 2
        if outer and coverage is None:
            coverage = quantiles[-1].quantile - quantiles[0].quantile
        days.append(
            rules.ForecastDay(
                horizon_day=day.horizon_day,
                target_date=day.target_date,
                median=median.value,
                lower=quantiles[0].value if outer else None,
                upper=quantiles[-1].value if outer else None,
            )
        )
    return rules.SymptomForecast(target=target, days=tuple(days), interval_coverage=coverage)


def _medication_evidence(
    twin: twin_pb2.Twin, response: pharmacogenomics_pb2.RecommendMedicationsResponse
) -> rules.MedicationEvidence:
    guidance: list[rules.DrugGuidance] = []
    warnings = list(response.interaction_warnings)
    for rec in response.recommendations:
        warnings.extend(rec.interactions)
        action = _ACTIONS.get(rec.action)
        if action is None:
            continue
        guideline = " ".join(p for p in (rec.guideline.source, rec.guideline.version) if p)
        guidance.append(
            rules.DrugGuidance(
                drug=rec.drug,
                action=action,
                phenotypes=tuple(sorted(rec.phenotypes_used.items())),
                guideline=guideline or rec.guideline.name,
                strength=_STRENGTHS.get(rec.strength, ""),
            )
        )
    interactions = tuple(
        rules.InteractionAlert(
            victim_drug=w.victim_drug,
            severity=_SEVERITIES[w.severity],
            perpetrator_drug=w.perpetrator_drug,
            gene=w.gene,
            kind=_INTERACTION_KINDS.get(w.kind, ""),
        )
        for w in warnings
        if w.severity in _SEVERITIES
    )
    return rules.MedicationEvidence(
        current_medications=tuple(m.name for m in current_medications(twin)),
        guidance=tuple(guidance),
        interactions=interactions,
    )


def recommendation_inputs(
    response: twin_pb2.GetInsightsResponse, context: _Context, thresholds: rules.RuleThresholds
) -> rules.RecommendationInputs:
    """The rules' view of the sections that succeeded plus the twin's symptom history."""
    zone = _time_zone(context.time_zone_name)
    history = sorted(
        context.inputs.twin.symptom_history, key=lambda r: (r.reported_at.seconds, r.reported_at.nanos)
    )
    symptoms = tuple(
        rules.SymptomScore(
            instrument=_INSTRUMENTS[r.instrument],
            total=r.total,
            reported_on=r.reported_at.ToDatetime(tzinfo=UTC).astimezone(zone).date(),
            items=tuple(r.item_responses),
        )
        for r in history
        if r.instrument in _INSTRUMENTS
    )
    actigraphy = None
    if response.HasField("actigraphy"):
        section = response.actigraphy
        actigraphy = rules.ActigraphyEvidence(
            latest=_sleep_summary(section.latest),
            previous=_sleep_summary(section.previous) if section.HasField("previous") else None,
        )
    forecasts = None
    if response.HasField("forecast"):
        forecasts = tuple(
            f for f in (_symptom_forecast(r) for r in response.forecast.forecasts) if f is not None
        )
    correlations = None
    if response.HasField("correlations"):
        correlations = tuple(
            rules.Correlation(
                biometric=c.biometric,
                symptom=c.symptom,
                lag_days=c.lag_days,
                coefficient=c.coefficient,
                q_value=c.q_value,
                method="spearman" if c.method == correlation_pb2.CORRELATION_METHOD_SPEARMAN else "pearson",
                n_pairs=c.n_pairs,
            )
            for c in response.correlations.analysis.correlations
        )
    medications = None
    if response.HasField("medications"):
        medications = _medication_evidence(context.inputs.twin, response.medications.recommendations)
    return rules.RecommendationInputs(
        symptoms=symptoms,
        actigraphy=actigraphy,
        forecasts=forecasts,
        correlations=correlations,
        medications=medications,
        thresholds=thresholds,
    )


__all__ = [
    "DEPENDENCIES",
    "INSIGHT_SECTIONS",
    "SECTION_DEPENDENCY",
    "InsightInputs",
    "InsightsOrchestrator",
    "InsightsSettings",
    "build_clients",
    "daily_symptom_series",
    "recommendation_inputs",
    "summary_from_analysis",
]
