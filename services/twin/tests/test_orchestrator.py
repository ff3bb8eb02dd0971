"""Insights orchestration over loopback gRPC: partial results, deadlines, breakers and retries.

pat runs as the real service. Most tests use small stand-in servicers for forecasting,
correlation and pharmacogenomics speaking their generated protocol (computing their answers from
the requests they receive); one test runs the real services, forecasting without a trained
artifact (not ready), correlation answering from its statistical engine and pharmacogenomics still
NOT_IMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from scipy import stats

from novamind.api.common.v1 import common_pb2
from novamind.api.correlation.v1 import correlation_pb2, correlation_pb2_grpc
from novamind.api.forecasting.v1 import forecasting_pb2, forecasting_pb2_grpc
from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2, pharmacogenomics_pb2_grpc
from novamind.api.twin.v1 import twin_pb2
from novamind.core.resilience import CircuitBreakers, RetryPolicy
from novamind.core.rpc import ServiceClient
from novamind.correlation.app import build_runtime as build_correlation
from novamind.correlation.config import CorrelationSettings
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import running_service, wait_for
from novamind.forecasting.app import build_runtime as build_forecasting
from novamind.forecasting.config import ForecastingSettings
from novamind.pat.app import build_runtime as build_pat
from novamind.pat.config import ActigraphySettings
from novamind.pharmacogenomics.app import build_runtime as build_pharmacogenomics
from novamind.pharmacogenomics.config import PharmacogenomicsSettings
from novamind.twin.adapters.orchestrator import (
    InsightInputs,
    InsightsOrchestrator,
    InsightsSettings,
    build_clients,
)

PATIENT = common_pb2.PatientRef(pseudonym="pt_0123456789abcdef0123")
ZONE = "Europe/Berlin"
LAST_DAY = date(2026, 3, 8)
HISTORY_DAYS = 28

# ---- twin and inputs -------------------------------------------------------------------------


def at_local(day: date, hour: int, minute: int = 0) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(ZONE)))
    return stamp


def phq9_items(total: int, item9: int = 0) -> list[int]:
    items = [0] * 9
    items[8] = item9
    left = total - item9
    for i in range(8):
        items[i] = min(3, left)
        left -= items[i]
    return items


def daily_steps() -> list[float]:
    rng = np.random.default_rng(7)
    return [float(v) for v in rng.integers(2_000, 14_000, HISTORY_DAYS)]


def history_day(i: int) -> date:
    return LAST_DAY - timedelta(days=HISTORY_DAYS - 1 - i)


def symptom_history(*, item9: int = 0) -> list[twin_pb2.SymptomReport]:
    """28 days of PHQ-9 (6 rising to 12) and mood that follows the previous day's steps; 3 GAD-7."""
    reports: list[twin_pb2.SymptomReport] = []
    steps = daily_steps()
    for i in range(HISTORY_DAYS):
        day = history_day(i)
        total = 6 + round(6 * i / (HISTORY_DAYS - 1))
        if i == HISTORY_DAYS - 1:
            # Two reports on the last day: the evening one counts for the daily series.
            reports.append(
                twin_pb2.SymptomReport(
                    report_id=f"phq9-{i}-am",
                    instrument=common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
                    item_responses=phq9_items(20),
                    total=20,
                    reported_at=at_local(day, 8),
                )
            )
        reports.append(
            twin_pb2.SymptomReport(
                report_id=f"phq9-{i}",
                instrument=common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
                item_responses=phq9_items(total, item9 if i == HISTORY_DAYS - 1 else 0),
                total=total,
                reported_at=at_local(day, 21),
            )
        )
        if i > 0:
            mood = round(min(10.0, 2.0 + steps[i - 1] / 2_000.0 + (0.5 if i % 3 == 0 else -0.3)), 1)
            reports.append(
                twin_pb2.SymptomReport(
                    report_id=f"mood-{i}",
                    instrument=common_pb2.SYMPTOM_INSTRUMENT_MOOD,
                    total=mood,
                    reported_at=at_local(day, 20),
                )
            )
    for i in (HISTORY_DAYS - 3, HISTORY_DAYS - 2, HISTORY_DAYS - 1):
        reports.append(
            twin_pb2.SymptomReport(
                report_id=f"gad7-{i}",
                instrument=common_pb2.SYMPTOM_INSTRUMENT_GAD7,
                item_responses=[1] * 7,
                total=7,
                reported_at=at_local(history_day(i), 19),
            )
        )
    return sorted(reports, key=lambda r: r.reported_at.ToDatetime())


def biometrics() -> list[common_pb2.DailySeries]:
    steps = daily_steps()
    return [
        common_pb2.DailySeries(
            name="steps",
            unit="{steps}",
            values=[
                common_pb2.DailyValue(date=history_day(i).isoformat(), value=v) for i, v in enumerate(steps)
            ],
        )
    ]


def genotype() -> twin_pb2.GenotypeSummary:
    return twin_pb2.GenotypeSummary(
        genes=[
            pharmacogenomics_pb2.GeneResult(
                gene="CYP2C19",
                status=pharmacogenomics_pb2.CALL_STATUS_CALLED,
                diplotype="*2/*2",
                phenotype="Poor Metabolizer",
            ),
            pharmacogenomics_pb2.GeneResult(
                gene="CYP2D6",
                status=pharmacogenomics_pb2.CALL_STATUS_CALLED,
                diplotype="*1/*1",
                phenotype="Normal Metabolizer",
            ),
        ]
    )


def stored_summary(efficiency: float, week_start: date) -> twin_pb2.ActigraphySummary:
    summary = twin_pb2.ActigraphySummary(analysis_id=f"analysis-{week_start.isoformat()}")
    summary.week.start.CopyFrom(at_local(week_start, 0))
    summary.week.end.CopyFrom(at_local(week_start + timedelta(days=7), 0))
    summary.sleep.nights_analyzed = 7
    summary.sleep.sleep_efficiency_percent = efficiency
    summary.sleep.total_sleep_time_minutes = 450.0
    return summary


def make_twin(
    *, item9: int = 0, with_genotype: bool = True, history: bool = True, stored: bool = True
) -> twin_pb2.Twin:
    stopped = common_pb2.Medication(name="sertraline")
    stopped.stopped_at.CopyFrom(at_local(date(2026, 1, 10), 9))
    twin = twin_pb2.Twin(
        patient=PATIENT,
        version=17,
        time_zone=ZONE,
        symptom_history=symptom_history(item9=item9) if history else [],
        medications=[
            common_pb2.Medication(name="citalopram", indication="major depressive disorder"),
            stopped,
        ],
    )
    if with_genotype:
        twin.genotype.CopyFrom(genotype())
    if stored:
        twin.latest_actigraphy.CopyFrom(stored_summary(88.0, date(2026, 2, 23)))
    return twin


WEEK_START = date(2026, 3, 2)


def minute_week() -> common_pb2.TimeSeries:
    """A week of wrist counts from local midnight: days awake, nights broken by hourly activity."""
    minute = np.arange(10_080)
    clock = minute % 1440
    awake = (clock >= 7 * 60) & (clock < 23 * 60)
    rng = np.random.default_rng(0)
    values = np.where(awake, rng.poisson(250, 10_080), rng.poisson(1, 10_080)).astype(float)
    broken = ~awake & (clock >= 60) & (clock < 6 * 60) & ((clock % 60) < 10)
    values[broken] = rng.poisson(300, int(broken.sum()))
    return common_pb2.TimeSeries(
        start=at_local(WEEK_START, 0),
        step_seconds=60,
        values=values.tolist(),
        unit="{counts}/min",
        time_zone=ZONE,
    )


def inputs(twin: twin_pb2.Twin | None = None, *, week: bool = True) -> InsightInputs:
    return InsightInputs(
        twin=twin if twin is not None else make_twin(),
        previous_actigraphy=stored_summary(91.0, date(2026, 2, 16)),
        week=minute_week() if week else None,
        daily_biometrics=biometrics(),
    )


def only(*sections: str, **extra: Any) -> twin_pb2.InsightOptions:
    options = twin_pb2.InsightOptions(**extra)
    options.include_actigraphy = "actigraphy" in sections
    options.include_forecast = "forecast" in sections
    options.include_correlations = "correlations" in sections
    options.include_medications = "medications" in sections
    return options


# ---- stand-in servicers ----------------------------------------------------------------------


@dataclass
class Behaviour:
    """How a stand-in answers: fail the first ``fail_first`` calls with ``fail_code``, or hang."""

    fail_first: int = 0
    fail_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    hang: bool = False
    calls: int = 0
    requests: list[Any] = field(default_factory=list)

    async def enter(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.calls += 1
        self.requests.append(request)
        if self.hang:
            await asyncio.Event().wait()
        if self.calls <= self.fail_first:
            await context.abort(self.fail_code, "stand-in failure")


class ForecastingStandIn(forecasting_pb2_grpc.ForecastingServiceServicer):
    """Medians rise 0.5 a day from the last history value; 0.1/0.9 quantiles 3 either side."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def Forecast(
        self, request: forecasting_pb2.ForecastRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> forecasting_pb2.ForecastResponse:
        await self.behaviour.enter(request, context)
        last = request.history[-1]
        origin = date.fromisoformat(last.date)
        response = forecasting_pb2.ForecastResponse(
            patient=request.patient,
            target=request.target,
            interval_coverage_target=0.8,
            origin_date=last.date,
        )
        for day in range(1, (request.horizon_days or 14) + 1):
            median = last.value + 0.5 * day
            response.forecasts.add(
                horizon_day=day,
                target_date=(origin + timedelta(days=day)).isoformat(),
                quantiles=[
                    common_pb2.QuantileValue(quantile=0.1, value=median - 3),
                    common_pb2.QuantileValue(quantile=0.5, value=median),
                    common_pb2.QuantileValue(quantile=0.9, value=median + 3),
                ],
            )
        return response


class CorrelationStandIn(correlation_pb2_grpc.CorrelationServiceServicer):
    """Pearson correlations at lags 0-1 of the series it receives, Benjamini-Hochberg adjusted."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def AnalyzeCorrelations(
        self, request: correlation_pb2.AnalyzeCorrelationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> correlation_pb2.AnalyzeCorrelationsResponse:
        await self.behaviour.enter(request, context)
        tests: list[correlation_pb2.LaggedCorrelation] = []
        for bio in request.biometrics:
            bio_by_day = {date.fromisoformat(v.date): v.value for v in bio.values if v.HasField("value")}
            for symptom in request.symptoms:
                sym_by_day = {
                    date.fromisoformat(v.date): v.value for v in symptom.values if v.HasField("value")
                }
                for lag in (0, 1):
                    pairs = [
                        (x, sym_by_day[d + timedelta(days=lag)])
                        for d, x in sorted(bio_by_day.items())
                        if d + timedelta(days=lag) in sym_by_day
                    ]
                    if len(pairs) < 3 or len({b for _, b in pairs}) < 2:
                        continue  # a constant series has no correlation
                    r, p = stats.pearsonr([a for a, _ in pairs], [b for _, b in pairs])
                    tests.append(
                        correlation_pb2.LaggedCorrelation(
                            biometric=bio.name,
                            symptom=symptom.name,
                            lag_days=lag,
                            method=correlation_pb2.CORRELATION_METHOD_PEARSON,
                            coefficient=float(r),
                            p_value=float(p),
                            n_pairs=len(pairs),
                        )
                    )
        adjusted = list(stats.false_discovery_control([t.p_value for t in tests])) if tests else []
        for test, q in zip(tests, adjusted, strict=True):
            test.q_value = float(q)
            test.significant = q <= 0.05 and abs(test.coefficient) >= 0.3
        tests.sort(key=lambda t: (t.q_value, -abs(t.coefficient)))
        return correlation_pb2.AnalyzeCorrelationsResponse(
            patient=request.patient, correlations=tests, tests_performed=len(tests), fdr_alpha=0.05
        )


class PharmacogenomicsStandIn(pharmacogenomics_pb2_grpc.PharmacogenomicsServiceServicer):
    """Citalopram in a CYP2C19 poor metabolizer: consider an alternative; otherwise standard dosing."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def RecommendMedications(
        self,
        request: pharmacogenomics_pb2.RecommendMedicationsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pharmacogenomics_pb2.RecommendMedicationsResponse:
        await self.behaviour.enter(request, context)
        phenotypes = {g.gene: g.phenotype for g in request.genotype_results.genes}
        drugs = list(request.candidate_drugs) or ["citalopram", "escitalopram", "sertraline"]
        response = pharmacogenomics_pb2.RecommendMedicationsResponse(patient=request.patient)
        for drug in drugs:
            rec = response.recommendations.add(drug=drug)
            rec.guideline.source, rec.guideline.version = "CPIC", "2023"
            if drug in {"citalopram", "escitalopram"} and phenotypes.get("CYP2C19") == "Poor Metabolizer":
                rec.action = pharmacogenomics_pb2.RECOMMENDATION_ACTION_CONSIDER_ALTERNATIVE
                rec.strength = pharmacogenomics_pb2.RECOMMENDATION_STRENGTH_MODERATE
                rec.phenotypes_used["CYP2C19"] = "Poor Metabolizer"
            else:
                rec.action = pharmacogenomics_pb2.RECOMMENDATION_ACTION_STANDARD_DOSING
        return response


@dataclass
class StandIns:
    forecasting: Behaviour = field(default_factory=Behaviour)
    correlation: Behaviour = field(default_factory=Behaviour)
    pharmacogenomics: Behaviour = field(default_factory=Behaviour)


@contextlib.asynccontextmanager
async def serving(register: Callable[[grpc.aio.Server], None], port: int | None = None) -> AsyncIterator[int]:
    """A gRPC server on loopback for the block; yields its port."""
    server = grpc.aio.server()
    register(server)
    port = port or free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def forecasting_server(behaviour: Behaviour) -> Callable[[grpc.aio.Server], None]:
    return lambda s: forecasting_pb2_grpc.add_ForecastingServiceServicer_to_server(
        ForecastingStandIn(behaviour), s
    )


@contextlib.asynccontextmanager
async def stand_ins(behaviours: StandIns) -> AsyncIterator[dict[str, str]]:
    """The three stand-ins running; yields their addresses by dependency name."""
    async with (
        serving(forecasting_server(behaviours.forecasting)) as forecasting,
        serving(
            lambda s: correlation_pb2_grpc.add_CorrelationServiceServicer_to_server(
                CorrelationStandIn(behaviours.correlation), s
            )
        ) as correlation,
        serving(
            lambda s: pharmacogenomics_pb2_grpc.add_PharmacogenomicsServiceServicer_to_server(
                PharmacogenomicsStandIn(behaviours.pharmacogenomics), s
            )
        ) as pharmacogenomics,
    ):
        yield {
            "forecasting": f"127.0.0.1:{forecasting}",
            "correlation": f"127.0.0.1:{correlation}",
            "pharmacogenomics": f"127.0.0.1:{pharmacogenomics}",
        }


@contextlib.asynccontextmanager
async def running_pat(model_dir: Path) -> AsyncIterator[str]:
    """The real pat service (no weights: metrics and FHIR only)."""
    settings = ActigraphySettings(
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        model_dir=model_dir,
        kafka_bootstrap="",
        redis_url="",
    )
    async with running_service(build_pat(settings)):
        yield f"127.0.0.1:{settings.grpc_port}"


def dead_address() -> str:
    """A loopback port nobody listens on."""
    return f"127.0.0.1:{free_port()}"


@dataclass
class Harness:
    orchestrator: InsightsOrchestrator
    clients: dict[str, ServiceClient]


@contextlib.contextmanager
def measured() -> Iterator[list[float]]:
    elapsed: list[float] = []
    started = time.monotonic()
    try:
        yield elapsed
    finally:
        elapsed.append(time.monotonic() - started)


@contextlib.asynccontextmanager
async def orchestrating(
    addresses: dict[str, str],
    settings: InsightsSettings | None = None,
    *,
    failure_threshold: int = 5,
    recovery_seconds: float = 30.0,
    retry_policy: RetryPolicy | None = None,
) -> AsyncIterator[Harness]:
    breakers = CircuitBreakers(failure_threshold=failure_threshold, recovery_seconds=recovery_seconds)
    clients = build_clients(
        addresses,
        breakers=breakers,
        retry_policy=retry_policy or RetryPolicy(max_attempts=3, initial_backoff=0.02, max_backoff=0.1),
        default_timeout=10.0,
    )
    orchestrator = InsightsOrchestrator(clients, settings or InsightsSettings())
    try:
        yield Harness(orchestrator, clients)
    finally:
        await orchestrator.close()


def errors_by_section(response: twin_pb2.GetInsightsResponse) -> dict[str, common_pb2.ErrorDetail]:
    return {e.section: e.error for e in response.section_errors}


def recommendation(response: twin_pb2.GetInsightsResponse, rule_id: str) -> twin_pb2.IntegratedRecommendation:
    found = [r for r in response.recommendations if r.id == rule_id]
    assert found, f"{rule_id} not in {[r.id for r in response.recommendations]}"
    return found[0]


def one_decimal(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def section_count(section: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "novamind_twin_insight_sections_total", {"section": section, "outcome": outcome}
    )
    return value or 0.0


GENEROUS = InsightsSettings(
    overall_deadline_seconds=20.0,
    pat_timeout_seconds=20.0,
    forecasting_timeout_seconds=20.0,
    correlation_timeout_seconds=20.0,
    pharmacogenomics_timeout_seconds=20.0,
)

# ---- tests -----------------------------------------------------------------------------------


async def test_all_sections_succeed_and_recommendations_cite_their_evidence(tmp_path: Path) -> None:
    behaviours = StandIns()
    async with (
        running_pat(tmp_path) as pat,
        stand_ins(behaviours) as addresses,
        orchestrating({"pat": pat, **addresses}, GENEROUS) as harness,
    ):
        response = await harness.orchestrator.insights(
            inputs(), twin_pb2.InsightOptions(actigraphy_fhir=True, forecast_days=14)
        )

    assert list(response.section_errors) == []
    assert response.twin_version == 17 and response.patient.pseudonym == PATIENT.pseudonym

    # Actigraphy: pat analysed the stored week; the twin's stored (earlier) analysis is the previous one.
    latest, previous = response.actigraphy.latest, response.actigraphy.previous
    assert latest.sleep.nights_analyzed >= 5
    assert latest.week.start == at_local(WEEK_START, 0)
    assert latest.week.end == at_local(WEEK_START + timedelta(days=7), 0)
    assert previous.analysis_id == "analysis-2026-02-23"
    assert '"resourceType": "Bundle"' in response.actigraphy.fhir_bundle_json
    assert not response.actigraphy.HasField("explanation")

    # Forecast: PHQ-9 and mood have enough history, GAD-7 (3 days) does not.
    forecast_requests = {r.target: r for r in behaviours.forecasting.requests}
    assert set(forecast_requests) == {
        forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL,
        forecasting_pb2.TARGET_SYMPTOM_MOOD_RATING,
    }
    phq9_request = forecast_requests[forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL]
    assert len(phq9_request.history) == HISTORY_DAYS  # one value per local day
    assert phq9_request.history[-1].date == LAST_DAY.isoformat()
    assert phq9_request.history[-1].value == 12  # the evening report, not the morning one
    assert phq9_request.horizon_days == 14 and phq9_request.time_zone == ZONE
    assert [c.series.name for c in phq9_request.covariates] == ["steps", "antidepressant_active"]
    assert phq9_request.covariates[0].kind == forecasting_pb2.COVARIATE_KIND_PAST_ONLY
    # citalopram (no start date: taken throughout) is current, so every day through the horizon is
    # 1; the stopped sertraline ended before the history
    medication = phq9_request.covariates[1]
    assert medication.kind == forecasting_pb2.COVARIATE_KIND_KNOWN_FUTURE
    assert medication.series.values[0].date == phq9_request.history[0].date
    assert medication.series.values[-1].date == (LAST_DAY + timedelta(days=14)).isoformat()
    assert {v.value for v in medication.series.values} == {1.0}
    assert phq9_request.include.feature_importances
    assert len(response.forecast.forecasts) == 2

    # Medications: current drugs only (the stopped one is left out), genotype from the twin.
    pgx_request = behaviours.pharmacogenomics.requests[0]
    assert [m.name for m in pgx_request.current_medications] == ["citalopram"]
    assert [g.gene for g in pgx_request.genotype_results.genes] == ["CYP2C19", "CYP2D6"]
    assert len(response.medications.recommendations.recommendations) == 3

    # Correlations: the symptom series and biometrics went to the service.
    corr_request = behaviours.correlation.requests[0]
    assert {s.name for s in corr_request.symptoms} == {"phq9_total", "gad7_total", "mood_rating"}
    assert [b.name for b in corr_request.biometrics] == ["steps"]

    # Recommendations cite the numbers of the sections they used.
    crossing = recommendation(response, "forecast.phq9_crossing")
    assert crossing.priority == twin_pb2.PRIORITY_HIGH
    # 12 + 0.5 x 6 = 15 on day 6 (2026-03-14), interval +-3.
    assert crossing.evidence[0] == (
        "forecast PHQ-9 crosses 15 within 6 days (median 15 on 2026-03-14, 80% interval 12-18)"
    )
    assert list(crossing.sections_used) == ["forecast", "symptoms"]

    efficiency = latest.sleep.sleep_efficiency_percent
    decline = recommendation(response, "sleep.efficiency_decline")
    assert 88.0 - efficiency >= 10
    assert list(decline.evidence) == [
        f"sleep efficiency fell {one_decimal(88.0 - efficiency)} points this week "
        f"(from 88% to {one_decimal(efficiency)}%)"
    ]
    combined = recommendation(response, "combined.sleep_decline_and_phq9")
    assert combined.priority == twin_pb2.PRIORITY_HIGH
    assert list(combined.evidence) == [*decline.evidence, *crossing.evidence]

    strongest = max(
        (c for c in response.correlations.analysis.correlations if c.q_value <= 0.05),
        key=lambda c: abs(c.coefficient),
    )
    association = recommendation(response, "correlation.lagged_association")
    assert strongest.biometric == "steps" and strongest.symptom == "mood_rating" and strongest.lag_days == 1
    assert association.evidence[0].startswith(
        f"steps correlate with next-day mood r = {strongest.coefficient:.2f}, lag 1 day, q "
    )
    assert association.evidence[0].endswith(f"(Pearson, {strongest.n_pairs} days)")

    pgx = recommendation(response, "medication.pgx_current_drug")
    assert list(pgx.evidence) == [
        "citalopram: CYP2C19 Poor Metabolizer -> consider an alternative drug (CPIC 2023, moderate)"
    ]
    assert recommendation(response, "symptoms.phq9_severity").priority == twin_pb2.PRIORITY_MEDIUM
    priorities = [r.priority for r in response.recommendations]
    assert priorities == sorted(priorities, reverse=True)


async def test_a_dependency_that_is_down_fails_only_its_section_within_the_deadline(tmp_path: Path) -> None:
    settings = InsightsSettings(overall_deadline_seconds=3.0, pat_timeout_seconds=3.0)
    before = section_count("forecast", "SERVICE_UNAVAILABLE")
    async with (
        running_pat(tmp_path) as pat,
        stand_ins(StandIns()) as addresses,
        orchestrating({"pat": pat, **addresses, "forecasting": dead_address()}, settings) as harness,
    ):
        with measured() as elapsed:
            response = await harness.orchestrator.insights(inputs(), twin_pb2.InsightOptions())

    assert elapsed[0] <= 3.0 * 1.1
    assert not response.HasField("forecast")
    error = errors_by_section(response)["forecast"]
    assert (error.code, error.service, error.retryable) == ("SERVICE_UNAVAILABLE", "forecasting", True)
    assert PATIENT.pseudonym not in error.message
    assert response.HasField("actigraphy") and response.HasField("correlations")
    assert response.HasField("medications")
    assert set(errors_by_section(response)) == {"forecast"}
    ids = {r.id for r in response.recommendations}
    assert "forecast.phq9_crossing" not in ids and "combined.sleep_decline_and_phq9" not in ids
    assert "sleep.efficiency_decline" in ids and "medication.pgx_current_drug" in ids
    assert section_count("forecast", "SERVICE_UNAVAILABLE") == before + 1


async def test_a_hanging_dependency_is_cut_off_at_the_overall_deadline() -> None:
    hanging = StandIns(correlation=Behaviour(hang=True))
    settings = InsightsSettings(overall_deadline_seconds=1.0, correlation_timeout_seconds=5.0)
    async with stand_ins(hanging) as addresses, orchestrating(addresses, settings) as harness:
        with measured() as elapsed:
            response = await harness.orchestrator.insights(
                inputs(week=False), only("forecast", "correlations", "medications")
            )

    assert elapsed[0] <= 1.0 * 1.1
    error = errors_by_section(response)["correlations"]
    assert (error.code, error.service) == ("DEADLINE_EXCEEDED", "correlation")
    assert response.HasField("forecast") and response.HasField("medications")
    assert not response.HasField("correlations")
    assert hanging.correlation.calls == 1  # timed out, not retried


async def test_a_section_deadline_shorter_than_the_overall_one_applies() -> None:
    hanging = StandIns(forecasting=Behaviour(hang=True))
    settings = InsightsSettings(overall_deadline_seconds=5.0, forecasting_timeout_seconds=0.5)
    async with stand_ins(hanging) as addresses, orchestrating(addresses, settings) as harness:
        with measured() as elapsed:
            response = await harness.orchestrator.insights(
                inputs(week=False), only("forecast", "medications")
            )

    assert elapsed[0] <= 0.5 * 1.1
    assert errors_by_section(response)["forecast"].code == "DEADLINE_EXCEEDED"
    assert response.HasField("medications")


async def test_breaker_opens_after_the_threshold_then_half_opens_and_closes_after_a_restart() -> None:
    failing = Behaviour(fail_first=1_000)
    port = free_port()
    settings = InsightsSettings(overall_deadline_seconds=2.0)
    phq9_only = only("forecast", forecast_targets=[forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL])
    async with orchestrating(
        {"forecasting": f"127.0.0.1:{port}"},
        settings,
        failure_threshold=3,
        recovery_seconds=0.5,
        retry_policy=RetryPolicy(max_attempts=1),
    ) as harness:
        orchestrator = harness.orchestrator
        async with serving(forecasting_server(failing), port):
            for _ in range(3):
                response = await orchestrator.insights(inputs(week=False), phq9_only)
                assert errors_by_section(response)["forecast"].code == "SERVICE_UNAVAILABLE"
            assert failing.calls == 3
            assert await orchestrator.breaker_state("forecasting") == "opened"

            with measured() as elapsed:
                response = await orchestrator.insights(inputs(week=False), phq9_only)
            error = errors_by_section(response)["forecast"]
            assert elapsed[0] < 0.1 * settings.overall_deadline_seconds
            assert failing.calls == 3  # not called while open
            assert (error.code, error.service) == ("SERVICE_UNAVAILABLE", "forecasting")
            assert 0 < error.retry_after.ToTimedelta().total_seconds() <= 0.5

        healthy = Behaviour()
        async with serving(forecasting_server(healthy), port):
            await wait_for(
                _state_is(orchestrator, "forecasting", "half-opened"), timeout=5, what="breaker half-open"
            )
            await asyncio.wait_for(harness.clients["forecasting"].channel.channel_ready(), 5)
            response = await orchestrator.insights(inputs(week=False), phq9_only)
            assert response.HasField("forecast") and not response.section_errors
            assert healthy.calls == 1
            assert await orchestrator.breaker_state("forecasting") == "closed"


async def test_with_retries_an_open_breaker_fails_the_next_call_at_once_instead_of_backing_off() -> None:
    failing = StandIns(forecasting=Behaviour(fail_first=1_000))
    settings = InsightsSettings(overall_deadline_seconds=2.0)
    phq9_only = only("forecast", forecast_targets=[forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL])
    retries = RetryPolicy(max_attempts=3, initial_backoff=0.3, max_backoff=0.3)
    async with (
        stand_ins(failing) as addresses,
        orchestrating(
            addresses, settings, failure_threshold=3, recovery_seconds=30.0, retry_policy=retries
        ) as harness,
    ):
        response = await harness.orchestrator.insights(inputs(week=False), phq9_only)
        assert errors_by_section(response)["forecast"].code == "SERVICE_UNAVAILABLE"
        assert failing.forecasting.calls == 3  # one section, three attempts: the threshold
        assert await harness.orchestrator.breaker_state("forecasting") == "opened"

        with measured() as elapsed:
            response = await harness.orchestrator.insights(inputs(week=False), phq9_only)

    assert elapsed[0] < 0.1 * settings.overall_deadline_seconds
    assert failing.forecasting.calls == 3
    error = errors_by_section(response)["forecast"]
    assert error.code == "SERVICE_UNAVAILABLE" and error.retry_after.ToTimedelta().total_seconds() > 29


def _state_is(orchestrator: InsightsOrchestrator, dependency: str, state: str) -> Callable[[], Any]:
    async def check() -> bool:
        return await orchestrator.breaker_state(dependency) == state

    return check


async def test_a_transient_failure_is_retried_within_the_section() -> None:
    flaky = StandIns(forecasting=Behaviour(fail_first=1))
    phq9_only = only("forecast", forecast_targets=[forecasting_pb2.TARGET_SYMPTOM_PHQ9_TOTAL])
    async with stand_ins(flaky) as addresses, orchestrating(addresses) as harness:
        response = await harness.orchestrator.insights(inputs(week=False), phq9_only)

    assert response.HasField("forecast") and not response.section_errors
    assert flaky.forecasting.calls == 2


async def test_a_request_error_is_not_retried() -> None:
    rejecting = StandIns(pharmacogenomics=Behaviour(fail_first=1, fail_code=grpc.StatusCode.INVALID_ARGUMENT))
    async with stand_ins(rejecting) as addresses, orchestrating(addresses) as harness:
        response = await harness.orchestrator.insights(inputs(week=False), only("medications"))

    error = errors_by_section(response)["medications"]
    assert (error.code, error.service, error.retryable) == ("VALIDATION_ERROR", "pharmacogenomics", False)
    assert rejecting.pharmacogenomics.calls == 1


async def test_the_real_model_services_report_sections_they_cannot_answer(tmp_path: Path) -> None:
    def ports() -> dict[str, Any]:
        return {
            "grpc_host": "127.0.0.1",
            "grpc_port": free_port(),
            "http_host": "127.0.0.1",
            "http_port": free_port(),
        }

    # no forecasting artifact in this model directory: the service is up but not ready
    forecasting = ForecastingSettings(**ports(), model_dir=tmp_path / "no-models")
    correlation = CorrelationSettings(**ports())
    pharmacogenomics = PharmacogenomicsSettings(**ports())
    async with (
        running_pat(tmp_path) as pat,
        running_service(build_forecasting(forecasting)),
        running_service(build_correlation(correlation)),
        running_service(build_pharmacogenomics(pharmacogenomics)),
        orchestrating(
            {
                "pat": pat,
                "forecasting": f"127.0.0.1:{forecasting.grpc_port}",
                "correlation": f"127.0.0.1:{correlation.grpc_port}",
                "pharmacogenomics": f"127.0.0.1:{pharmacogenomics.grpc_port}",
            },
            GENEROUS,
            failure_threshold=2,
        ) as harness,
    ):
        for _ in range(3):
            response = await harness.orchestrator.insights(inputs_item9(), twin_pb2.InsightOptions())
        states = [await harness.orchestrator.breaker_state(d) for d in ("forecasting", "correlation")]

    errors = errors_by_section(response)
    assert {section: (e.code, e.service) for section, e in errors.items()} == {
        "forecast": ("MODEL_NOT_READY", "forecasting"),
        "medications": ("NOT_IMPLEMENTED", "pharmacogenomics"),
    }
    # the statistical correlation engine needs no model: it finds that mood follows the previous
    # day's steps, as the test history plants
    top = response.correlations.analysis.correlations[0]
    assert (top.biometric, top.symptom, top.lag_days, top.significant) == ("steps", "mood_rating", 1, True)
    assert all(not e.retryable for e in errors.values())
    assert states == ["closed", "closed"]  # a service saying "not implemented" is not down
    assert response.HasField("actigraphy")
    ids = [r.id for r in response.recommendations]
    assert ids[0] == "safety.phq9_item9"
    assert recommendation(response, "safety.phq9_item9").priority == twin_pb2.PRIORITY_URGENT
    assert "correlation.lagged_association" in ids
    assert not any(i.startswith(("forecast.", "medication.", "combined.")) for i in ids)


def inputs_item9() -> InsightInputs:
    return inputs(make_twin(item9=1))


async def test_missing_inputs_are_section_errors_without_calls() -> None:
    behaviours = StandIns()
    bare = make_twin(with_genotype=False, history=False, stored=False)
    async with (
        stand_ins(behaviours) as addresses,
        orchestrating({"pat": dead_address(), **addresses}) as harness,
    ):
        response = await harness.orchestrator.insights(
            InsightInputs(twin=bare, week=None, daily_biometrics=[]), twin_pb2.InsightOptions()
        )

    errors = {section: (e.code, e.service, e.field) for section, e in errors_by_section(response).items()}
    assert errors == {
        "actigraphy": ("NOT_FOUND", "twin", "twin.latest_actigraphy"),
        "forecast": ("NOT_FOUND", "twin", "twin.symptom_history"),
        "correlations": ("NOT_FOUND", "twin", "twin.symptom_history"),
        "medications": ("NOT_FOUND", "twin", "twin.genotype"),
    }
    assert behaviours.forecasting.calls == behaviours.correlation.calls == 0
    assert behaviours.pharmacogenomics.calls == 0
    assert list(response.recommendations) == []


async def test_too_little_history_is_a_validation_error_without_calls() -> None:
    behaviours = StandIns()
    twin = make_twin()
    recent = [
        r for r in twin.symptom_history if r.reported_at.ToDatetime(tzinfo=UTC).date() >= date(2026, 3, 4)
    ]
    del twin.symptom_history[:]
    twin.symptom_history.extend(recent)
    async with stand_ins(behaviours) as addresses, orchestrating(addresses) as harness:
        response = await harness.orchestrator.insights(
            inputs(twin, week=False), only("forecast", "correlations")
        )

    errors = errors_by_section(response)
    assert (errors["forecast"].code, errors["forecast"].field) == ("VALIDATION_ERROR", "twin.symptom_history")
    assert "7 days" in errors["forecast"].message
    assert (errors["correlations"].code, errors["correlations"].field) == (
        "VALIDATION_ERROR",
        "twin.symptom_history",
    )
    assert behaviours.forecasting.calls == behaviours.correlation.calls == 0


async def test_switched_off_sections_are_neither_called_nor_reported() -> None:
    behaviours = StandIns()
    async with (
        stand_ins(behaviours) as addresses,
        orchestrating({"pat": dead_address(), **addresses}) as harness,
    ):
        response = await harness.orchestrator.insights(inputs_item9(), only())

    assert list(response.section_errors) == []
    for section in ("actigraphy", "forecast", "correlations", "medications"):
        assert not response.HasField(section)
    assert (
        behaviours.forecasting.calls + behaviours.correlation.calls + behaviours.pharmacogenomics.calls == 0
    )
    # Symptom rules need no section.
    assert [r.id for r in response.recommendations][:1] == ["safety.phq9_item9"]


async def test_without_a_stored_week_the_section_is_the_stored_analysis_and_pat_is_not_called() -> None:
    async with orchestrating({"pat": dead_address()}) as harness:
        response = await harness.orchestrator.insights(
            inputs(week=False), only("actigraphy", actigraphy_explanation=True, actigraphy_fhir=True)
        )

    assert list(response.section_errors) == []
    assert response.actigraphy.latest.analysis_id == "analysis-2026-02-23"
    assert response.actigraphy.previous.analysis_id == "analysis-2026-02-16"
    assert not response.actigraphy.HasField("explanation")
    assert response.actigraphy.fhir_bundle_json == ""
    assert await harness.orchestrator.breaker_state("pat") == "closed"


async def test_a_caller_deadline_shorter_than_the_overall_one_bounds_the_call() -> None:
    from novamind.core.resilience import deadline_scope

    hanging = StandIns(forecasting=Behaviour(hang=True))
    async with stand_ins(hanging) as addresses, orchestrating(addresses) as harness:
        with measured() as elapsed, deadline_scope(0.6):
            response = await harness.orchestrator.insights(inputs(week=False), only("forecast"))

    assert elapsed[0] <= 0.6 * 1.1
    assert errors_by_section(response)["forecast"].code == "DEADLINE_EXCEEDED"
