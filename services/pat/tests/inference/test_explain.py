"""The 7 x 24 attention map: shape, normalisation, hours (DST included), and what attention shows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from novamind.core.errors import ValidationError
from novamind.pat.inference import Candidate, TorchBackend, attention_received, hour_of_week_map, prepare_week
from novamind.pat.model.pat import PATEncoder


def test_uniform_attention_gives_a_uniform_map_summing_to_one() -> None:
    grid = hour_of_week_map(np.full(560, 1 / 560), patch_size=18)
    assert grid.shape == (7, 24)
    assert grid.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(grid, 1 / 168)


def test_a_patch_straddling_two_hours_is_shared_by_minutes() -> None:
    received = np.zeros(560)
    received[3] = 1.0  # minutes 54-71 of day 0: six in hour 0, twelve in hour 1
    grid = hour_of_week_map(received, patch_size=18)
    assert grid[0, 0] == pytest.approx(6 / 18)
    assert grid[0, 1] == pytest.approx(12 / 18)
    assert np.count_nonzero(grid) == 2


@pytest.mark.parametrize("patch_size", [5, 9, 18])
def test_every_pat_patch_size_maps_day_and_hour(patch_size: int) -> None:
    received = np.zeros(10_080 // patch_size)
    received[(2 * 1440 + 13 * 60 + 30) // patch_size] = 1.0  # the patch starting on day 2 at 13:30
    grid = hour_of_week_map(received, patch_size=patch_size)
    assert grid.argmax() == 2 * 24 + 13


def test_fall_back_hour_collects_both_occurrences_and_the_week_ends_early() -> None:
    # A week that crosses a fall-back night on its first day: 01:00-01:59 happens twice, so the
    # week's 10,080 elapsed minutes end at 22:59 on the seventh local day.
    labels = np.concatenate([np.arange(120), np.arange(60, 1440), np.tile(np.arange(1440), 6)])[:10_080]
    grid = hour_of_week_map(np.full(560, 1 / 560), patch_size=18, local_minute_of_day=labels)
    assert grid[0, 1] == pytest.approx(2 * grid[0, 0])
    assert grid[6, 23] == 0.0
    assert grid.sum() == pytest.approx(1.0)


def test_spring_forward_hour_is_empty_and_the_eighth_day_is_left_out() -> None:
    # Day 0 skips 02:00-02:59 (23 h), so the week runs 60 minutes into an eighth local day.
    labels = np.concatenate([np.arange(120), np.arange(180, 1440), np.tile(np.arange(1440), 7)])[:10_080]
    grid = hour_of_week_map(np.full(560, 1 / 560), patch_size=18, local_minute_of_day=labels)
    assert grid[0, 2] == 0.0
    assert grid.sum() == pytest.approx(1.0)
    assert grid[6, 23] == pytest.approx(grid[3, 5])  # day 7 complete, nothing folded into it


def test_attention_received_is_the_mean_over_layers_heads_and_queries() -> None:
    rng = np.random.default_rng(0)
    layers = [rng.dirichlet(np.ones(10), size=(2, 10)) for _ in range(3)]  # (heads, queries, keys)
    received = attention_received(layers)
    np.testing.assert_allclose(received, np.mean([w.mean(axis=(0, 1)) for w in layers], axis=0))
    assert received.sum() == pytest.approx(1.0)


def test_malformed_attention_is_refused_with_the_field() -> None:
    with pytest.raises(ValidationError) as error:
        hour_of_week_map(np.ones(100), patch_size=18)
    assert error.value.field == "received"
    with pytest.raises(ValidationError):
        hour_of_week_map(-np.ones(560), patch_size=18)
    with pytest.raises(ValidationError):
        attention_received([])


def test_the_backend_map_matches_the_explicit_attention_weights(
    encoder_s: PATEncoder, active_week: np.ndarray
) -> None:
    import torch

    values = prepare_week(active_week).values[None]
    _, received = TorchBackend(encoder_s, Candidate("torch", "cpu", "fp32")).embed_with_attention(values)
    with torch.inference_mode():
        weights = encoder_s(torch.from_numpy(values), return_attention=True).attention
    expected = attention_received([w[0].numpy() for w in weights])
    np.testing.assert_allclose(received[0], expected, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_distinctive_burst_draws_the_attention_of_a_seeded_encoder(
    make_encoder: Callable[..., PATEncoder], active_week: np.ndarray, seed: int
) -> None:
    """What this shows, honestly: attention follows salient input. With freshly initialised
    weights the map is close to uniform (within a few per cent of 1/168 per hour), and an hour of
    extreme activity (day 3, 14:00) is where it tilts most; that is a property of dot-product
    attention on large inputs, not evidence of clinical meaning, which needs trained weights."""
    encoder = make_encoder("S", seed)
    burst = active_week.copy()
    burst[3 * 1440 + 14 * 60 : 3 * 1440 + 15 * 60] = 3_000
    backend = TorchBackend(encoder, Candidate("torch", "cpu", "fp32"))

    def grid(week: np.ndarray) -> np.ndarray:
        _, received = backend.embed_with_attention(prepare_week(week).values[None])
        return hour_of_week_map(received[0], patch_size=18)

    plain, with_burst = grid(active_week), grid(burst)
    assert np.all(with_burst >= 0) and with_burst.sum() == pytest.approx(1.0)
    assert not np.allclose(with_burst, 1 / 168, rtol=1e-3)
    assert np.unravel_index(with_burst.argmax(), (7, 24)) == (3, 14)
    assert with_burst[3, 14] > plain[3, 14]
