"""``novamind-forecasting``: the forecasting service and its tools.

    novamind-forecasting [serve]                  run the gRPC service (what the fleet runs)
    novamind-forecasting train --out DIR [--quick] [--seed N] [--patients N] [--days N]
                               [--targets a,b] [--device auto|cpu|cuda]
    novamind-forecasting backtest --artifact DIR [--patients N] [--seed N] [--horizon N]
                               [--stride N] [--json]

``train`` generates the synthetic cohort (docs/forecasting-cohort.md), trains, stacks and
calibrates one ensemble per target, evaluates it on held-out synthetic patients and writes a
versioned artifact whose manifest records the data, seed, configuration, backtest metrics and
every file's sha256. The same seed gives the same ``artifact_sha256``.

``backtest`` runs rolling-origin evaluation of a trained artifact on a fresh held-out cohort:
the ensemble, each member and seasonal naive, with weighted quantile loss, MASE and the coverage
of each central interval.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from novamind.core.errors import NovamindError

if TYPE_CHECKING:
    from novamind.forecasting.artifact import TrainSpec


def _train(args: argparse.Namespace) -> int:
    from novamind.forecasting import artifact
    from novamind.forecasting.adapters.model_holder import resolve_device
    from novamind.forecasting.domain import synthetic

    spec = quick_spec() if args.quick else artifact.TrainSpec()
    cohort = spec.cohort
    if args.patients:
        cohort = replace(cohort, patients=args.patients)
    if args.days:
        cohort = replace(cohort, days=args.days)
    targets = tuple(t for t in (args.targets or ",".join(synthetic.TARGETS)).split(",") if t)
    unknown = [t for t in targets if t not in synthetic.TARGETS]
    if unknown:
        print(f"unknown target {unknown[0]!r}; known: {', '.join(synthetic.TARGETS)}", file=sys.stderr)
        return 2
    spec = replace(
        spec, cohort=cohort, targets=targets, seed=args.seed if args.seed is not None else spec.seed
    )
    if args.threads:
        spec = replace(spec, threads=args.threads)
    if args.max_horizon:
        spec = replace(spec, ensemble=replace(spec.ensemble, max_horizon=args.max_horizon))
    manifest = artifact.train(spec, Path(args.out), device=resolve_device(args.device))
    print(
        f"wrote {args.out}: artifact_sha256 {manifest['artifact_sha256']} ({manifest['training_seconds']} s)"
    )
    for target, scores in manifest["backtest"]["metrics"].items():
        for model, values in scores.items():
            print(
                f"  {target:<12} {model:<22} " + "  ".join(f"{k} {v:.3f}" for k, v in sorted(values.items()))
            )
    return 0


def quick_spec() -> TrainSpec:
    """A small cohort and quick models: an artifact in well under a minute (tests, CI fleets)."""
    from novamind.forecasting import artifact
    from novamind.forecasting.domain import synthetic
    from novamind.forecasting.models.ensemble import EnsembleConfig

    return artifact.TrainSpec(
        cohort=replace(synthetic.CohortConfig(), patients=40, days=120),
        test_patients=12,
        ensemble=EnsembleConfig.quick(),
    )


def _backtest(args: argparse.Namespace) -> int:
    from novamind.forecasting import artifact
    from novamind.forecasting.domain import synthetic

    loaded = artifact.load(Path(args.artifact))
    cohort_config = synthetic.CohortConfig(**_cohort_fields(loaded.manifest["data"]["cohort"]))
    cohort_config = replace(cohort_config, patients=args.patients)
    cohort = synthetic.generate_cohort(cohort_config, seed=args.seed)
    report: dict[str, dict[str, dict[str, float]]] = {}
    for target, ensemble in loaded.ensembles.items():
        panels = synthetic.panels(cohort, target)
        scores = artifact.evaluate(
            ensemble, panels, horizon=min(args.horizon, ensemble.max_horizon), stride=args.stride
        )
        report[target] = {s.model: s.summary() for s in scores}
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0
    print(
        f"rolling-origin backtest: {args.patients} new synthetic patients, "
        f"horizon {args.horizon}, every {args.stride} days"
    )
    for target, scores in report.items():
        print(f"\n{target}")
        print(f"  {'model':<22} {'WQL':>7} {'MASE':>7} {'cov80':>7} {'cov50':>7}")
        for model, values in scores.items():
            cells = [values.get(k, float("nan")) for k in ("wql", "mase", "coverage_80", "coverage_50")]
            print(f"  {model:<22} " + " ".join(f"{v:>7.3f}" for v in cells))
    return 0


def _cohort_fields(data: dict[str, object]) -> dict[str, object]:
    """A manifest's cohort parameters as ``CohortConfig`` keyword arguments (JSON types restored)."""
    import datetime as dt
    from dataclasses import fields

    from novamind.forecasting.domain import synthetic

    defaults = synthetic.CohortConfig()
    out: dict[str, object] = {}
    for f in fields(synthetic.CohortConfig):
        if f.name not in data:
            continue
        value, default = data[f.name], getattr(defaults, f.name)
        if isinstance(default, dt.date) and isinstance(value, str):
            value = dt.date.fromisoformat(value)
        elif isinstance(value, list):
            value = tuple(value)
        out[f.name] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="novamind-forecasting", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    train = commands.add_parser("train", help="train a versioned artifact on the synthetic cohort")
    train.add_argument("--out", required=True, help="artifact directory to write")
    train.add_argument("--quick", action="store_true", help="small cohort and models (under a minute)")
    train.add_argument("--seed", type=int, help="master seed (default 7)")
    train.add_argument("--patients", type=int, help="training patients")
    train.add_argument("--days", type=int, help="days per patient")
    train.add_argument("--targets", help="comma-separated targets (default: all)")
    train.add_argument("--max-horizon", type=int, help="longest horizon in days (default 30)")
    train.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    train.add_argument("--threads", type=int, help="PyTorch CPU threads (default 1; the hash depends on it)")
    backtest = commands.add_parser("backtest", help="rolling-origin evaluation on new synthetic patients")
    backtest.add_argument("--artifact", required=True)
    backtest.add_argument("--patients", type=int, default=40)
    backtest.add_argument("--seed", type=int, default=20_261_123)
    backtest.add_argument("--horizon", type=int, default=14)
    backtest.add_argument("--stride", type=int, default=7)
    backtest.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        from novamind.core.service import run_service
        from novamind.forecasting.app import build_runtime

        run_service(build_runtime)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        code = _train(args) if args.command == "train" else _backtest(args)
    except NovamindError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
