"""The correlation validity benchmark's simulator plants what it says and scores what it flags."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import correlation_validity as cv


def test_simulated_requests_have_the_documented_shape_gaps_and_coupling() -> None:
    rng = np.random.default_rng(0)
    biometrics, symptoms = cv.request(rng, planted_lag=3, rho=0.7)
    assert sorted(biometrics) == ["b0", "b1", "b2", "b3"] and sorted(symptoms) == ["s0", "s1"]
    assert all(v.shape == (cv.DAYS,) for v in (*biometrics.values(), *symptoms.values()))
    missing = np.mean([np.isnan(v).mean() for v in (*biometrics.values(), *symptoms.values())])
    assert 0.03 < missing < 0.2
    # The planted lag carries the coupling: pooled over requests, r at lag 3 is near rho.
    rs = []
    for _ in range(15):
        b, s = cv.request(rng, planted_lag=3, rho=0.7)
        x, y = b["b0"][:-3], s["s0"][3:]
        both = np.isfinite(x) & np.isfinite(y)
        rs.append(np.corrcoef(x[both], y[both])[0, 1])
    assert 0.6 < float(np.mean(rs)) < 0.8


def test_a_planted_request_is_scored_for_every_approach() -> None:
    found = cv.run_once(np.random.default_rng(1), planted_lag=2, rho=0.9)
    assert ("b0", "s0", 2) in found.engine and ("b0", "s0", 2) in found.naive
    assert found.strongest["engine"][("b0", "s0")] == 2
    assert set(found.strongest) == set(cv.APPROACHES)
