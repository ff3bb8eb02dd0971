"""The double-plotted actogram: the picture a clinician reads a recording from.

Each row shows 48 hours of local clock time — day *d* on the left half and day *d + 1* on the
right half — so that a regular rhythm forms a vertical band and drift shows as a slant. Activity
is drawn as bars (counts per epoch, scaled per recording); scored sleep is shaded blue and
non-wear or missing data grey.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless rendering; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

SLEEP_COLOUR = "#4f81bd"
NON_WEAR_COLOUR = "#bbbbbb"
ACTIVITY_COLOUR = "#222222"


def _day_rows(series: pd.Series, day_starts: pd.DatetimeIndex) -> list[pd.Series]:
    """One 24 h slice of ``series`` per local calendar day (re-indexed to hours since midnight)."""
    rows = []
    for start in day_starts:
        day = series[(series.index >= start) & (series.index < start + pd.Timedelta(days=1))]
        hours = (pd.DatetimeIndex(day.index) - start) / pd.Timedelta(hours=1)
        rows.append(pd.Series(day.to_numpy(dtype=float), index=np.asarray(hours, dtype=float)))
    return rows


def _band(ax: Axes, values: pd.Series, offset_hours: float, colour: str, alpha: float) -> None:
    """Fill under a step curve of ``values`` (0..1) starting ``offset_hours`` into the row."""
    if values.empty:
        return
    x = values.index.to_numpy(dtype=float) + offset_hours
    ax.fill_between(
        x, 0, np.clip(values.to_numpy(dtype=float), 0, 1), step="post", color=colour, alpha=alpha, linewidth=0
    )


def render_actogram(
    activity: pd.Series,
    output: Path,
    *,
    sleep: pd.Series | None = None,
    non_wear: pd.Series | None = None,
    title: str = "Actogram",
) -> Path:
    """Draw a double-plotted actogram of ``activity`` (counts per epoch, local time) to a PNG.

    ``sleep`` and ``non_wear`` are boolean series on the same index (True = asleep / not worn or
    missing). Returns ``output``.
    """
    index = pd.DatetimeIndex(activity.index)
    naive = index.tz_localize(None) if index.tz is not None else index
    counts = pd.Series(activity.to_numpy(dtype=float), index=naive)
    missing = counts.isna()
    if non_wear is not None:
        missing = missing | pd.Series(non_wear.to_numpy(dtype=bool), index=naive)
    asleep = pd.Series(sleep.to_numpy(dtype=bool), index=naive) if sleep is not None else None

    first_day = naive[0].normalize()
    n_days = int((naive[-1].normalize() - first_day).days) + 1
    day_starts = pd.date_range(first_day, periods=n_days + 1, freq="D")
    scale = float(np.nanpercentile(counts.to_numpy(), 99)) or 1.0

    activity_rows = _day_rows(counts.fillna(0.0), day_starts)
    missing_rows = _day_rows(missing.astype(float), day_starts)
    sleep_rows = _day_rows(asleep.astype(float), day_starts) if asleep is not None else None

    fig, axes = plt.subplots(n_days, 1, figsize=(12, 0.55 * n_days + 1.2), sharex=True, squeeze=False)
    for row in range(n_days):
        ax = axes[row, 0]
        for half, day in ((0.0, row), (24.0, row + 1)):
            if sleep_rows is not None:
                _band(ax, sleep_rows[day], half, SLEEP_COLOUR, 0.35)
            _band(ax, missing_rows[day], half, NON_WEAR_COLOUR, 0.6)
            act = activity_rows[day]
            _band(ax, act.clip(lower=0) / scale, half, ACTIVITY_COLOUR, 1.0)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel(day_starts[row].strftime("%a %d %b"), rotation=0, ha="right", va="center", fontsize=7)
        ax.axvline(24, color="#888888", linewidth=0.5)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    bottom = axes[-1, 0]
    bottom.set_xlim(0, 48)
    bottom.set_xticks(range(0, 49, 6))
    bottom.set_xticklabels([f"{h % 24:02d}:00" for h in range(0, 49, 6)])
    bottom.set_xlabel("local clock time (two days per row)")
    fig.suptitle(title)
    handles = [
        Rectangle((0, 0), 1, 1, color=c, alpha=a)
        for c, a in ((ACTIVITY_COLOUR, 1.0), (SLEEP_COLOUR, 0.35), (NON_WEAR_COLOUR, 0.6))
    ]
    fig.legend(handles, ["activity", "scored sleep", "non-wear / missing"], loc="upper right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
