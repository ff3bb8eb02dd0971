"""Every metric on a 30-day recording of 30-s epochs takes about a second, not minutes."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from novamind.pat.domain.metrics import circadian, scoring, sleep


def test_all_metrics_on_thirty_days_of_30_second_epochs_run_in_about_a_second() -> None:
    index = pd.date_range("2024-01-01 08:00", periods=30 * 2880, freq="30s")
    rng = np.random.default_rng(0)
    hour = index.hour.to_numpy()
    counts = pd.Series(rng.poisson(np.where((hour >= 23) | (hour < 7), 2, 150)).astype(float), index=index)

    started = time.perf_counter()
    for binarize in (True, False):
        circadian.interdaily_stability(counts, binarize=binarize)
        circadian.intradaily_variability(counts, binarize=binarize)
        circadian.interdaily_stability_mean(counts, binarize=binarize)
        circadian.intradaily_variability_mean(counts, binarize=binarize)
        circadian.interdaily_stability_per_period(counts, binarize=binarize)
        circadian.intradaily_variability_per_period(counts, binarize=binarize)
        circadian.relative_amplitude(counts, binarize=binarize)
        circadian.average_daily_activity(counts, binarize=binarize)
    circadian.k_ra(counts)
    circadian.k_ar(counts)
    circadian.cosinor(counts)
    scored = scoring.score_cole_kripke(counts)
    for score in (scoring.score_sadeh, scoring.score_scripps, scoring.score_oakley):
        score(counts)
    scoring.score_cole_kripke(counts, "30sec_max_non_overlap")
    scoring.detect_rest_roenneberg(counts)
    periods = sleep.find_rest_periods(counts)
    sleep.sleep_timing_variability(sleep.nights_sleep(scored, periods))
    sleep.sleep_regularity_index(scored)
    sleep.sleep_midpoint(scored)
    sleep.daily_activity(counts)
    elapsed = time.perf_counter() - started

    assert elapsed < 2.5, f"{elapsed:.2f} s"
