"""The twin's pure rules: symptom scores, medication lists, local days and weeks, analysis order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from novamind.core.errors import ValidationError
from novamind.twin.domain.analyses import Placement, comparison_week, place_analysis
from novamind.twin.domain.medications import MedicationEntry, validate_medications
from novamind.twin.domain.readings import (
    MINUTES_PER_WEEK,
    completed_through,
    daily_means,
    daily_totals,
    days_with_data,
    is_minute_epoch,
    minute_week,
    trailing_week_start,
)
from novamind.twin.domain.symptoms import Instrument, score_report


def test_questionnaire_totals_are_item_sums_and_mood_is_the_rating() -> None:
    assert score_report(Instrument.PHQ9, [3, 2, 1, 0, 3, 2, 1, 0, 1]) == 13
    assert score_report(Instrument.GAD7, [3] * 7, total=21) == 21
    assert score_report(Instrument.MOOD, [], total=6.5) == 6.5


@pytest.mark.parametrize(
    ("instrument", "items", "total", "field"),
    [
        (None, [0] * 9, None, "instrument"),
        (Instrument.PHQ9, [0] * 8, None, "item_responses"),
        (Instrument.GAD7, [0] * 9, None, "item_responses"),
        (Instrument.PHQ9, [0, 0, 0, 4, 0, 0, 0, 0, 0], None, "item_responses[3]"),
        (Instrument.PHQ9, [1] * 9, 10.0, "total"),
        (Instrument.MOOD, [], None, "total"),
        (Instrument.MOOD, [], 10.5, "total"),
        (Instrument.MOOD, [], float("nan"), "total"),
        (Instrument.MOOD, [1], 5.0, "item_responses"),
    ],
)
def test_malformed_reports_name_the_field(
    instrument: Instrument | None, items: list[int], total: float | None, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        score_report(instrument, items, total=total)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ([MedicationEntry("Sertraline")], "medications[0].name"),
        ([MedicationEntry("sertraline"), MedicationEntry("")], "medications[1].name"),
        ([MedicationEntry("zoloft 50mg!")], "medications[0].name"),
        ([MedicationEntry("lithium"), MedicationEntry("lithium")], "medications[1].name"),
        ([MedicationEntry("sertraline", -50, "mg")], "medications[0].daily_dose.value"),
        ([MedicationEntry("sertraline", 50, "")], "medications[0].daily_dose.unit"),
        (
            [
                MedicationEntry(
                    "sertraline",
                    started_at=datetime(2026, 2, 1, tzinfo=UTC),
                    stopped_at=datetime(2026, 1, 1, tzinfo=UTC),
                )
            ],
            "medications[0].stopped_at",
        ),
    ],
)
def test_medication_lists_are_validated(entries: list[MedicationEntry], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_medications(entries)
    assert caught.value.field == field


def test_valid_medication_lists_pass() -> None:
    validate_medications(
        [
            MedicationEntry("sertraline", 50, "mg"),
            MedicationEntry("lithium carbonate", 0, "mg"),
            MedicationEntry("st-johns-wort"),
        ]
    )


def test_a_series_reaching_local_midnight_completes_the_day_before() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 23:00 UTC on 5 April is 01:00 on 6 April in Berlin (summer time).
    assert completed_through(datetime(2026, 4, 5, 23, 0, tzinfo=UTC), berlin) == date(2026, 4, 5)
    assert completed_through(datetime(2026, 4, 5, 21, 59, tzinfo=UTC), berlin) == date(2026, 4, 4)
    assert completed_through(datetime(2026, 4, 6, 0, 0, tzinfo=UTC), UTC) == date(2026, 4, 5)


def test_a_trailing_week_starts_at_local_midnight_six_days_before() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert trailing_week_start(date(2026, 4, 5), berlin) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    # Across the change to summer time the week still starts at local midnight (23:00 UTC in winter).
    assert trailing_week_start(date(2026, 4, 1), berlin) == datetime(2026, 3, 25, 23, 0, tzinfo=UTC)


def test_the_minute_week_marks_absent_minutes_missing() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    week = minute_week(
        start, [(start, 5.0), (start + timedelta(minutes=10_079), 9.0), (start - timedelta(minutes=1), 1.0)]
    )
    assert len(week.values) == MINUTES_PER_WEEK and week.minutes_present == 2
    assert (week.values[0], week.values[-1], week.missing[1]) == (5.0, 9.0, True)
    assert week.end == start + timedelta(days=7)


def test_only_sixty_second_activity_counts_form_the_minute_series() -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)
    assert is_minute_epoch("activity-count", at, at + timedelta(seconds=60))
    assert not is_minute_epoch("activity-count", at, at + timedelta(seconds=30))
    assert not is_minute_epoch("step-count", at, at + timedelta(seconds=60))
    assert not is_minute_epoch("activity-count", at, None)


def test_daily_series_group_by_local_day() -> None:
    new_york = ZoneInfo("America/New_York")
    samples = [
        (datetime(2026, 3, 3, 3, 0, tzinfo=UTC), 100.0),  # 22:00 on 2 March in New York
        (datetime(2026, 3, 3, 15, 0, tzinfo=UTC), 200.0),
        (datetime(2026, 3, 3, 16, 0, tzinfo=UTC), 400.0),
    ]
    assert daily_totals(samples, new_york) == {date(2026, 3, 2): 100.0, date(2026, 3, 3): 600.0}
    assert daily_means(samples, new_york) == {date(2026, 3, 2): 100.0, date(2026, 3, 3): 300.0}
    assert days_with_data([at for at, _ in samples], new_york) == {date(2026, 3, 2), date(2026, 3, 3)}


def test_analyses_are_ordered_by_the_end_of_their_week() -> None:
    week1, week2, week3 = (datetime(2026, 3, d, tzinfo=UTC) for d in (8, 15, 22))
    assert place_analysis(week2, None, None) is Placement.SUPERSEDES_LATEST
    assert place_analysis(week3, week2, week1) is Placement.SUPERSEDES_LATEST
    assert place_analysis(week2, week2, week1) is Placement.REPLACES_LATEST
    assert place_analysis(week1, week2, None) is Placement.REPLACES_PREVIOUS
    assert place_analysis(week2, week3, week1) is Placement.REPLACES_PREVIOUS
    assert place_analysis(week1, week3, week2) is Placement.IGNORED


def test_the_latest_week_is_compared_with_the_newest_week_a_full_week_before_it() -> None:
    day = [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=d) for d in range(30)]
    # daily sliding analyses: a full week back wins, the nearest such
    assert comparison_week(day[20], [day[19], day[13], day[12], day[3]]) == day[13]
    # nothing a full week back yet: the one furthest back
    assert comparison_week(day[9], [day[8], day[5], day[4]]) == day[4]
    assert comparison_week(day[9], [day[9], day[10], None]) is None
    # a late analysis a week before the latest replaces an overlapping previous, not the reverse
    assert place_analysis(day[13], day[20], day[19]) is Placement.REPLACES_PREVIOUS
    assert place_analysis(day[19], day[20], day[13]) is Placement.IGNORED
