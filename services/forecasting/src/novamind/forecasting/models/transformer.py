"""The multi-horizon quantile Transformer: an encoder-decoder over daily windows, global across patients.

One network is trained on windows cut from every training panel and forecasts any panel from any
origin, all horizon days in one pass. The design follows the Temporal Fusion Transformer (Lim et
al., 2021) where it matters for explanations and keeps the rest plain:

* **Inputs.** A window is the ``context_days`` days up to the origin (the encoder) and the
  ``horizon`` days after it (the decoder). Encoder variables per day: the target (normalised value
  and an observed mask), each past-only covariate (globally standardised value, its deviation from
  its own window mean, and a mask), each known-future covariate (value and mask) and the day of
  week. Decoder variables per horizon day: the known-future covariates and the day of week of the
  target day, plus a learned embedding of the horizon day. Missing values are 0 with mask 0; a
  history shorter than the context is left-padded with a padding token the attention ignores.
* **Per-window normalisation.** The target is centred and scaled by the mean and standard
  deviation of the observed target days in the window (falling back to the whole history, then
  to the training cohort's typical values), with the scale floored at ``scale_floor`` times the
  cohort's typical within-patient standard deviation. The same code therefore serves bounded
  questionnaire totals and unbounded daily counts in the hundreds; outputs are de-normalised.
  Static inputs tell the network where the target's bounds lie in normalised units and how much
  of the window is observed.
* **Variable selection.** Each variable is embedded on its own and a softmax over the variables,
  computed per time step from all of them, weighs them into one token (TFT's variable selection
  network). The encoder's weights averaged over the history are the forecast's ATTENTION
  importances (:meth:`QuantileTransformer.explain`).
* **Encoder-decoder.** Selected history tokens (plus a learned position embedding and the static
  context) pass a causal convolution over ``local_days`` days, then pre-norm Transformer encoder
  blocks (multi-head self-attention on PyTorch's fused ``scaled_dot_product_attention``; padding
  days are masked). Decoder queries, one per horizon day, are the selected known-future inputs
  plus a horizon embedding, the static context, the encoded origin day and a linear read of the
  last ``recent_days`` selected history tokens; pre-norm decoder blocks apply causal
  self-attention over horizon days and cross-attention to the encoded history. Causality means
  the forecast of day ``h`` reads known-future inputs up to ``origin + h`` only, and a shorter
  horizon is a prefix of a longer one.
* **Quantiles.** The head emits, per horizon day, an anchor (the level nearest the median) and
  softplus increments outwards from it, so quantiles never cross. Training minimises the pinball
  loss over the trained levels in normalised units, on observed target days only.

Training is deterministic: the same panels, configuration and ``FitContext.seed`` (on the same
device and thread count) give byte-identical saved files -- weights in safetensors, everything
else in one JSON file with sorted keys.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from novamind.core.errors import ValidationError
from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec
from novamind.forecasting.models.base import FitContext, Importance, ImportanceMethod

MEMBER_NAME: Final = "quantile-transformer"
WEIGHTS_FILE: Final = "quantile_transformer.safetensors"
SPEC_FILE: Final = "quantile_transformer.json"
FORMAT_VERSION: Final = 1

#: Channels per numeric variable (value, deviation or mask, mask or zero).
_CHANNELS: Final = 3
#: Day-of-week token of a padding day (0..6 are Monday..Sunday).
_PAD_DAY: Final = 7
#: Static inputs: has_lower, lower bound, has_upper, upper bound (normalised), observed share of
#: the window. Nothing derived from the target's values beyond its normalisation enters here, so
#: the target's history reaches the network only through variable selection (honest importances).
_STATIC: Final = 5
#: Normalised inputs are clipped to +-this so a floored scale cannot blow activations up.
_INPUT_CLIP: Final = 20.0

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# -- Configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes and training schedule; the defaults are the development artifact's.

    The defaults train in about a minute per target on two CPU cores for a cohort of ~200
    patients x 180 days (about 34,000 training windows; 800 steps of 64 see each ~1.5 times).
    """

    #: Days of history the encoder reads (shorter histories are left-padded).
    context_days: int = 56
    #: Width of every token.
    d_model: int = 32
    #: Attention heads (must divide d_model). Two heads of 16: on CPU the fused attention kernel's
    #: cost grows with the head count at these sizes (four heads of 8 make a step ~40% slower).
    heads: int = 2
    encoder_layers: int = 2
    decoder_layers: int = 2
    #: Hidden width of each layer's feed-forward block.
    feedforward: int = 64
    #: Width in days of the causal convolution applied to history tokens before attention.
    local_days: int = 3
    #: History days whose selected inputs feed the decoder queries directly (a short-term path).
    recent_days: int = 7
    #: Dropout on residual branches (off by default: short training on many windows does not overfit;
    #: the ``valid`` panels select the step instead).
    dropout: float = 0.0
    batch_size: int = 64
    #: Optimiser steps (minibatches).
    steps: int = 800
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    #: Linear warm-up steps before the cosine decay (to 10% of the learning rate).
    warmup_steps: int = 100
    #: Gradient norm clip.
    gradient_clip: float = 1.0
    #: Scale floor as a share of the training cohort's median within-patient target SD.
    scale_floor: float = 0.25
    #: Probability that a training window loses a past covariate entirely (drawn per window and
    #: covariate, as for a patient without a wearable), so forecasts without covariates stay sane.
    covariate_dropout: float = 0.1
    #: Validation (when ``valid`` panels are given): evaluate every this many steps ...
    eval_every: int = 100
    #: ... stop after this many evaluations without improvement (0: never stop early) ...
    patience: int = 5
    #: ... on at most this many validation windows (a seeded sample of all eligible ones).
    valid_windows: int = 1024
    #: Windows per forward pass in ``predict``.
    predict_batch_size: int = 1024

    def __post_init__(self) -> None:
        positive = (
            "context_days",
            "d_model",
            "heads",
            "encoder_layers",
            "decoder_layers",
            "feedforward",
            "local_days",
            "recent_days",
            "batch_size",
            "steps",
            "eval_every",
            "valid_windows",
            "predict_batch_size",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValidationError(f"{name} must be positive", field=f"transformer.{name}")
        if self.d_model % self.heads:
            raise ValidationError("heads must divide d_model", field="transformer.heads")
        if not 0.0 <= self.dropout < 1.0:
            raise ValidationError("dropout must be in [0, 1)", field="transformer.dropout")
        if not 0.0 <= self.covariate_dropout <= 1.0:
            raise ValidationError(
                "covariate_dropout must be in [0, 1]", field="transformer.covariate_dropout"
            )
        if self.learning_rate <= 0 or self.scale_floor <= 0:
            raise ValidationError(
                "learning_rate and scale_floor must be positive", field="transformer.learning_rate"
            )
        if self.warmup_steps < 0 or self.patience < 0 or self.weight_decay < 0:
            raise ValidationError(
                "warmup_steps, patience and weight_decay must not be negative", field="transformer"
            )


# -- Normalisation and windows -------------------------------------------------------------------


@dataclass(frozen=True)
class _Normaliser:
    """Cohort-level constants fixed at training time (saved with the model)."""

    #: Typical target level (median of patient means): location when a history has no observation.
    reference_location: float
    #: Typical within-patient target SD (median over patients): fallback scale and floor unit.
    reference_scale: float
    past_mean: tuple[float, ...]
    past_std: tuple[float, ...]
    future_mean: tuple[float, ...]
    future_std: tuple[float, ...]

    @classmethod
    def fit(cls, panels: Sequence[Panel], schema: CovariateSchema) -> _Normaliser:
        means: list[float] = []
        sds: list[float] = []
        for panel in panels:
            observed = panel.target[np.isfinite(panel.target)]
            if observed.size:
                means.append(float(observed.mean()))
            if observed.size >= 2:
                sds.append(float(observed.std()))
        location = float(np.median(means)) if means else 0.0
        positive = [s for s in sds if s > 0]
        scale = float(np.median(positive)) if positive else max(abs(location), 1.0)
        past = [_column_stats([p.past[:, j] for p in panels]) for j in range(len(schema.past))]
        future = [_column_stats([p.future[: p.length, j] for p in panels]) for j in range(len(schema.future))]
        return cls(
            reference_location=location,
            reference_scale=scale,
            past_mean=tuple(m for m, _ in past),
            past_std=tuple(s for _, s in past),
            future_mean=tuple(m for m, _ in future),
            future_std=tuple(s for _, s in future),
        )


def _column_stats(columns: list[FloatArray]) -> tuple[float, float]:
    """Mean and SD of one covariate over the cohort (0 and 1 when it is never observed)."""
    values = np.concatenate(columns) if columns else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    sd = float(values.std())
    return float(values.mean()), sd if sd > 1e-8 else 1.0


@dataclass(frozen=True)
class _Block:
    """Panels laid end to end on one row axis, each left-padded by the context and right-padded
    by the longest horizon, so that any window is one gather of consecutive rows."""

    target: FloatArray  # [R]
    past: FloatArray  # [R, P] standardised, NaN = missing
    future: FloatArray  # [R, F] standardised, NaN = missing
    dow: IntArray  # [R] 0..6, _PAD_DAY before day 0
    #: Expanding observed count / sum / sum of squares of the target within its panel.
    count: FloatArray
    total: FloatArray
    squares: FloatArray
    offsets: IntArray  # [n_panels] row of each panel's first (padding) row


@dataclass(frozen=True)
class _Batch:
    enc_num: Tensor  # [B, C, 1 + P + F, 3]
    enc_dow: Tensor  # [B, C] int64
    enc_pad: Tensor  # [B, C] bool, True on padding days
    dec_num: Tensor  # [B, H, F, 3]
    dec_dow: Tensor  # [B, H] int64
    static: Tensor  # [B, _STATIC]
    loc: FloatArray  # [B]
    scale: FloatArray  # [B]
    target: Tensor  # [B, H] normalised, 0 where missing
    observed: Tensor  # [B, H] float mask


class _Windows:
    """Builds model inputs for (panel, origin) pairs; training and inference share this code."""

    def __init__(
        self,
        spec: TargetSpec,
        schema: CovariateSchema,
        normaliser: _Normaliser,
        context_days: int,
        max_horizon: int,
        scale_floor: float,
    ) -> None:
        self.spec = spec
        self.schema = schema
        self.norm = normaliser
        self.context = context_days
        self.max_horizon = max_horizon
        self.floor = max(scale_floor * normaliser.reference_scale, 1e-12)
        self.past_mean = np.asarray(normaliser.past_mean, dtype=np.float64)
        self.past_std = np.asarray(normaliser.past_std, dtype=np.float64)
        self.future_mean = np.asarray(normaliser.future_mean, dtype=np.float64)
        self.future_std = np.asarray(normaliser.future_std, dtype=np.float64)

    def block(self, panels: Sequence[Panel]) -> _Block:
        c, h = self.context, self.max_horizon
        n_past, n_future = len(self.schema.past), len(self.schema.future)
        targets, pasts, futures, dows, offsets = [], [], [], [], []
        counts, totals, squares = [], [], []
        row = 0
        for panel in panels:
            t = panel.length
            rows = c + t + h
            target = np.full(rows, np.nan)
            target[c : c + t] = panel.target
            past = np.full((rows, n_past), np.nan)
            p_rows = min(panel.past.shape[0], t)
            past[c : c + p_rows] = panel.past[:p_rows]
            future = np.full((rows, n_future), np.nan)
            f_rows = min(panel.future.shape[0], t + h)
            future[c : c + f_rows] = panel.future[:f_rows]
            dow = np.full(rows, _PAD_DAY, dtype=np.int64)
            dow[c:] = panel.day_of_week(t + h)
            seen = np.isfinite(target)
            value = np.where(seen, target, 0.0)
            targets.append(target)
            pasts.append(past)
            futures.append(future)
            dows.append(dow)
            counts.append(np.cumsum(seen, dtype=np.float64))
            totals.append(np.cumsum(value))
            squares.append(np.cumsum(value * value))
            offsets.append(row)
            row += rows
        if not panels:
            empty = np.empty(0)
            return _Block(
                empty,
                np.empty((0, n_past)),
                np.empty((0, n_future)),
                np.empty(0, dtype=np.int64),
                empty,
                empty,
                empty,
                np.empty(0, dtype=np.int64),
            )
        past_all = (np.concatenate(pasts) - self.past_mean) / self.past_std
        future_all = (np.concatenate(futures) - self.future_mean) / self.future_std
        return _Block(
            target=np.concatenate(targets),
            past=np.clip(past_all, -_INPUT_CLIP, _INPUT_CLIP),
            future=np.clip(future_all, -_INPUT_CLIP, _INPUT_CLIP),
            dow=np.concatenate(dows),
            count=np.concatenate(counts),
            total=np.concatenate(totals),
            squares=np.concatenate(squares),
            offsets=np.asarray(offsets, dtype=np.int64),
        )

    def batch(
        self,
        block: _Block,
        panel_index: IntArray,
        origins: IntArray,
        horizon: int,
        device: torch.device,
        drop_past: BoolArray | None = None,
    ) -> _Batch:
        """Inputs for the windows; ``drop_past`` [B, P] blanks whole past covariates (training)."""
        c = self.context
        start = block.offsets[panel_index] + origins + 1  # row of day origin - c + 1
        rows = start[:, None] + np.arange(c + horizon)[None, :]
        history, ahead = rows[:, :c], rows[:, c:]
        origin_row = start + c - 1

        # Target: per-window location and scale from the observed history.
        y = block.target[history]
        seen = np.isfinite(y)
        n = seen.sum(axis=1).astype(np.float64)
        values = np.where(seen, y, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            loc = np.where(n > 0, values.sum(axis=1) / np.maximum(n, 1), np.nan)
            var = np.where(n > 0, (values * values).sum(axis=1) / np.maximum(n, 1) - loc**2, np.nan)
            full_n = block.count[origin_row]
            full_loc = block.total[origin_row] / np.maximum(full_n, 1)
            full_var = block.squares[origin_row] / np.maximum(full_n, 1) - full_loc**2
        use_full = (n == 0) & (full_n > 0)
        loc = np.where(use_full, full_loc, loc)
        var = np.where(use_full, full_var, var)
        none = np.isnan(loc)
        loc = np.where(none, self.norm.reference_location, loc)
        sd = np.sqrt(np.maximum(np.where(none, self.norm.reference_scale**2, var), 0.0))
        scale = np.maximum(sd, self.floor)
        z = np.clip((values - loc[:, None]) / scale[:, None], -_INPUT_CLIP, _INPUT_CLIP)
        z = np.where(seen, z, 0.0)

        b = rows.shape[0]
        n_past, n_future = len(self.schema.past), len(self.schema.future)
        enc = np.zeros((b, c, 1 + n_past + n_future, _CHANNELS), dtype=np.float64)
        enc[:, :, 0, 0] = z
        enc[:, :, 0, 1] = seen
        if n_past:
            past = block.past[history]  # [B, C, P]
            if drop_past is not None:
                past = np.where(drop_past[:, None, :], np.nan, past)
            p_seen = np.isfinite(past)
            p_val = np.where(p_seen, past, 0.0)
            p_n = p_seen.sum(axis=1, keepdims=True)
            p_mean = p_val.sum(axis=1, keepdims=True) / np.maximum(p_n, 1)
            enc[:, :, 1 : 1 + n_past, 0] = p_val
            enc[:, :, 1 : 1 + n_past, 1] = np.where(p_seen, p_val - p_mean, 0.0)
            enc[:, :, 1 : 1 + n_past, 2] = p_seen
        dec = np.zeros((b, horizon, n_future, _CHANNELS), dtype=np.float64)
        if n_future:
            for part, index in ((enc[:, :, 1 + n_past :], history), (dec, ahead)):
                f = block.future[index]
                f_seen = np.isfinite(f)
                part[..., 0] = np.where(f_seen, f, 0.0)
                part[..., 1] = f_seen

        static = np.zeros((b, _STATIC), dtype=np.float64)
        if self.spec.lower is not None:
            static[:, 0] = 1.0
            static[:, 1] = np.clip((self.spec.lower - loc) / scale, -10.0, 10.0) / 10.0
        if self.spec.upper is not None:
            static[:, 2] = 1.0
            static[:, 3] = np.clip((self.spec.upper - loc) / scale, -10.0, 10.0) / 10.0
        static[:, 4] = n / c

        y_ahead = block.target[ahead]
        observed = np.isfinite(y_ahead)
        y_norm = np.where(observed, (np.where(observed, y_ahead, 0.0) - loc[:, None]) / scale[:, None], 0.0)

        def tensor(array: npt.NDArray[Any], dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)

        return _Batch(
            enc_num=tensor(enc),
            enc_dow=tensor(block.dow[history], torch.int64),
            enc_pad=tensor(block.dow[history] == _PAD_DAY, torch.bool),
            dec_num=tensor(dec),
            dec_dow=tensor(block.dow[ahead], torch.int64),
            static=tensor(static),
            loc=loc,
            scale=scale,
            target=tensor(y_norm),
            observed=tensor(observed),
        )


def _eligible_origins(panels: Sequence[Panel], min_observed: int, horizon: int) -> tuple[IntArray, IntArray]:
    """Training windows: every origin with >= min_observed observed history days and at least one
    observed target day in the horizon."""
    index: list[IntArray] = []
    origins: list[IntArray] = []
    for p, panel in enumerate(panels):
        seen = np.isfinite(panel.target)
        t = seen.shape[0]
        if t < 2:
            continue
        history = np.cumsum(seen)
        padded = np.concatenate([np.cumsum(seen), np.full(horizon, history[-1])])
        ahead = padded[np.arange(t) + horizon] - history  # observed days in o+1..o+horizon
        ok = (history >= min_observed) & (ahead >= 1)
        ok[t - 1] = False
        chosen = np.flatnonzero(ok).astype(np.int64)
        index.append(np.full(chosen.shape[0], p, dtype=np.int64))
        origins.append(chosen)
    if not index:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(index), np.concatenate(origins)


# -- Network -------------------------------------------------------------------------------------


class _VariableSelection(nn.Module):
    """Per-variable embeddings weighed by a softmax computed from all of them (TFT's VSN)."""

    def __init__(self, numeric: int, d_model: int) -> None:
        super().__init__()
        self.numeric = numeric
        bound = 1.0 / math.sqrt(_CHANNELS)
        self.weight = nn.Parameter(torch.empty(max(numeric, 1), _CHANNELS, d_model).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(max(numeric, 1), d_model))
        self.day = nn.Embedding(_PAD_DAY + 1, d_model)
        variables = numeric + 1
        self.select = nn.Sequential(
            nn.Linear(variables * d_model, d_model), nn.ELU(), nn.Linear(d_model, variables)
        )

    def forward(self, numeric: Tensor, day: Tensor) -> tuple[Tensor, Tensor]:
        """numeric [B, T, V, 3], day [B, T] -> (tokens [B, T, d], weights [B, T, V + 1])."""
        parts = [self.day(day).unsqueeze(2)]
        if self.numeric:
            embedded = torch.einsum("btvc,vcd->btvd", numeric, self.weight) + self.bias
            parts.insert(0, embedded)
        variables = torch.cat(parts, dim=2)  # [B, T, V + 1, d]
        weights = torch.softmax(self.select(variables.flatten(2)), dim=-1)
        tokens = (weights.unsqueeze(-1) * variables).sum(dim=2)
        return tokens, weights


class _Attention(nn.Module):
    """Multi-head attention on PyTorch's fused kernel (``scaled_dot_product_attention``)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """x [B, L, d] attends to memory [B, S, d]; mask broadcasts to [B, heads, L, S], True = may attend."""
        b, length, d = x.shape
        q = self.query(x).view(b, length, self.heads, -1).transpose(1, 2)
        k, v = self.key_value(memory).view(b, memory.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out: Tensor = self.out(attended.transpose(1, 2).reshape(b, length, d))
        return out


class _FeedForward(nn.Sequential):
    def __init__(self, d_model: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model)
        )


class _EncoderBlock(nn.Module):
    """Pre-norm self-attention and feed-forward, each a residual with dropout."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.norm1 = nn.LayerNorm(d)
        self.attention = _Attention(d, config.heads)
        self.norm2 = nn.LayerNorm(d)
        self.feedforward = _FeedForward(d, config.feedforward, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.attention(h, h, mask))
        out: Tensor = x + self.dropout(self.feedforward(self.norm2(x)))
        return out


class _DecoderBlock(nn.Module):
    """Pre-norm causal self-attention over horizon days, cross-attention to the history, feed-forward."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.norm1 = nn.LayerNorm(d)
        self.self_attention = _Attention(d, config.heads)
        self.norm2 = nn.LayerNorm(d)
        self.cross_attention = _Attention(d, config.heads)
        self.norm3 = nn.LayerNorm(d)
        self.feedforward = _FeedForward(d, config.feedforward, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, memory: Tensor, causal: Tensor, memory_mask: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.self_attention(h, h, causal))
        x = x + self.dropout(self.cross_attention(self.norm2(x), memory, memory_mask))
        out: Tensor = x + self.dropout(self.feedforward(self.norm3(x)))
        return out


class _Network(nn.Module):
    """Variable selection -> Transformer encoder over the history -> decoder queries per horizon
    day -> monotone quantiles (normalised units)."""

    def __init__(
        self, config: TransformerConfig, n_past: int, n_future: int, max_horizon: int, levels: Sequence[float]
    ) -> None:
        super().__init__()
        d = config.d_model
        self.encoder_selection = _VariableSelection(1 + n_past + n_future, d)
        self.decoder_selection = _VariableSelection(n_future, d)
        self.position = nn.Parameter(torch.randn(config.context_days, d) * 0.02)
        self.horizon = nn.Parameter(torch.randn(max_horizon, d) * 0.02)
        self.static = nn.Linear(_STATIC, d)
        #: Causal convolution over days: each history token also sees the days just before it.
        self.local = nn.Conv1d(d, d, config.local_days)
        #: The origin day's encoded token, added to every decoder query.
        self.origin = nn.Linear(d, d)
        #: The selected inputs of the last ``recent_days`` history days, added to every decoder query.
        self.recent_days = min(config.recent_days, config.context_days)
        self.recent = nn.Linear(self.recent_days * d, d)
        self.encoder = nn.ModuleList(_EncoderBlock(config) for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(_DecoderBlock(config) for _ in range(config.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, len(levels))
        #: Index of the level nearest the median: the head's anchor.
        self.anchor = int(np.argmin(np.abs(np.asarray(levels) - 0.5)))

    def forward(self, batch: _Batch) -> tuple[Tensor, Tensor]:
        """-> (quantiles [B, H, Q] in normalised units, encoder selection weights [B, C, V])."""
        static = self.static(batch.static).unsqueeze(1)
        memory_mask = (~batch.enc_pad)[:, None, None, :]  # [B, 1, 1, C]
        enc, enc_weights = self.encoder_selection(batch.enc_num, batch.enc_dow)
        recent = self.recent(enc[:, -self.recent_days :].flatten(1)).unsqueeze(1)
        enc = enc + self.position + static
        local = F.pad(enc.transpose(1, 2), (self.local.kernel_size[0] - 1, 0))
        enc = enc + self.local(local).transpose(1, 2)
        for block in self.encoder:
            enc = block(enc, memory_mask)
        memory = self.encoder_norm(enc)
        horizon = batch.dec_dow.shape[1]
        dec, _ = self.decoder_selection(batch.dec_num, batch.dec_dow)
        dec = dec + self.horizon[:horizon] + static + self.origin(memory[:, -1:]) + recent
        causal = torch.ones(horizon, horizon, dtype=torch.bool, device=dec.device).tril()
        for layer in self.decoder:
            dec = layer(dec, memory, causal, memory_mask)
        raw = self.head(self.decoder_norm(dec))
        k = self.anchor
        anchor = raw[..., k : k + 1]
        up = anchor + F.softplus(raw[..., k + 1 :]).cumsum(-1)
        down = anchor - F.softplus(raw[..., :k]).flip(-1).cumsum(-1).flip(-1)
        return torch.cat([down, anchor, up], dim=-1), enc_weights


def _pinball_loss(quantiles: Tensor, target: Tensor, observed: Tensor, levels: Tensor) -> Tensor:
    """Mean pinball loss over observed (window, day) points and all levels."""
    diff = target.unsqueeze(-1) - quantiles
    loss = torch.maximum(levels * diff, (levels - 1.0) * diff).mean(-1)
    return (loss * observed).sum() / observed.sum().clamp_min(1.0)


# -- The member ----------------------------------------------------------------------------------


class QuantileTransformer:
    """A trained quantile Transformer (an ensemble :class:`~novamind.forecasting.models.base.Member`)."""

    name: str = MEMBER_NAME

    def __init__(
        self,
        network: _Network,
        config: TransformerConfig,
        spec: TargetSpec,
        schema: CovariateSchema,
        quantiles: tuple[float, ...],
        max_horizon: int,
        normaliser: _Normaliser,
        training: dict[str, Any],
        device: str = "cpu",
    ) -> None:
        self.config = config
        self.spec = spec
        self.schema = schema
        self.quantiles = quantiles
        self.max_horizon = max_horizon
        self.normaliser = normaliser
        #: What training did (steps run, windows, validation loss); saved with the model.
        self.training = training
        self.device = device
        self._network = network.to(_torch_device(device)).eval()
        self._windows = _Windows(
            spec, schema, normaliser, config.context_days, max_horizon, config.scale_floor
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        """The encoder's variables in selection order: target, past, known-future, day of week."""
        return (self.spec.name, *self.schema.past, *self.schema.future, "day_of_week")

    # -- Forecasting --

    def predict(self, panels: Sequence[Panel], origins: Sequence[int], horizon: int) -> FloatArray:
        """Quantiles [N, horizon, Q] (float64, non-decreasing along Q) for each (panel, origin)."""
        self._check_horizon(horizon)
        if len(panels) != len(origins):
            raise ValidationError("panels and origins differ in length", field="origins")
        levels = len(self.quantiles)
        if not panels:
            return np.empty((0, horizon, levels), dtype=np.float64)
        block, index, origin = self._prepare(panels, origins)
        result = np.empty((len(panels), horizon, levels), dtype=np.float64)
        size = self.config.predict_batch_size
        device = _torch_device(self.device)
        with torch.inference_mode():
            for lo in range(0, len(panels), size):
                hi = min(lo + size, len(panels))
                batch = self._windows.batch(block, index[lo:hi], origin[lo:hi], horizon, device)
                normalised, _ = self._network(batch)
                values = normalised.double().cpu().numpy()
                result[lo:hi] = batch.loc[:, None, None] + batch.scale[:, None, None] * values
        return np.sort(result, axis=-1)

    def explain(self, panel: Panel, origin: int, horizon: int) -> list[Importance]:
        """Variable-selection weight of each input, averaged over the history days of the window.

        Names: the target's own name, the covariate names and "day_of_week"; values sum to 1.
        """
        self._check_horizon(horizon)
        block, index, origins = self._prepare([panel], [origin])
        with torch.inference_mode():
            batch = self._windows.batch(block, index, origins, horizon, _torch_device(self.device))
            _, weights = self._network(batch)
            real = (~batch.enc_pad[0]).to(weights.dtype)
            mean = (weights[0] * real.unsqueeze(-1)).sum(0) / real.sum().clamp_min(1.0)
        values = mean.double().cpu().numpy()
        pairs = sorted(zip(self.input_names, values.tolist(), strict=True), key=lambda kv: (-kv[1], kv[0]))
        return [
            Importance(feature=name, value=float(value), method=ImportanceMethod.ATTENTION, model=self.name)
            for name, value in pairs
        ]

    def _check_horizon(self, horizon: int) -> None:
        if not 1 <= int(horizon) <= self.max_horizon:
            raise ValidationError(f"horizon must be between 1 and {self.max_horizon} days", field="horizon")

    def _prepare(self, panels: Sequence[Panel], origins: Sequence[int]) -> tuple[_Block, IntArray, IntArray]:
        """One block per distinct panel object, plus each request's panel index and origin."""
        distinct: dict[int, int] = {}
        unique: list[Panel] = []
        index = np.empty(len(panels), dtype=np.int64)
        for i, (panel, origin) in enumerate(zip(panels, origins, strict=True)):
            key = id(panel)
            if key not in distinct:
                _check_panel(panel, self.schema, f"panels[{i}]")
                distinct[key] = len(unique)
                unique.append(panel)
            index[i] = distinct[key]
            if not 0 <= int(origin) < panel.length:
                raise ValidationError("origin outside the panel's history", field=f"origins[{i}]")
        return self._windows.block(unique), index, np.asarray(origins, dtype=np.int64)

    # -- Persistence --

    def save(self, directory: Path) -> list[Path]:
        """Write the weights (safetensors) and the specification (sorted JSON) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = directory / WEIGHTS_FILE
        state = {k: v.detach().to("cpu").contiguous() for k, v in self._network.state_dict().items()}
        save_file(state, str(weights))
        document = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "config": asdict(self.config),
            "spec": asdict(self.spec),
            "schema": {"past": list(self.schema.past), "future": list(self.schema.future)},
            "quantiles": list(self.quantiles),
            "max_horizon": self.max_horizon,
            "normaliser": asdict(self.normaliser),
            "training": self.training,
        }
        spec = directory / SPEC_FILE
        spec.write_text(json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n")
        return [spec, weights]

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> QuantileTransformer:
        """Rebuild a saved model on ``device`` ("cpu" or "cuda")."""
        directory = Path(directory)
        document = json.loads((directory / SPEC_FILE).read_text())
        if document.get("format") != FORMAT_VERSION or document.get("name") != MEMBER_NAME:
            raise ValidationError("not a quantile-transformer artifact of a known format", field="directory")
        config = TransformerConfig(**document["config"])
        spec = TargetSpec(**document["spec"])
        schema = CovariateSchema(
            past=tuple(document["schema"]["past"]), future=tuple(document["schema"]["future"])
        )
        raw = document["normaliser"]
        normaliser = _Normaliser(
            reference_location=float(raw["reference_location"]),
            reference_scale=float(raw["reference_scale"]),
            **{
                k: tuple(float(x) for x in raw[k])
                for k in ("past_mean", "past_std", "future_mean", "future_std")
            },
        )
        quantiles = tuple(float(q) for q in document["quantiles"])
        max_horizon = int(document["max_horizon"])
        network = _Network(config, len(schema.past), len(schema.future), max_horizon, quantiles)
        network.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return cls(
            network, config, spec, schema, quantiles, max_horizon, normaliser, document["training"], device
        )


# -- Training ------------------------------------------------------------------------------------


def fit_transformer(
    train: Sequence[Panel], context: FitContext, config: TransformerConfig, valid: Sequence[Panel] = ()
) -> QuantileTransformer:
    """Train one global model on windows from ``train``; select the best step on ``valid`` if given.

    Minibatches of windows are drawn uniformly (with a numpy Generator seeded from
    ``context.seed``) from every eligible origin of every training panel. With ``valid`` panels the
    validation pinball loss is measured every ``eval_every`` steps, the best weights are kept and
    training stops after ``patience`` evaluations without improvement.
    """
    levels = tuple(float(q) for q in context.quantiles)
    if not levels or list(levels) != sorted(levels) or not all(0.0 < q < 1.0 for q in levels):
        raise ValidationError("quantiles must be ascending levels in (0, 1)", field="quantiles")
    if context.max_horizon < 1:
        raise ValidationError("max_horizon must be positive", field="max_horizon")
    for i, panel in enumerate(train):
        _check_panel(panel, context.schema, f"train[{i}]")
    for i, panel in enumerate(valid):
        _check_panel(panel, context.schema, f"valid[{i}]")
    horizon = context.max_horizon
    index, origins = _eligible_origins(train, context.min_observed_days, horizon)
    if index.size == 0:
        raise ValidationError("no training window has enough observed days", field="train")
    device = _torch_device(context.device)
    normaliser = _Normaliser.fit(train, context.schema)
    windows = _Windows(
        context.spec, context.schema, normaliser, config.context_days, horizon, config.scale_floor
    )
    block = windows.block(train)
    v_index, v_origins = _eligible_origins(valid, context.min_observed_days, horizon)
    v_rng = np.random.default_rng([context.seed, 1])
    if v_index.size > config.valid_windows:
        keep = np.sort(v_rng.choice(v_index.size, config.valid_windows, replace=False))
        v_index, v_origins = v_index[keep], v_origins[keep]
    v_block = windows.block(valid) if v_index.size else None
    rng = np.random.default_rng([context.seed, 0])
    n_past = len(context.schema.past)

    with _deterministic(device), torch.random.fork_rng(devices=_fork_devices(device)):
        torch.manual_seed(context.seed)
        network = _Network(config, n_past, len(context.schema.future), horizon, levels).to(device)
        level_tensor = torch.tensor(levels, dtype=torch.float32, device=device)
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, foreach=True
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(config))
        best_loss = math.inf
        best_state: dict[str, Tensor] | None = None
        best_step = 0
        stale = 0
        step = 0
        for step in range(1, config.steps + 1):
            network.train()
            pick = rng.integers(0, index.size, size=config.batch_size)
            drop = rng.random((config.batch_size, n_past)) < config.covariate_dropout if n_past else None
            batch = windows.batch(block, index[pick], origins[pick], horizon, device, drop)
            quantiles, _ = network(batch)
            loss = _pinball_loss(quantiles, batch.target, batch.observed, level_tensor)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(network.parameters(), config.gradient_clip)
            optimiser.step()
            schedule.step()
            if v_block is not None and (step % config.eval_every == 0 or step == config.steps):
                current = _evaluate(
                    network, windows, v_block, v_index, v_origins, horizon, device, level_tensor
                )
                if current < best_loss:
                    best_loss, best_step, stale = current, step, 0
                    best_state = copy.deepcopy(network.state_dict())
                else:
                    stale += 1
                    if config.patience and stale >= config.patience:
                        break
        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()
    training: dict[str, Any] = {
        "steps": step,
        "windows": int(index.size),
        "best_step": best_step if best_state is not None else step,
        "valid_windows": int(v_index.size),
        "valid_loss": best_loss if best_state is not None else None,
    }
    return QuantileTransformer(
        network.cpu(),
        config,
        context.spec,
        context.schema,
        levels,
        horizon,
        normaliser,
        training,
        device=context.device,
    )


def _evaluate(
    network: _Network,
    windows: _Windows,
    block: _Block,
    index: IntArray,
    origins: IntArray,
    horizon: int,
    device: torch.device,
    levels: Tensor,
) -> float:
    """Validation pinball loss (normalised units), weighted by observed points."""
    network.eval()
    total, points = 0.0, 0.0
    size = 512
    with torch.inference_mode():
        for lo in range(0, index.size, size):
            batch = windows.batch(block, index[lo : lo + size], origins[lo : lo + size], horizon, device)
            quantiles, _ = network(batch)
            n = float(batch.observed.sum())
            total += float(_pinball_loss(quantiles, batch.target, batch.observed, levels)) * n
            points += n
    return total / max(points, 1.0)


def _schedule(config: TransformerConfig) -> Any:
    """Linear warm-up, then cosine decay to 10% of the learning rate."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        span = max(config.steps - config.warmup_steps, 1)
        progress = min((step - config.warmup_steps) / span, 1.0)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _check_panel(panel: Panel, schema: CovariateSchema, field: str) -> None:
    if panel.target.ndim != 1:
        raise ValidationError("target must be one-dimensional", field=f"{field}.target")
    if panel.past.ndim != 2 or panel.past.shape[1] != len(schema.past):
        raise ValidationError("past covariates do not match the schema", field=f"{field}.past")
    if panel.future.ndim != 2 or panel.future.shape[1] != len(schema.future):
        raise ValidationError("known-future covariates do not match the schema", field=f"{field}.future")


def _torch_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValidationError("CUDA is not available on this machine", field="device")
    return torch.device(device)


def _fork_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the duration of training (the previous setting is restored)."""
    if device.type == "cuda":
        # cuBLAS needs a fixed workspace for reproducible matmuls; it is read when cuBLAS starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)
