"""Fine-tuning a pretrained PAT artifact into a week-level binary classifier (§4.2, "Fine-tuning").

Data: a labels table (CSV or Parquet) with one row per week:

* ``week_file``: path, relative to the table's folder, to a ``.npy`` of 10,080 minute counts, a
  ``.csv``/``.txt`` holding 10,080 counts one per line (an optional header line), or a device
  file any reader understands (its first complete week, imputed, is used);
* ``label``: 0 or 1;
* ``subject`` (optional): who wore the device. Cross-validation folds are then split by subject,
  never by week, because weeks of one person are near copies.

Weeks are standardised with the base artifact's own scaler (``standardisation.npz``), so the head
sees exactly what the encoder saw in pretraining.

Modes: ``linear_probe`` fits an L2-regularised logistic regression (full-batch L-BFGS, float64)
on the frozen 96-d week embeddings; ``full`` trains the encoder and the same head end to end
(AdamW). Quality is the ROC AUC of stratified k-fold cross-validation, per fold and mean ± SD;
the shipped head is then trained on every row. The artifact is a directory of ``head.pt`` and
``manifest.json`` (base artifact and sha256, mode, config, data table sha256, class balance,
cross-validated AUCs, sha256 of ``head.pt``).

Deterministic under ``seed``: fold assignment, minibatch order and dropout come from seeded
generators, the logistic regression starts at zero, and intra-op work runs on one thread.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import Tensor, nn

from novamind.core.errors import ModelNotReadyError, NovamindError, ValidationError
from novamind.pat.domain.preprocessing import sliding_weeks, standardise, to_minutes
from novamind.pat.model.pat import PATEncoder
from novamind.pat.model.weights import ArtifactManifest, read_artifact, sha256_of
from novamind.pat.readers import read_recording
from novamind.pat.training.pretrain import load_standardisation

HEAD_FILE: Final = "head.pt"
MANIFEST_FILE: Final = "manifest.json"
MINUTES_PER_WEEK: Final = 10_080
REQUIRED_COLUMNS: Final = ("week_file", "label")
_EMBED_BATCH: Final = 32

FinetuneMode = Literal["linear_probe", "full"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune. ``l2`` is the weight on ½‖w‖² added to the mean cross-entropy.

    ``probe_iterations`` bounds L-BFGS for the linear probe; ``epochs``, ``batch_size``,
    ``learning_rate`` and ``weight_decay`` drive the end-to-end (``full``) training.
    """

    mode: FinetuneMode = "linear_probe"
    folds: int = 5
    epochs: int = 5
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    l2: float = 1e-2
    probe_iterations: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("linear_probe", "full"):
            raise ValidationError(f"mode must be 'linear_probe' or 'full', got {self.mode!r}", field="mode")
        if self.folds < 2:
            raise ValidationError(f"folds must be at least 2, got {self.folds}", field="folds")
        if self.epochs < 1 or self.batch_size < 1 or self.probe_iterations < 1:
            raise ValidationError("epochs, batch_size and probe_iterations must be positive", field="config")


@dataclass(frozen=True)
class LabelledWeeks:
    """Weeks (n, 10080) counts per minute, their 0/1 labels and the group each CV split keeps whole."""

    weeks: FloatArray
    labels: IntArray
    groups: list[str]
    grouped_by_subject: bool


class LogisticHead(nn.Module):
    """Logistic regression on a week embedding: standardise features, then one linear unit."""

    feature_mean: Tensor
    feature_scale: Tensor

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(embed_dim))
        self.register_buffer("feature_scale", torch.ones(embed_dim))
        self.linear = nn.Linear(embed_dim, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def fit_feature_scaling(self, embeddings: Tensor) -> None:
        self.feature_mean.copy_(embeddings.mean(dim=0))
        self.feature_scale.copy_(embeddings.std(dim=0, unbiased=False).clamp_min(1e-6))

    def forward(self, embedding: Tensor) -> Tensor:
        """embedding (batch, embed) -> logit (batch,) of the positive class."""
        logits: Tensor = self.linear((embedding - self.feature_mean) / self.feature_scale)
        return logits.squeeze(-1)


@dataclass(frozen=True)
class HeadArtifact:
    """A verified fine-tuned head; ``encoder_state`` is set only for ``full`` fine-tunes."""

    head: LogisticHead
    encoder_state: dict[str, Tensor] | None
    manifest: dict[str, Any]

    def probabilities(self, encoder: PATEncoder, weeks: Tensor) -> FloatArray:
        """P(label = 1) per standardised week (batch, 10080), with the base encoder (or ours)."""
        if self.encoder_state is not None:
            encoder = PATEncoder(encoder.config)
            encoder.load_state_dict(self.encoder_state, strict=True)
        encoder.eval()
        self.head.eval()
        with torch.inference_mode():
            logits = self.head(_embed(encoder, weeks.float()).double())
        return torch.sigmoid(logits).numpy().astype(np.float64)


# -- Data -----------------------------------------------------------------------------------------


def read_labels_table(path: Path) -> pd.DataFrame:
    """The labels table at ``path`` (``.csv`` or ``.parquet``), its columns checked.

    Raises ValidationError when the file cannot be read, a required column is missing, or a
    label is not 0/1.
    """
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, dtype={"week_file": str, "subject": str})
    except ImportError as exc:
        raise ValidationError(f"cannot read Parquet here ({exc}); give a CSV", field=path.name) from exc
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read the labels table: {exc}", field=path.name) from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValidationError(
            f"labels table lacks column(s) {missing}; it needs {list(REQUIRED_COLUMNS)}", field=path.name
        )
    for row, value in enumerate(table["label"]):
        if not _is_binary(value):
            raise ValidationError(f"label must be 0 or 1, got {value!r}", field=f"row {row + 1} label")
    return table


def _is_binary(value: object) -> bool:
    try:
        return float(value) in (0.0, 1.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def read_week_file(path: Path) -> FloatArray:
    """10,080 minute counts from a ``.npy``, a one-column ``.csv``/``.txt``, or a device file.

    Raises ValidationError when the file is missing, unreadable, not one week long, holds
    non-finite counts, or (a device file) spans no complete week.
    """
    if not path.is_file():
        raise ValidationError(f"week file not found at {path}", field=path.name)
    try:
        values = _week_values(path)
    except NovamindError:
        raise
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read week file: {exc}", field=path.name) from exc
    if values.shape != (MINUTES_PER_WEEK,):
        raise ValidationError(
            f"expected {MINUTES_PER_WEEK} minute counts, got {values.size}", field=path.name
        )
    if not np.isfinite(values).all():
        raise ValidationError("week holds missing or non-finite counts (impute first)", field=path.name)
    return values


def _week_values(path: Path) -> FloatArray:
    if path.suffix.lower() == ".npy":
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64).ravel()
    if path.suffix.lower() in (".csv", ".txt"):
        plain = _plain_counts(path)
        if plain is not None:
            return plain
    weeks = sliding_weeks(to_minutes(read_recording(path)), align_to_local_midnight=False)
    week = next(iter(weeks), None)
    if week is None:
        raise ValidationError("the recording holds no complete week", field=path.name)
    return np.asarray(week.values, dtype=np.float64)


def _plain_counts(path: Path) -> FloatArray | None:
    """The counts of a one-column CSV of numbers, or None when it is something else (a device file)."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if lines and not _is_number(lines[0]):
        lines = lines[1:]
    if len(lines) != MINUTES_PER_WEEK or not all(_is_number(line) for line in lines):
        return None
    return np.array([float(line) for line in lines], dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_labelled_weeks(table_path: Path, folds: int) -> LabelledWeeks:
    """Every week the table names, with labels and CV groups (subjects, else rows).

    Raises ValidationError for a bad table (see :func:`read_labels_table`), an unreadable week
    file (the message names the table row), a single class, or fewer weeks or subjects of a
    class than folds.
    """
    table = read_labels_table(table_path)
    weeks = []
    for row, name in enumerate(table["week_file"]):
        try:
            weeks.append(read_week_file(table_path.parent / str(name)))
        except NovamindError as exc:
            raise ValidationError(
                f"row {row + 1} ({name}): {exc.message}", field=f"row {row + 1} week_file"
            ) from exc
    labels: IntArray = np.array(table["label"].astype(float), dtype=np.int64)
    by_subject = "subject" in table.columns
    groups = [str(s) for s in table["subject"]] if by_subject else [str(i) for i in range(len(table))]
    unit = "subjects" if by_subject else "weeks"
    for cls in (0, 1):
        members = {g for g, y in zip(groups, labels, strict=True) if y == cls}
        if not members:
            raise ValidationError(f"every label is {1 - cls}: a classifier needs both classes", field="label")
        if len(members) < folds:
            raise ValidationError(
                f"class {cls} has {len(members)} {unit}, fewer than the {folds} folds", field="label"
            )
    if len(weeks) < folds:
        raise ValidationError(f"{len(weeks)} weeks, fewer than the {folds} folds", field="label")
    return LabelledWeeks(np.stack(weeks), labels, groups, by_subject)


# -- Cross-validation and metrics -----------------------------------------------------------------


def stratified_group_folds(labels: IntArray, groups: Sequence[str], folds: int, seed: int) -> IntArray:
    """The fold (0..folds-1) of each row: whole groups per fold, each class spread across folds.

    A group's class is its majority label; groups of each class are shuffled (seeded) and dealt
    round-robin, so every fold holds both classes when each class has at least ``folds`` groups.
    """
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    group_label = {
        g: round(float(np.mean([y for gg, y in zip(groups, labels, strict=True) if gg == g]))) for g in names
    }
    fold_of: dict[str, int] = {}
    offset = 0
    for cls in (0, 1):
        members = [g for g in names if group_label[g] == cls]
        for i, index in enumerate(rng.permutation(len(members))):
            fold_of[members[index]] = (offset + i) % folds
        offset += len(members)
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """ROC AUC by the rank (Mann-Whitney U) formula, ties given their average rank.

    Raises ValidationError unless both classes are present.
    """
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValidationError("AUC needs both classes", field="label")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.arange(1, len(s) + 1)
    _, inverse = np.unique(s, return_inverse=True)
    mean_rank = np.bincount(inverse, weights=ranks) / np.bincount(inverse)
    ranks = mean_rank[inverse]
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- Training -------------------------------------------------------------------------------------


def _embed(encoder: PATEncoder, x: Tensor) -> Tensor:
    """(n, 10080) standardised weeks -> (n, embed), in batches."""
    parts = [encoder(x[i : i + _EMBED_BATCH]).embedding for i in range(0, len(x), _EMBED_BATCH)]
    return torch.cat(parts) if parts else torch.empty((0, encoder.config.embed_dim))


def _fit_probe(embeddings: Tensor, labels: Tensor, config: FinetuneConfig) -> LogisticHead:
    head = LogisticHead(embeddings.shape[1]).double()
    head.fit_feature_scaling(embeddings)
    optimiser = torch.optim.LBFGS(
        head.linear.parameters(), max_iter=config.probe_iterations, line_search_fn="strong_wolfe"
    )
    loss_fn = nn.BCEWithLogitsLoss()

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss: Tensor = loss_fn(head(embeddings), labels) + 0.5 * config.l2 * head.linear.weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    return head.eval()


def _fit_full(
    base: PATEncoder, x: Tensor, labels: Tensor, config: FinetuneConfig
) -> tuple[PATEncoder, LogisticHead]:
    encoder = PATEncoder(base.config)
    encoder.load_state_dict(base.state_dict(), strict=True)
    head = LogisticHead(base.config.embed_dim)
    encoder.eval()
    with torch.inference_mode():
        head.fit_feature_scaling(_embed(encoder, x))
    parameters = [*encoder.parameters(), *head.linear.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout inside the encoder blocks
    encoder.train()
    head.train()
    for _ in range(config.epochs):
        for batch in torch.split(torch.randperm(len(x), generator=generator), config.batch_size):
            loss: Tensor = loss_fn(head(encoder(x[batch]).embedding), labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    return encoder.eval(), head.eval()


def _scores(
    base: PATEncoder,
    x: Tensor,
    embeddings: Tensor | None,
    labels: Tensor,
    train: Tensor,
    test: Tensor,
    config: FinetuneConfig,
) -> FloatArray:
    """Fit on ``train`` rows, return P(label = 1) of ``test`` rows."""
    if embeddings is not None:
        head = _fit_probe(embeddings[train], labels[train].double(), config)
        with torch.inference_mode():
            return torch.sigmoid(head(embeddings[test])).numpy().astype(np.float64)
    encoder, full_head = _fit_full(base, x[train], labels[train].float(), config)
    with torch.inference_mode():
        return torch.sigmoid(full_head(_embed(encoder, x[test]))).numpy().astype(np.float64)


def finetune(config: FinetuneConfig, *, base_dir: Path, labels_path: Path, out_dir: Path) -> dict[str, Any]:
    """Cross-validate, then train on every row and write the head artifact; returns its manifest.

    Raises ModelNotReadyError when the base artifact fails verification, ValidationError for bad
    labelled data (see :func:`load_labelled_weeks`).
    """
    torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    model, base_manifest = read_artifact(base_dir)
    scaler = load_standardisation(base_dir, base_manifest)
    base = model if isinstance(model, PATEncoder) else model.encoder
    base.eval()
    data = load_labelled_weeks(labels_path, config.folds)
    x = torch.from_numpy(standardise(data.weeks, scaler).astype(np.float32))
    y = torch.from_numpy(data.labels)
    embeddings: Tensor | None = None
    if config.mode == "linear_probe":
        with torch.inference_mode():
            embeddings = _embed(base, x).double()

    fold_of = torch.from_numpy(stratified_group_folds(data.labels, data.groups, config.folds, config.seed))
    aucs = []
    for fold in range(config.folds):
        train, test = fold_of != fold, fold_of == fold
        aucs.append(roc_auc(data.labels[test.numpy()], _scores(base, x, embeddings, y, train, test, config)))

    if embeddings is not None:
        head = _fit_probe(embeddings, y.double(), config)
        state = {f"head.{k}": v for k, v in head.state_dict().items()}
    else:
        encoder, head = _fit_full(base, x, y.float(), config)
        state = {f"head.{k}": v for k, v in head.state_dict().items()}
        state |= {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / (HEAD_FILE + ".partial")
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, partial)
    partial.replace(out_dir / HEAD_FILE)

    manifest = _manifest(config, base_manifest, labels_path, data, aucs, sha256_of(out_dir / HEAD_FILE))
    partial = out_dir / (MANIFEST_FILE + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    partial.replace(out_dir / MANIFEST_FILE)
    return manifest


def _manifest(
    config: FinetuneConfig,
    base: ArtifactManifest,
    labels_path: Path,
    data: LabelledWeeks,
    aucs: list[float],
    head_sha256: str,
) -> dict[str, Any]:
    return {
        "name": f"{base.name}-{config.mode.replace('_', '-')}",
        "version": f"dev-seed{config.seed}",
        "architecture": "LogisticHead",
        "mode": config.mode,
        "base": {"name": base.name, "version": base.version, "sha256": base.sha256},
        "embed_dim": base.config.embed_dim,
        "config": dataclasses.asdict(config),
        "seed": config.seed,
        "data": {
            "table": labels_path.name,
            "table_sha256": sha256_of(labels_path),
            "weeks": len(data.labels),
            "class_balance": {"0": int((data.labels == 0).sum()), "1": int((data.labels == 1).sum())},
            "cv_grouped_by": "subject" if data.grouped_by_subject else "week",
        },
        "quality": {
            "cv_folds": config.folds,
            "cv_auc": [round(a, 4) for a in aucs],
            "cv_auc_mean": round(float(np.mean(aucs)), 4),
            "cv_auc_sd": round(float(np.std(aucs)), 4),
        },
        "head_file": HEAD_FILE,
        "sha256": head_sha256,
    }


def load_head(directory: Path) -> HeadArtifact:
    """A head artifact written by :func:`finetune`, ``head.pt`` checked against the manifest's sha256.

    Raises ModelNotReadyError (``field`` = the file's name) when the manifest is missing or
    malformed, or ``head.pt`` is missing, does not match, or does not fit.
    """
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelNotReadyError(f"head manifest not found at {manifest_path}", field=MANIFEST_FILE)
    try:
        manifest = json.loads(manifest_path.read_text())
        expected, embed_dim, mode = str(manifest["sha256"]), int(manifest["embed_dim"]), manifest["mode"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelNotReadyError(f"malformed head manifest: {exc}", field=MANIFEST_FILE) from exc
    path = directory / HEAD_FILE
    if not path.is_file():
        raise ModelNotReadyError(f"head weights not found at {path}", field=HEAD_FILE)
    actual = sha256_of(path)
    if actual != expected:
        raise ModelNotReadyError(f"sha256 {actual} does not match the manifest's {expected}", field=HEAD_FILE)
    try:
        state: dict[str, Tensor] = torch.load(path, map_location="cpu", weights_only=True)
        head = LogisticHead(embed_dim).double()
        head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")}, strict=True)
        encoder_state = {k[8:]: v for k, v in state.items() if k.startswith("encoder.")}
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelNotReadyError(f"head weights do not fit: {exc}", field=HEAD_FILE) from exc
    if mode == "full" and not encoder_state:
        raise ModelNotReadyError("a full fine-tune's head.pt holds no encoder weights", field=HEAD_FILE)
    return HeadArtifact(head.eval(), encoder_state or None, manifest)


__all__ = [
    "FinetuneConfig",
    "HeadArtifact",
    "LabelledWeeks",
    "LogisticHead",
    "finetune",
    "load_head",
    "load_labelled_weeks",
    "read_labels_table",
    "read_week_file",
    "roc_auc",
    "stratified_group_folds",
]
