"""Circadian metrics on synthetic rhythms whose answers are known."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.metrics import circadian

DAYS = 7


def _minutes(days: int = DAYS, start: str = "2024-03-04 00:00") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=days * 1440, freq="1min")


def _square_wave(days: int = DAYS) -> pd.Series:
    """Identical days: no activity 01:00-06:00, 200 counts/min 09:00-19:00, 50 otherwise."""
    index = _minutes(days)
    hour = index.hour.to_numpy()
    counts = np.where((hour >= 1) & (hour < 6), 0.0, np.where((hour >= 9) & (hour < 19), 200.0, 50.0))
    return pd.Series(counts, index=index)


def test_identical_days_give_interdaily_stability_of_one_in_the_sample_variance_form() -> None:
    counts = _square_wave()

    stability = circadian.interdaily_stability(counts, "1h", binarize=False)

    # Sample variances (ddof=1): IS = (24 d - 1) / (23 d) on d identical days, about 1.04.
    assert stability == pytest.approx((24 * DAYS - 1) / (23 * DAYS), rel=1e-12)


def test_a_square_wave_varies_little_within_a_day_while_noise_varies_a_lot() -> None:
    rng = np.random.default_rng(7)
    noise = pd.Series(rng.poisson(100, DAYS * 1440).astype(float), index=_minutes())

    assert circadian.intradaily_variability(_square_wave(), "1min", binarize=False) < 0.01
    assert circadian.intradaily_variability(noise, "1min", binarize=False) == pytest.approx(2.0, abs=0.1)


def test_l5_and_m10_find_the_quiet_and_busy_blocks_and_their_onsets() -> None:
    counts = _square_wave()

    least = circadian.l5(counts, binarize=False)
    most = circadian.m10(counts, binarize=False)

    assert least == circadian.ActivityWindow(mean_activity=0.0, onset=dt.time(1, 0))
    assert most == circadian.ActivityWindow(mean_activity=200.0, onset=dt.time(9, 0))
    assert least.onset_minutes == 60
    assert circadian.relative_amplitude(counts, binarize=False) == pytest.approx(1.0)


def test_l5_window_wraps_past_midnight() -> None:
    index = _minutes()
    hour = index.hour.to_numpy()
    counts = pd.Series(np.where((hour >= 23) | (hour < 4), 0.0, 100.0), index=index)

    least = circadian.l5(counts, binarize=False)

    assert least is not None
    assert least.onset == dt.time(23, 0)
    assert least.mean_activity == 0.0


def test_binarised_l5_and_m10_are_fractions_of_active_epochs() -> None:
    counts = _square_wave()

    assert circadian.l5(counts) == circadian.ActivityWindow(0.0, dt.time(1, 0))
    assert circadian.m10(counts).mean_activity == pytest.approx(1.0)  # type: ignore[union-attr]


def test_a_recording_shorter_than_a_day_has_no_l5_m10_or_relative_amplitude() -> None:
    counts = _square_wave().iloc[: 20 * 60]

    assert circadian.l5(counts) is None
    assert circadian.m10(counts) is None
    assert circadian.relative_amplitude(counts) is None


def test_constant_activity_leaves_is_and_iv_undefined() -> None:
    counts = pd.Series(10.0, index=_minutes())

    assert math.isnan(circadian.interdaily_stability(counts, binarize=False))
    assert math.isnan(circadian.intradaily_variability(counts, binarize=False))
    assert math.isnan(circadian.k_ra(counts))


def test_counts_without_a_regular_datetime_index_are_rejected() -> None:
    irregular = _square_wave().drop(_square_wave().index[[5, 9]])
    irregular.index.freq = None

    with pytest.raises(ValidationError):
        circadian.interdaily_stability(irregular)
    with pytest.raises(ValidationError):
        circadian.interdaily_stability(pd.Series([1.0, 2.0, 3.0]))
    with pytest.raises(ValidationError):
        circadian.l5(pd.Series([1.0], index=_minutes()[:1]))


def test_adat_extrapolates_partial_days_or_drops_the_end_days() -> None:
    index = pd.date_range("2024-03-04 12:00", periods=3 * 1440, freq="1min")  # 1.5 + 1 + 0.5 days
    counts = pd.Series(1.0, index=index)

    assert circadian.average_daily_activity(counts, binarize=False) == pytest.approx(1440)
    assert circadian.average_daily_activity(counts, binarize=False, rescale=False, exclude_ends=True) == 1440
    assert circadian.average_daily_activity(counts, binarize=False, rescale=False) == pytest.approx(
        (720 + 1440 + 1440 + 720) / 4
    )


def test_transition_probabilities_are_high_for_fragmented_and_low_for_consolidated_rest() -> None:
    rng = np.random.default_rng(3)
    fragmented = pd.Series(rng.integers(0, 2, DAYS * 1440) * 10.0, index=_minutes())

    assert circadian.k_ra(fragmented) == pytest.approx(0.5, abs=0.05)  # runs end with p = 1/2
    assert circadian.k_ar(fragmented) == pytest.approx(0.5, abs=0.05)


def test_cosinor_recovers_mesor_amplitude_and_peak_time_of_a_pure_rhythm() -> None:
    index = pd.date_range("2024-03-04 06:00", periods=3 * 2880, freq="30s")
    hours = (index - pd.Timestamp("2024-03-04")).total_seconds().to_numpy() / 3600
    counts = pd.Series(120 + 80 * np.cos(2 * np.pi * (hours - 15) / 24), index=index)

    fit = circadian.cosinor(counts)

    assert fit.mesor == pytest.approx(120)
    assert fit.amplitude == pytest.approx(80)
    assert fit.acrophase_time == dt.time(15, 0)
    assert fit.period_epochs == 2880
    # Phase at the first epoch (06:00), pyActigraphy's convention: 9 h before the peak.
    assert fit.acrophase_rad == pytest.approx(2 * np.pi * (1 - 9 / 24))


def test_multi_scale_and_per_period_variants_agree_with_single_scale_ones() -> None:
    counts = _square_wave(days=15)

    assert circadian.interdaily_stability_mean(counts, [60], binarize=False) == pytest.approx(
        circadian.interdaily_stability(counts, "1h", binarize=False)
    )
    assert len(circadian.interdaily_stability_per_period(counts, "7D")) == 2
    assert circadian.intradaily_variability_per_period(counts, "30D") == []
