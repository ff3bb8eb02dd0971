"""The integrated-recommendation rules: each fires on its evidence, cites it, and stays silent without it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from novamind.twin.domain.recommendations import (
    ActigraphyEvidence,
    Correlation,
    DrugGuidance,
    ForecastDay,
    ForecastTarget,
    GuidanceAction,
    Instrument,
    InteractionAlert,
    MedicationEvidence,
    Priority,
    Recommendation,
    RecommendationInputs,
    RuleThresholds,
    Severity,
    SleepSummary,
    SymptomForecast,
    SymptomScore,
    recommend,
)

DAY = date(2026, 3, 2)


def phq9(total: float, item9: int = 0, on: date = DAY) -> SymptomScore:
    items = [0] * 9
    items[8] = item9
    return SymptomScore(Instrument.PHQ9, total, on, tuple(items))


def gad7(total: float, on: date = DAY) -> SymptomScore:
    return SymptomScore(Instrument.GAD7, total, on, (0,) * 7)


def sleep(
    efficiency: float | None = 90.0,
    tst_minutes: float | None = 450.0,
    nights: int = 7,
    stability: float | None = 0.7,
    variability: float | None = 0.6,
) -> SleepSummary:
    return SleepSummary(nights, tst_minutes, efficiency, stability, variability)


def forecast(medians: list[float], target: ForecastTarget = ForecastTarget.PHQ9_TOTAL) -> SymptomForecast:
    days = tuple(
        ForecastDay(
            horizon_day=i + 1,
            target_date=date(2026, 3, 3 + i).isoformat(),
            median=m,
            lower=m - 4.0,
            upper=m + 4.0,
        )
        for i, m in enumerate(medians)
    )
    return SymptomForecast(target, days, interval_coverage=0.8)


def by_id(recs: list[Recommendation], rule_id: str) -> Recommendation | None:
    return next((r for r in recs if r.rule_id == rule_id), None)


def fired(inputs: RecommendationInputs, rule_id: str) -> Recommendation:
    rec = by_id(recommend(inputs), rule_id)
    assert rec is not None, f"{rule_id} did not fire"
    return rec


def silent(inputs: RecommendationInputs, rule_id: str) -> None:
    assert by_id(recommend(inputs), rule_id) is None


# ---- PHQ-9 item 9 ----------------------------------------------------------------------------


def test_item9_endorsed_in_the_latest_phq9_is_urgent_and_cites_the_item_score() -> None:
    rec = fired(RecommendationInputs(symptoms=(phq9(6, item9=2),)), "safety.phq9_item9")
    assert rec.priority is Priority.URGENT
    assert rec.evidence == ("PHQ-9 item 9 scored 2 of 3 on 2026-03-02",)
    assert rec.sections_used == ("symptoms",)


def test_item9_uses_only_the_latest_phq9() -> None:
    earlier = phq9(12, item9=1, on=date(2026, 2, 20))
    silent(RecommendationInputs(symptoms=(earlier, phq9(8, item9=0))), "safety.phq9_item9")
    assert recommend(RecommendationInputs(symptoms=(phq9(8), phq9(8, item9=1))))[0].rule_id == (
        "safety.phq9_item9"
    )


def test_item9_needs_item_responses() -> None:
    silent(RecommendationInputs(symptoms=(SymptomScore(Instrument.PHQ9, 20, DAY),)), "safety.phq9_item9")
    silent(RecommendationInputs(), "safety.phq9_item9")


# ---- severity bands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "priority", "band"),
    [
        (5, Priority.LOW, "mild, 5-9"),
        (9, Priority.LOW, "mild, 5-9"),
        (10, Priority.MEDIUM, "moderate, 10-14"),
        (14, Priority.MEDIUM, "moderate, 10-14"),
        (15, Priority.HIGH, "moderately severe, 15-19"),
        (19, Priority.HIGH, "moderately severe, 15-19"),
        (20, Priority.HIGH, "severe, 20-27"),
        (27, Priority.HIGH, "severe, 20-27"),
    ],
)
def test_phq9_severity_follows_the_kroenke_cut_offs(total: int, priority: Priority, band: str) -> None:
    rec = fired(RecommendationInputs(symptoms=(phq9(total),)), "symptoms.phq9_severity")
    assert rec.priority is priority
    assert rec.evidence == (f"latest PHQ-9 total {total} of 27 ({band}) on 2026-03-02",)


def test_minimal_phq9_gives_no_severity_recommendation() -> None:
    silent(RecommendationInputs(symptoms=(phq9(4),)), "symptoms.phq9_severity")
    silent(RecommendationInputs(symptoms=(phq9(18, on=date(2026, 2, 1)), phq9(4))), "symptoms.phq9_severity")


@pytest.mark.parametrize(
    ("total", "priority"), [(4, None), (5, Priority.LOW), (10, Priority.MEDIUM), (15, Priority.HIGH)]
)
def test_gad7_severity_follows_the_spitzer_cut_offs(total: int, priority: Priority | None) -> None:
    rec = by_id(recommend(RecommendationInputs(symptoms=(gad7(total),))), "symptoms.gad7_severity")
    if priority is None:
        assert rec is None
    else:
        assert rec is not None and rec.priority is priority
        assert f"latest GAD-7 total {total} of 21" in rec.evidence[0]


# ---- sleep efficiency decline ----------------------------------------------------------------


def test_sleep_efficiency_decline_cites_the_fall_in_points() -> None:
    inputs = RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(76.0), sleep(88.0)))
    rec = fired(inputs, "sleep.efficiency_decline")
    assert rec.priority is Priority.MEDIUM
    assert rec.evidence == ("sleep efficiency fell 12 points this week (from 88% to 76%)",)
    assert rec.sections_used == ("actigraphy",)


@pytest.mark.parametrize(("latest", "fires"), [(80.0, True), (80.1, False), (95.0, False)])
def test_sleep_efficiency_decline_boundary_is_ten_points(latest: float, fires: bool) -> None:
    inputs = RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(latest), sleep(90.0)))
    assert (by_id(recommend(inputs), "sleep.efficiency_decline") is not None) is fires


def test_sleep_efficiency_decline_needs_both_analyses() -> None:
    silent(RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(60.0))), "sleep.efficiency_decline")
    silent(
        RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(60.0), sleep(None))),
        "sleep.efficiency_decline",
    )
    silent(RecommendationInputs(), "sleep.efficiency_decline")


# ---- short total sleep time ------------------------------------------------------------------


def test_short_total_sleep_time_cites_hours_and_nights() -> None:
    inputs = RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(tst_minutes=324.0, nights=7)))
    rec = fired(inputs, "sleep.short_total_sleep_time")
    assert rec.evidence == ("mean total sleep time 5.4 h (7 nights), below 6 h",)


@pytest.mark.parametrize(
    ("tst", "nights", "fires"),
    [(359.9, 3, True), (360.0, 7, False), (300.0, 2, False), (None, 7, False)],
)
def test_short_total_sleep_time_boundaries(tst: float | None, nights: int, fires: bool) -> None:
    inputs = RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(tst_minutes=tst, nights=nights)))
    assert (by_id(recommend(inputs), "sleep.short_total_sleep_time") is not None) is fires


# ---- circadian rhythm ------------------------------------------------------------------------


def test_low_stability_alone_is_low_priority_and_both_together_medium() -> None:
    one = fired(
        RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(stability=0.31))),
        "circadian.irregular_rhythm",
    )
    assert one.priority is Priority.LOW
    assert one.evidence == ("interdaily stability 0.31 (below 0.4; 0-1)",)
    both = fired(
        RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(stability=0.31, variability=1.24))),
        "circadian.irregular_rhythm",
    )
    assert both.priority is Priority.MEDIUM
    assert both.evidence[1] == "intradaily variability 1.24 (above 1; 0-2)"


def test_circadian_rule_boundaries_and_absent_metrics() -> None:
    at_limits = RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(stability=0.4, variability=1.0)))
    silent(at_limits, "circadian.irregular_rhythm")
    absent = RecommendationInputs(actigraphy=ActigraphyEvidence(sleep(stability=None, variability=None)))
    silent(absent, "circadian.irregular_rhythm")


# ---- forecast crossing -----------------------------------------------------------------------


def test_phq9_forecast_crossing_15_cites_the_day_it_crosses_and_the_interval() -> None:
    medians = [12.0, 12.5, 13.0, 13.5, 14.0, 14.2, 14.5, 14.8, 14.9, 15.4, 16.0, 16.2, 16.5, 17.0]
    inputs = RecommendationInputs(symptoms=(phq9(12),), forecasts=(forecast(medians),))
    rec = fired(inputs, "forecast.phq9_crossing")
    assert rec.priority is Priority.HIGH
    assert rec.evidence[0] == (
        "forecast PHQ-9 crosses 15 within 10 days (median 15.4 on 2026-03-12, 80% interval 11.4-19.4)"
    )
    assert rec.evidence[1] == "latest PHQ-9 total 12 on 2026-03-02"
    assert rec.sections_used == ("forecast", "symptoms")


def test_phq9_forecast_reports_the_highest_threshold_crossed() -> None:
    inputs = RecommendationInputs(symptoms=(phq9(8),), forecasts=(forecast([9.0, 11.0, 16.0, 21.0]),))
    rec = fired(inputs, "forecast.phq9_crossing")
    assert rec.evidence[0].startswith("forecast PHQ-9 crosses 20 within 4 days (median 21 on")
    only_ten = RecommendationInputs(symptoms=(phq9(8),), forecasts=(forecast([9.0, 10.0, 11.0]),))
    assert fired(only_ten, "forecast.phq9_crossing").priority is Priority.MEDIUM


def test_forecast_staying_above_or_below_a_threshold_is_not_a_crossing() -> None:
    above = RecommendationInputs(symptoms=(phq9(16),), forecasts=(forecast([16.0, 17.0, 18.0]),))
    assert "crosses 15" not in " ".join(
        e for r in recommend(above) if r.rule_id == "forecast.phq9_crossing" for e in r.evidence
    )
    silent(above, "forecast.phq9_crossing")
    below = RecommendationInputs(symptoms=(phq9(3),), forecasts=(forecast([4.0, 6.0, 9.9]),))
    silent(below, "forecast.phq9_crossing")
    falling = RecommendationInputs(symptoms=(phq9(18),), forecasts=(forecast([15.0, 12.0, 9.0]),))
    silent(falling, "forecast.phq9_crossing")


def test_forecast_crossing_needs_a_forecast_section() -> None:
    silent(RecommendationInputs(symptoms=(phq9(12),), forecasts=None), "forecast.phq9_crossing")
    silent(RecommendationInputs(symptoms=(phq9(12),), forecasts=()), "forecast.phq9_crossing")


def test_forecast_crossing_without_an_observed_baseline_starts_from_the_first_day() -> None:
    inputs = RecommendationInputs(forecasts=(forecast([13.0, 15.0]),))
    rec = fired(inputs, "forecast.phq9_crossing")
    assert rec.evidence == (
        "forecast PHQ-9 crosses 15 within 2 days (median 15 on 2026-03-04, 80% interval 11-19)",
    )
    assert rec.sections_used == ("forecast",)
    silent(RecommendationInputs(forecasts=(forecast([16.0, 17.0]),)), "forecast.phq9_crossing")


def test_gad7_forecast_crossing() -> None:
    inputs = RecommendationInputs(
        symptoms=(gad7(8),), forecasts=(forecast([9.0, 10.5], ForecastTarget.GAD7_TOTAL),)
    )
    rec = fired(inputs, "forecast.gad7_crossing")
    assert rec.priority is Priority.MEDIUM
    assert rec.evidence[0].startswith("forecast GAD-7 crosses 10 within 2 days")
    silent(inputs, "forecast.phq9_crossing")


# ---- combined --------------------------------------------------------------------------------

DECLINE = ActigraphyEvidence(sleep(76.0), sleep(88.0))
CROSSING = (forecast([13.0, 14.0, 15.5]),)


def test_sleep_decline_and_phq9_crossing_together_are_high_and_cite_both() -> None:
    inputs = RecommendationInputs(symptoms=(phq9(12),), actigraphy=DECLINE, forecasts=CROSSING)
    rec = fired(inputs, "combined.sleep_decline_and_phq9")
    assert rec.priority is Priority.HIGH
    assert "review sleep and mood together" in rec.text.lower()
    assert rec.evidence[0] == "sleep efficiency fell 12 points this week (from 88% to 76%)"
    assert rec.evidence[1].startswith("forecast PHQ-9 crosses 15 within 3 days")
    assert set(rec.sections_used) == {"actigraphy", "forecast", "symptoms"}


def test_combined_rule_needs_both_parts() -> None:
    no_forecast = RecommendationInputs(symptoms=(phq9(12),), actigraphy=DECLINE, forecasts=None)
    silent(no_forecast, "combined.sleep_decline_and_phq9")
    assert by_id(recommend(no_forecast), "sleep.efficiency_decline") is not None
    no_decline = RecommendationInputs(
        symptoms=(phq9(12),), actigraphy=ActigraphyEvidence(sleep(86.0), sleep(88.0)), forecasts=CROSSING
    )
    silent(no_decline, "combined.sleep_decline_and_phq9")
    assert by_id(recommend(no_decline), "forecast.phq9_crossing") is not None
    no_actigraphy = RecommendationInputs(symptoms=(phq9(12),), forecasts=CROSSING)
    silent(no_actigraphy, "combined.sleep_decline_and_phq9")


# ---- correlations ----------------------------------------------------------------------------


def corr(
    r: float, q: float, lag: int = 1, biometric: str = "steps", symptom: str = "mood_rating"
) -> Correlation:
    return Correlation(biometric, symptom, lag, r, q, "pearson", 42)


def test_significant_lagged_correlation_cites_r_lag_and_q() -> None:
    inputs = RecommendationInputs(correlations=(corr(0.52, 0.01), corr(0.2, 0.3, lag=0)))
    rec = fired(inputs, "correlation.lagged_association")
    assert rec.priority is Priority.LOW
    assert rec.evidence == (
        "steps correlate with next-day mood r = 0.52, lag 1 day, q = 0.01 (Pearson, 42 days)",
    )


@pytest.mark.parametrize(
    ("r", "q", "fires"),
    [(0.3, 0.05, True), (-0.3, 0.05, True), (0.29, 0.001, False), (0.8, 0.051, False)],
)
def test_correlation_rule_boundaries(r: float, q: float, fires: bool) -> None:
    inputs = RecommendationInputs(correlations=(corr(r, q),))
    assert (by_id(recommend(inputs), "correlation.lagged_association") is not None) is fires


def test_correlation_rule_reports_the_strongest_test_per_pair_and_at_most_three_pairs() -> None:
    tests = (
        corr(0.41, 0.02, lag=0),
        corr(-0.61, 0.0004, lag=2),
        corr(0.35, 0.04, biometric="total_sleep_time_minutes", symptom="phq9_total"),
        corr(0.45, 0.03, biometric="resting_heart_rate"),
        corr(0.33, 0.04, biometric="heart_rate"),
    )
    rec = fired(RecommendationInputs(correlations=tests), "correlation.lagged_association")
    assert rec.evidence == (
        "steps correlate with mood 2 days later r = -0.61, lag 2 days, q < 0.001 (Pearson, 42 days)",
        "resting heart rate correlate with next-day mood r = 0.45, lag 1 day, q = 0.03 (Pearson, 42 days)",
        "total sleep time correlate with next-day PHQ-9 r = 0.35, lag 1 day, q = 0.04 (Pearson, 42 days)",
    )
    silent(RecommendationInputs(correlations=None), "correlation.lagged_association")
    silent(RecommendationInputs(correlations=()), "correlation.lagged_association")


def test_correlation_threshold_is_configurable() -> None:
    strict = RuleThresholds(correlation_min_abs_coefficient=0.6)
    silent(
        RecommendationInputs(correlations=(corr(0.52, 0.01),), thresholds=strict),
        "correlation.lagged_association",
    )


# ---- medications -----------------------------------------------------------------------------

AVOID_CITALOPRAM = DrugGuidance(
    "citalopram",
    GuidanceAction.CONSIDER_ALTERNATIVE,
    (("CYP2C19", "Poor Metabolizer"),),
    "CPIC 2023",
    "moderate",
)


def test_actionable_guidance_on_a_current_drug_is_cited() -> None:
    meds = MedicationEvidence(("citalopram",), (AVOID_CITALOPRAM,))
    rec = fired(RecommendationInputs(medications=meds), "medication.pgx_current_drug")
    assert rec.priority is Priority.MEDIUM
    assert rec.evidence == (
        "citalopram: CYP2C19 Poor Metabolizer -> consider an alternative drug (CPIC 2023, moderate)",
    )
    avoid = replace(AVOID_CITALOPRAM, action=GuidanceAction.AVOID)
    high = fired(
        RecommendationInputs(medications=MedicationEvidence(("Citalopram",), (avoid,))),
        "medication.pgx_current_drug",
    )
    assert high.priority is Priority.HIGH


def test_guidance_rule_ignores_candidates_not_taken_and_standard_dosing() -> None:
    not_taken = MedicationEvidence(("sertraline",), (AVOID_CITALOPRAM,))
    silent(RecommendationInputs(medications=not_taken), "medication.pgx_current_drug")
    standard = replace(AVOID_CITALOPRAM, action=GuidanceAction.STANDARD_DOSING)
    silent(
        RecommendationInputs(medications=MedicationEvidence(("citalopram",), (standard,))),
        "medication.pgx_current_drug",
    )
    silent(RecommendationInputs(medications=None), "medication.pgx_current_drug")


def test_interaction_warning_involving_a_current_drug() -> None:
    alert = InteractionAlert("aripiprazole", Severity.HIGH, "fluoxetine", "CYP2D6", "drug-drug-gene")
    meds = MedicationEvidence(("fluoxetine", "aripiprazole"), (), (alert, alert))
    rec = fired(RecommendationInputs(medications=meds), "medication.interaction")
    assert rec.priority is Priority.HIGH
    assert rec.evidence == ("aripiprazole with fluoxetine (drug-drug-gene, CYP2D6): severity high",)
    moderate = replace(alert, severity=Severity.MODERATE)
    rec = fired(
        RecommendationInputs(medications=MedicationEvidence(("fluoxetine",), (), (moderate,))),
        "medication.interaction",
    )
    assert rec.priority is Priority.MEDIUM


def test_interaction_rule_ignores_low_severity_and_drugs_not_taken() -> None:
    low = InteractionAlert("aripiprazole", Severity.LOW, "fluoxetine", "CYP2D6", "drug-drug-gene")
    silent(
        RecommendationInputs(medications=MedicationEvidence(("fluoxetine",), (), (low,))),
        "medication.interaction",
    )
    other = replace(low, severity=Severity.HIGH)
    silent(
        RecommendationInputs(medications=MedicationEvidence(("sertraline",), (), (other,))),
        "medication.interaction",
    )


# ---- ordering --------------------------------------------------------------------------------


def test_recommendations_are_ordered_most_urgent_first() -> None:
    inputs = RecommendationInputs(
        symptoms=(phq9(16, item9=1),),
        actigraphy=ActigraphyEvidence(sleep(tst_minutes=300.0, stability=0.3)),
    )
    recs = recommend(inputs)
    assert [r.rule_id for r in recs] == [
        "safety.phq9_item9",
        "symptoms.phq9_severity",
        "sleep.short_total_sleep_time",
        "circadian.irregular_rhythm",
    ]
    assert [r.priority for r in recs] == sorted((r.priority for r in recs), reverse=True)


def test_no_evidence_no_recommendations() -> None:
    assert recommend(RecommendationInputs()) == []
