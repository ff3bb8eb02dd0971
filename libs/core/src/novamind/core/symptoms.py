"""Daily symptom series from individual reports: one rule for every service that needs them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol
from zoneinfo import ZoneInfo

from novamind.api.common.v1 import common_pb2

#: Stable series names of the instruments' daily totals.
SERIES_NAMES: dict[int, str] = {
    common_pb2.SYMPTOM_INSTRUMENT_PHQ9: "phq9_total",
    common_pb2.SYMPTOM_INSTRUMENT_GAD7: "gad7_total",
    common_pb2.SYMPTOM_INSTRUMENT_MOOD: "mood_rating",
}


class _Timestamp(Protocol):
    seconds: int
    nanos: int

    def ToDatetime(self, tzinfo: dt.tzinfo | None = ...) -> dt.datetime: ...


class Report(Protocol):
    """What the rule reads of a symptom report (``twin.v1.SymptomReport``)."""

    @property
    def instrument(self) -> int: ...
    @property
    def total(self) -> float: ...
    @property
    def reported_at(self) -> _Timestamp: ...


def daily_symptom_totals(reports: Iterable[Report], time_zone: ZoneInfo) -> dict[int, dict[dt.date, float]]:
    """Per instrument, each patient-local day's total: the last report of that day wins."""
    by_day: dict[int, dict[dt.date, float]] = {}
    for report in sorted(reports, key=lambda r: (r.reported_at.seconds, r.reported_at.nanos)):
        if report.instrument not in SERIES_NAMES:
            continue
        local = report.reported_at.ToDatetime(tzinfo=dt.UTC).astimezone(time_zone).date()
        by_day.setdefault(report.instrument, {})[local] = report.total
    return by_day
