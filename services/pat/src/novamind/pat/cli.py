"""``novamind-pat``: the PAT service and its command-line tools.

    novamind-pat [serve]                     run the gRPC service (what the fleet runs)
    novamind-pat metrics FILE [--json | --fhir] [--plot OUT.png] [--format NAME]
    novamind-pat pretrain [--size S] [--steps N] [--data-dir DIR] [--out DIR] [--seed N]
    novamind-pat finetune --base DIR --labels TABLE --out DIR [--mode linear_probe|full] [--folds N]

``metrics`` reads any supported device file (format detected from its content), analyses it and
prints a table, the stable JSON document (``--json``) or a FHIR R4 Bundle (``--fhir``);
``--plot`` also draws the double-plotted actogram. Errors in the file are reported on stderr
with the file, line or field and what was expected, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from novamind.core.errors import NovamindError


def _table(document: dict[str, Any]) -> str:
    rec, rhythm, binar, sleep_ = (
        document["recording"],
        document["circadian"],
        document["circadian_binarized"],
        document["sleep"],
    )

    def window(w: dict[str, Any] | None, unit: str) -> str:
        return "n/a (shorter than a day)" if w is None else f"{w['value']:.3f} {unit} from {w['onset']}"

    def num(value: float | None, fmt: str = ".3f") -> str:
        return "n/a" if value is None else format(value, fmt)

    lines = [
        f"recording   {rec['start']} → {rec['end']}  ({rec['minutes'] / 1440:.1f} days, "
        f"{rec['epoch_seconds']:g} s epochs, {rec['format']})",
        "",
        "circadian rhythm           raw counts                     binarised (count > 4)",
        f"  IS                       {num(rhythm['IS']):<30} {num(binar['IS'])}",
        f"  IV                       {num(rhythm['IV']):<30} {num(binar['IV'])}",
        f"  RA                       {num(rhythm['RA']):<30} {num(binar['RA'])}",
        f"  L5                       {window(rhythm['L5'], 'counts/min'):<30} "
        f"{window(binar['L5'], 'active')}",
        f"  M10                      {window(rhythm['M10'], 'counts/min'):<30} "
        f"{window(binar['M10'], 'active')}",
        "",
        "sleep",
        f"  scored sleep             Cole-Kripke {num(sleep_['fraction_sleep']['cole_kripke'], '.1%')}, "
        f"Sadeh {num(sleep_['fraction_sleep']['sadeh'], '.1%')} of epochs",
        f"  sleep regularity index   {num(sleep_['sleep_regularity_index'], '.1f')}",
        f"  onset / midpoint SD      {num(sleep_['sleep_onset_sd_min'], '.0f')} / "
        f"{num(sleep_['sleep_midpoint_sd_min'], '.0f')} min",
        "",
        "  night (in bed)        TST min   SE %   SOL min  WASO min  awakenings",
    ]
    for night in sleep_["nights"]:
        lines.append(
            f"  {night['in_bed'][:16]:<20} {num(night['total_sleep_time_min'], '7.0f')} "
            f"{num(night['sleep_efficiency_pct'], '6.1f')} {num(night['sleep_onset_latency_min'], '8.0f')} "
            f"{num(night['waso_min'], '9.0f')} {night['awakenings']:>11}"
        )
    activity = document["activity"]
    lines += ["", f"activity    {activity['valid_days']} valid days of {len(activity['days'])}"]
    return "\n".join(lines)


def _metrics(args: argparse.Namespace) -> int:
    from novamind.pat.adapters.fhir_bundle import analysis_bundle
    from novamind.pat.analysis import analyse_recording, to_json
    from novamind.pat.readers import read_recording

    recording = read_recording(args.file, format=args.format)
    analysis = analyse_recording(recording)
    if args.plot is not None:
        from novamind.pat.adapters.actogram import render_actogram

        scoring = analysis.cole_kripke
        render_actogram(
            recording.activity,
            args.plot,
            sleep=scoring.astype(bool) if scoring is not None else None,
            non_wear=analysis.non_wear,
            title=f"{Path(args.file).name} — activity, scored sleep (Cole-Kripke) and non-wear",
        )
    if args.fhir:
        document = analysis_bundle(analysis, subject=args.subject, timezone=args.timezone)
        print(json.dumps(document, indent=2))
    elif args.json:
        print(json.dumps(to_json(analysis), indent=2))
    else:
        print(_table(to_json(analysis)))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from novamind.pat.config import ActigraphySettings
    from novamind.pat.training.pretrain import PretrainConfig, pretrain

    config = PretrainConfig(
        size=args.size,
        steps=args.steps,
        seed=args.seed,
        synthetic_recordings=args.synthetic_recordings,
    )
    out = args.out or ActigraphySettings().model_dir / f"pat-{args.size.lower()}-dev"
    manifest = pretrain(config, data_dir=args.data_dir, out_dir=out)
    quality = manifest.quality
    print(
        f"wrote {out} (sha256 {manifest.sha256[:12]}…): held-out masked MSE "
        f"{quality['held_out_masked_mse']:.4f} vs mean imputation "
        f"{quality['mean_imputation_masked_mse']:.4f} "
        f"({quality['improvement_over_baseline']:+.1%}) after {manifest.training['steps']} steps "
        f"in {manifest.training['seconds']:.0f} s"
    )
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from novamind.pat.training.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(mode=args.mode, folds=args.folds, epochs=args.epochs, seed=args.seed)
    manifest = finetune(config, base_dir=args.base, labels_path=args.labels, out_dir=args.out)
    quality, data = manifest["quality"], manifest["data"]
    folds = ", ".join(f"{auc:.3f}" for auc in quality["cv_auc"])
    print(
        f"wrote {args.out} (sha256 {manifest['sha256'][:12]}…): {config.mode} on {data['weeks']} weeks "
        f"(class 0/1: {data['class_balance']['0']}/{data['class_balance']['1']}); "
        f"{config.folds}-fold cross-validated ROC AUC {quality['cv_auc_mean']:.3f} ± "
        f"{quality['cv_auc_sd']:.3f} (folds: {folds}), split by {data['cv_grouped_by']}"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="novamind-pat", description="Novamind PAT actigraphy service and tools"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    metrics = commands.add_parser("metrics", help="sleep and circadian metrics of a device file")
    metrics.add_argument(
        "file", type=Path, help="AWD, Actiware CSV, AGD, MTN, generic CSV, Apple Health XML, OMH JSON"
    )
    metrics.add_argument("--format", help="override format detection (awd, actiware-csv, agd, mtn, ...)")
    output = metrics.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the stable JSON document")
    output.add_argument("--fhir", action="store_true", help="print a FHIR R4 Bundle of Observations")
    metrics.add_argument("--plot", type=Path, help="also draw the double-plotted actogram to this PNG")
    metrics.add_argument("--subject", default="Patient/unknown", help="FHIR subject reference (a pseudonym)")
    metrics.add_argument("--timezone", default="UTC", help="IANA zone of the device clock, for FHIR times")
    pretrain = commands.add_parser("pretrain", help="masked-autoencoder pretraining of a PAT artifact")
    pretrain.add_argument("--size", default="S", choices=["S", "M", "L", "H"])
    pretrain.add_argument("--steps", type=int, default=400)
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--synthetic-recordings", type=int, default=16)
    pretrain.add_argument("--data-dir", type=Path, help="device files whose weeks join the training data")
    pretrain.add_argument(
        "--out", type=Path, help="artifact directory (default: NOVAMIND_MODEL_DIR/pat-<size>-dev)"
    )
    finetune = commands.add_parser("finetune", help="fit a classification head on labelled weeks")
    finetune.add_argument("--base", type=Path, required=True, help="pretrained PAT artifact directory")
    finetune.add_argument(
        "--labels", type=Path, required=True, help="CSV/Parquet with week_file, label (0/1) [, subject]"
    )
    finetune.add_argument("--out", type=Path, required=True, help="head artifact directory to write")
    finetune.add_argument("--mode", default="linear_probe", choices=["linear_probe", "full"])
    finetune.add_argument("--folds", type=int, default=5)
    finetune.add_argument("--epochs", type=int, default=5, help="end-to-end epochs (--mode full)")
    finetune.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    handlers = {"metrics": _metrics, "pretrain": _pretrain, "finetune": _finetune}
    if args.command in handlers:
        try:
            raise SystemExit(handlers[args.command](args))
        except NovamindError as exc:
            print(f"novamind-pat: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    from novamind.core.service import run_service
    from novamind.pat.app import build_runtime

    run_service(build_runtime)
