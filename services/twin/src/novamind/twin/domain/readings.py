"""Device readings as the twin keeps them, and the minute-level week built from them.

The minute-level series is made of ``activity-count`` readings whose epoch is exactly 60 seconds
(``start`` to ``end``); readings with other epoch lengths are stored but do not enter it.
``step-count`` and ``heart-rate`` readings are stored for the daily biometric series (steps per
local day, mean heart rate per local day).

Local days are calendar days in the patient's IANA time zone. A week is 10,080 one-minute epochs
starting at local midnight of its first day (across a daylight-saving change it therefore ends an
hour before or after local midnight).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

ACTIVITY_COUNT = "activity-count"
STEP_COUNT = "step-count"
HEART_RATE = "heart-rate"

EPOCH_SECONDS = 60
MINUTES_PER_WEEK = 10_080
DAYS_PER_WEEK = 7
WEEK = timedelta(minutes=MINUTES_PER_WEEK)
#: Unit of the minute-level series PAT analyses.
COUNTS_PER_MINUTE = "{counts}/min"


@dataclass(frozen=True, slots=True)
class Reading:
    """One wearable reading for a patient (identified only by pseudonym).

    ``value`` is in ``unit`` (UCUM or the Open mHealth unit the device sent: steps, counts,
    beats/min); ``end`` is None for an instantaneous measurement. ``at_rest`` marks a heart rate
    measured at rest.
    """

    event_id: str
    patient: str
    schema: str
    start: datetime
    end: datetime | None
    value: float | None
    unit: str | None
    at_rest: bool = False


@dataclass(frozen=True, slots=True)
class IngestionStats:
    """How many readings the twin holds, overall or for one patient."""

    readings: int
    patients: int


@dataclass(frozen=True, slots=True)
class MinuteWeek:
    """A minute-level week: ``values[i]`` covers ``[start + i min, start + (i+1) min)``.

    ``missing[i]`` is True where no reading covers the minute (its value is then 0).
    """

    start: datetime
    values: list[float]
    missing: list[bool]

    @property
    def end(self) -> datetime:
        return self.start + WEEK

    @property
    def minutes_present(self) -> int:
        return len(self.missing) - sum(self.missing)


def is_minute_epoch(schema: str, start: datetime, end: datetime | None) -> bool:
    """Whether a reading belongs to the minute-level series (an activity count over 60 s)."""
    return schema == ACTIVITY_COUNT and end is not None and (end - start) == timedelta(seconds=EPOCH_SECONDS)


def completed_through(end: datetime, zone: tzinfo) -> date:
    """The newest local day a minute series reaching ``end`` has completed.

    A series reaching local midnight of day D+1 (or later within D+1) has completed day D.
    """
    return end.astimezone(zone).date() - timedelta(days=1)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The instant local day ``day`` begins, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def trailing_week_start(last_day: date, zone: tzinfo) -> datetime:
    """Start (UTC) of the week whose last local day is ``last_day``: local midnight six days before."""
    return local_midnight(last_day - timedelta(days=DAYS_PER_WEEK - 1), zone)


def days_with_data(starts: Iterable[datetime], zone: tzinfo) -> set[date]:
    """The local days on which any of the epochs starting at ``starts`` fall."""
    return {start.astimezone(zone).date() for start in starts}


def minute_week(start: datetime, samples: Iterable[tuple[datetime, float]]) -> MinuteWeek:
    """The week from ``start`` with each ``(epoch start, counts)`` sample put in its minute.

    Samples outside the week are ignored; a later sample for the same minute replaces an earlier one.
    """
    values = [0.0] * MINUTES_PER_WEEK
    missing = [True] * MINUTES_PER_WEEK
    for at, value in samples:
        index = int((at - start).total_seconds() // EPOCH_SECONDS)
        if 0 <= index < MINUTES_PER_WEEK:
            values[index] = value
            missing[index] = False
    return MinuteWeek(start=start, values=values, missing=missing)


def daily_totals(samples: Iterable[tuple[datetime, float]], zone: tzinfo) -> dict[date, float]:
    """Sum of the values per local day of their start (e.g. steps per day), ascending by day."""
    totals: dict[date, float] = defaultdict(float)
    for at, value in samples:
        totals[at.astimezone(zone).date()] += value
    return dict(sorted(totals.items()))


def daily_means(samples: Iterable[tuple[datetime, float]], zone: tzinfo) -> dict[date, float]:
    """Mean of the values per local day of their time (e.g. heart rate), ascending by day."""
    sums: dict[date, float] = defaultdict(float)
    counts: dict[date, int] = defaultdict(int)
    for at, value in samples:
        day = at.astimezone(zone).date()
        sums[day] += value
        counts[day] += 1
    return {day: sums[day] / counts[day] for day in sorted(sums)}
