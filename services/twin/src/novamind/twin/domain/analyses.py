"""Which stored actigraphy analyses the twin shows: the latest week and the week it is compared with.

The latest is the analysis of the newest week. The previous is the week the latest is compared
with ("sleep efficiency fell 12 points this week"): the newest analysed week that ends a full week
or more before the latest, so the two do not overlap; while no such week exists (the first days of
a patient's data, when analyses slide by a day), the one furthest back.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta

WEEK = timedelta(days=7)


class Placement(enum.Enum):
    """Where a newly completed analysis goes in the twin."""

    #: A newer week: it becomes the latest, and the previous is chosen again for it.
    SUPERSEDES_LATEST = "supersedes_latest"
    #: The same week as the latest (a re-analysis): it replaces the latest.
    REPLACES_LATEST = "replaces_latest"
    #: Older than the latest and a better comparison week than the previous: the new previous.
    REPLACES_PREVIOUS = "replaces_previous"
    #: Neither: kept in the analysis history only.
    IGNORED = "ignored"


def _rank(latest_end: datetime, candidate_end: datetime) -> tuple[int, float] | None:
    """Higher is a better comparison week for the latest; None when it is not before it."""
    if candidate_end >= latest_end:
        return None
    gap = (latest_end - candidate_end).total_seconds()
    # a full week apart: the nearer the better; otherwise the further back the better
    return (1, -gap) if gap >= WEEK.total_seconds() else (0, gap)


def comparison_week(latest_end: datetime, candidates: Iterable[datetime | None]) -> datetime | None:
    """The week end among ``candidates`` the latest week is best compared with."""
    best: tuple[tuple[int, float], datetime] | None = None
    for candidate in candidates:
        if candidate is None:
            continue
        rank = _rank(latest_end, candidate)
        if rank is not None and (best is None or rank > best[0]):
            best = (rank, candidate)
    return None if best is None else best[1]


def place_analysis(
    week_end: datetime, latest_end: datetime | None, previous_end: datetime | None
) -> Placement:
    """Place an analysis of the week ending at ``week_end`` against the twin's latest and previous.

    Analyses are ordered by the end of the analysed week, not by arrival, so an older week that
    completes late never replaces a newer one.
    """
    if latest_end is None or week_end > latest_end:
        return Placement.SUPERSEDES_LATEST
    if week_end == latest_end:
        return Placement.REPLACES_LATEST
    if week_end != previous_end and comparison_week(latest_end, (previous_end, week_end)) == week_end:
        return Placement.REPLACES_PREVIOUS
    return Placement.IGNORED
