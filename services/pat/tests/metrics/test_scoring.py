"""Sleep/wake scoring and rest detection on plain, hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.domain.metrics import scoring


def _series(
    values: list[float] | np.ndarray, epoch: str = "60s", start: str = "2024-03-04 22:00"
) -> pd.Series:
    values = np.asarray(values, dtype=np.float64)
    return pd.Series(values, index=pd.date_range(start, periods=values.size, freq=epoch))


def _night_and_day(days: int = 7, epoch: str = "60s") -> pd.Series:
    """Quiet nights 23:00-07:00 (small counts, never 30 min of zeros), busy days."""
    index = pd.date_range(
        "2024-03-04 12:00", periods=days * 1440 * 60 // pd.Timedelta(epoch).seconds, freq=epoch
    )
    rng = np.random.default_rng(11)
    hour = index.hour.to_numpy()
    night = (hour >= 23) | (hour < 7)
    counts = np.where(night, rng.poisson(2, index.size), rng.poisson(200, index.size))
    return pd.Series(counts.astype(np.float64), index=index)


# --- Cole-Kripke and Webster ---------------------------------------------------------------------


def test_cole_kripke_scores_stillness_sleep_but_the_edges_wake() -> None:
    counts = _series(np.zeros(60))

    raw = scoring.score_cole_kripke(counts, rescore=False)
    rescored = scoring.score_cole_kripke(counts)

    assert raw.tolist() == [0] * 4 + [1] * 52 + [0] * 4
    # Webster (a): after 4 min of wake the first minute of sleep is rescored wake.
    assert rescored.tolist() == [0] * 5 + [1] * 51 + [0] * 4


def test_cole_kripke_scores_sustained_movement_wake() -> None:
    assert scoring.score_cole_kripke(_series(np.full(60, 500.0))).sum() == 0


def test_cole_kripke_maps_each_minute_score_onto_its_sub_minute_epochs() -> None:
    counts = _series(np.r_[np.zeros(40), np.full(40, 900.0)], epoch="30s")

    scored = scoring.score_cole_kripke(counts, "30sec_max_non_overlap")

    assert scored.index.equals(counts.index)
    assert (scored.to_numpy()[0::2] == scored.to_numpy()[1::2]).all()


def test_cole_kripke_settings_need_short_enough_epochs() -> None:
    with pytest.raises(ValidationError):
        scoring.score_cole_kripke(_series(np.zeros(60)), "30sec_max_non_overlap")
    with pytest.raises(ValidationError):
        scoring.score_cole_kripke(_series(np.zeros(60), epoch="120s"))


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # (a) >= 4 min wake: first minute of the following sleep bout.
        ([0] * 4 + [1] * 5, [0] * 4 + [0] + [1] * 4),
        # (b) >= 10 min wake: first 3 minutes.
        ([0] * 10 + [1] * 5, [0] * 10 + [0] * 3 + [1] * 2),
        # (c) >= 15 min wake: first 4 minutes.
        ([0] * 15 + [1] * 6, [0] * 15 + [0] * 4 + [1] * 2),
        # A 2-min bout after 15 min of wake is shorter than rules (b, c) look for: (a) takes 1 min.
        ([0] * 15 + [1] * 2 + [0] * 3 + [1] * 30, [0] * 16 + [1] + [0] * 3 + [1] * 30),
        # (d) <= 6 min of sleep between >= 10 min of wake on both sides.
        ([0] * 10 + [1] * 6 + [0] * 10, [0] * 26),
        # (e) <= 10 min of sleep between >= 20 min of wake on both sides; 11 min survive but (c).
        ([0] * 20 + [1] * 10 + [0] * 20, [0] * 50),
        ([0] * 20 + [1] * 11 + [0] * 20, [0] * 24 + [1] * 7 + [0] * 20),
        # Nothing to rescore in consolidated sleep.
        ([1] * 30, [1] * 30),
    ],
)
def test_webster_rescoring_rules(scores: list[int], expected: list[int]) -> None:
    assert scoring.webster_rescore(np.array(scores)).tolist() == expected


# --- Sadeh, Scripps, Oakley ----------------------------------------------------------------------


def test_sadeh_scores_stillness_sleep_except_where_its_windows_leave_the_data() -> None:
    scored = scoring.score_sadeh(_series(np.zeros(30)))

    assert scored.tolist() == [0] * 5 + [1] * 20 + [0] * 5


def test_sadeh_scores_movement_wake() -> None:
    assert scoring.score_sadeh(_series(np.full(30, 300.0))).sum() == 0


def test_scripps_needs_ten_epochs_either_side() -> None:
    scored = scoring.score_scripps(_series(np.zeros(40)))

    assert scored.tolist() == [0] * 10 + [1] * 20 + [0] * 10


def test_oakley_threshold_separates_sleep_from_wake() -> None:
    counts = _series([0, 0, 0, 0, 30, 0, 0, 0, 60, 0, 0, 0])

    scored = scoring.score_oakley(counts, threshold=40)

    # Weighted sums: 30 -> 30 (sleep), 60 -> 60 (wake), neighbours 0.2 x 60 = 12 (sleep).
    assert scored.tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0]


def test_actiware_automatic_threshold_divides_counts_by_mobile_minutes() -> None:
    counts = _series([0, 4, 8, 0, 3])

    assert scoring.actiware_wake_threshold(counts) == pytest.approx(15 / 2 * 0.88888)


def test_oakley_refuses_other_epoch_lengths() -> None:
    with pytest.raises(ValidationError):
        scoring.score_oakley(_series(np.zeros(60), epoch="10s"))


# --- Rest detection ------------------------------------------------------------------------------


@pytest.mark.parametrize("detect", [scoring.detect_rest_crespo, scoring.detect_rest_roenneberg])
def test_rest_detection_finds_the_quiet_nights(detect: object) -> None:
    counts = _night_and_day()
    hour = pd.DatetimeIndex(counts.index).hour.to_numpy()
    night = (hour >= 23) | (hour < 7)

    rest = detect(counts)  # type: ignore[operator]

    assert rest.index.equals(counts.index)
    assert rest.to_numpy()[night].mean() > 0.9
    assert rest.to_numpy()[~night].mean() < 0.05


def test_crespo_scores_the_first_and_last_epochs_activity() -> None:
    rest = scoring.detect_rest_crespo(_night_and_day())

    assert rest.iloc[0] == 0
    assert rest.iloc[-1] == 0


def test_crespo_needs_more_than_its_median_window_of_data() -> None:
    with pytest.raises(ValidationError):
        scoring.detect_rest_crespo(_series(np.zeros(6 * 60)))


def test_crespo_handles_a_week_where_one_state_never_occurs() -> None:
    # A perfectly regular week: every night quiet, every day active, no zero counts at all.
    index = pd.date_range("2026-03-02", periods=10_080, freq="min")
    hour = index.hour
    counts = pd.Series(np.where((hour >= 7) & (hour < 23), 250.0, 1.0), index=index)
    rest = scoring.detect_rest_crespo(counts)
    assert set(np.unique(rest)) <= {0, 1}
    assert rest[(hour >= 1) & (hour < 5)].mean() > 0.9  # nights are rest
