"""Which stored actigraphy analyses the twin shows: the latest week and the one before it."""

from __future__ import annotations

import enum
from datetime import datetime


class Placement(enum.Enum):
    """Where a newly completed analysis goes in the twin."""

    #: A newer week: the latest becomes the previous, the new one the latest.
    SUPERSEDES_LATEST = "supersedes_latest"
    #: The same week as the latest (a re-analysis): it replaces the latest.
    REPLACES_LATEST = "replaces_latest"
    #: Older than the latest but newer than (or the same week as) the previous: the new previous.
    REPLACES_PREVIOUS = "replaces_previous"
    #: Older than both: kept in the analysis history only.
    IGNORED = "ignored"


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
    if previous_end is None or week_end >= previous_end:
        return Placement.REPLACES_PREVIOUS
    return Placement.IGNORED
