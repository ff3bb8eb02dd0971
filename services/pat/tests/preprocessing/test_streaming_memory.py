"""A month of 30-s data is turned into weeks in bounded memory when streamed in chunks."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from novamind.pat.domain.preprocessing import sliding_weeks, stream_weeks, to_minutes
from novamind.pat.domain.recording import DeviceInfo, Recording

EPOCH_SECONDS = 30
CHUNK_EPOCHS = 720  # six hours
ZONE = "Europe/Zurich"


def chunked_recording(days: int) -> Iterator[Recording]:
    """30-s epochs produced six hours at a time, never held whole."""
    start = pd.Timestamp("2026-03-02", tz=ZONE)
    total = days * 2_880
    for k, lo in enumerate(range(0, total, CHUNK_EPOCHS)):
        n = min(CHUNK_EPOCHS, total - lo)
        index = pd.date_range(start + pd.Timedelta(seconds=lo * EPOCH_SECONDS), periods=n, freq="30s")
        values = np.random.default_rng(k).poisson(120, n).astype(np.float64)
        yield Recording(
            pd.Series(values, index=index), float(EPOCH_SECONDS), DeviceInfo("test"), timezone=ZONE
        )


def peak_bytes(run: Callable[[], list[float]]) -> tuple[int, list[float]]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = run()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def streamed(days: int) -> list[float]:
    return [float(w.values.sum()) for w in stream_weeks(chunked_recording(days))]


def materialised(days: int) -> list[float]:
    parts = [c.activity for c in chunked_recording(days)]
    whole = Recording(pd.concat(parts), float(EPOCH_SECONDS), DeviceInfo("test"), timezone=ZONE)
    del parts
    weeks = list(sliding_weeks(to_minutes(whole)))
    return [float(w.values.sum()) for w in weeks]


def test_a_streamed_month_peaks_below_a_third_of_the_materialised_month() -> None:
    streamed_peak, streamed_sums = peak_bytes(lambda: streamed(30))
    materialised_peak, materialised_sums = peak_bytes(lambda: materialised(30))

    assert streamed_sums == materialised_sums and len(streamed_sums) == 24
    assert streamed_peak < materialised_peak / 3, (streamed_peak, materialised_peak)


def test_streaming_memory_does_not_grow_with_the_recording_length() -> None:
    month_peak, _ = peak_bytes(lambda: streamed(30))
    quarter_peak, weeks = peak_bytes(lambda: streamed(90))

    assert len(weeks) == 84
    assert quarter_peak < 1.2 * month_peak, (month_peak, quarter_peak)
