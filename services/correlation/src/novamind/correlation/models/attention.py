"""A bidirectional LSTM with attention over days and signals that explains a symptom prediction.

The model reads a window of ``W = window_days`` aligned daily biometric values (``S`` signals)
ending on day ``t`` and predicts the symptom on day ``t`` (the window's last day, which is the
day :class:`ModelExplanation` reports ``predicted_symptom`` for). Row ``r`` of a window (and of
its explanation) is day ``t - (W - 1 - r)``: rows are chronological, the last row is lag 0 and
row ``W - 1 - L`` is lag ``L`` (:func:`lag_of_row`). Only biometrics enter -- never the
symptom's own history -- so the explanation is about signals alone.

Architecture (``D = embed_dim``, ``H = hidden_dim``):

1. **Inputs.** Each value is standardised with the training cohort's per-signal mean and standard
   deviation (stored with the model). Three channels per day and signal: the standardised value,
   its deviation from the signal's observed mean in the window (removing the patient's level),
   and an observed mask. A missing value is 0 in both value channels with mask 0. Values are
   clipped to +-10 after standardisation.
2. **Per-signal embedding.** Signal ``s`` has its own affine map of the 3 channels to ``D``
   units followed by ``tanh``: ``h[d, s]``.
3. **Signal attention** (per day, softmax over signals)::

       a[d, s] = softmax_s( u . tanh(A h[d, s] + b) )
       token[d] = sum_s a[d, s] h[d, s]

4. **Bidirectional LSTM** over the ``W`` day tokens (one layer, ``H`` units per direction):
   ``o[d]`` of width ``2H``.
5. **Temporal attention** (softmax over days) on the LSTM output and the day's token, with a
   learned per-row (per-lag) bias ``p[d]``::

       g[d]     = [o[d], token[d]]
       beta[d]  = softmax_d( v . tanh(B g[d] + c) + p[d] )
       context  = sum_d beta[d] g[d]

6. **Head.** ``prediction = w . context + w0`` in standardised symptom units, de-standardised
   with the training cohort's symptom mean and standard deviation.

**Explanation.** The joint weight of day ``d`` and signal ``s`` is ``beta[d] * a[d, s]``: the
share of the temporal attention given to day ``d`` times the share of that day's token taken
from signal ``s``. Both softmaxes sum to 1, so the ``W x S`` matrix is non-negative and sums to
1 (it is renormalised once in float64 against rounding). Summed over days it is the signal
importance, summed over signals the day (lag) importance.

Training minimises the mean squared error of the standardised symptom on days where it is
observed, with Adam and a cosine learning-rate decay, over minibatches sampled with a seeded
numpy generator. Training is deterministic: the same data, configuration and seed (on the same
thread count) give byte-identical saved files -- weights in safetensors, everything else in one
JSON file with sorted keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

MODEL_NAME: Final = "bilstm-attention"
WEIGHTS_FILE: Final = "bilstm_attention.safetensors"
SPEC_FILE: Final = "bilstm_attention.json"
FORMAT_VERSION: Final = 1
#: Channels per signal and day: standardised value, deviation from the window mean, mask.
CHANNELS: Final = 3
_CLIP: Final = 10.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AttentionModelConfig:
    """Sizes and training schedule; the defaults train in well under a minute on one CPU thread
    for ~100 patients x 120 days (about 10,000 windows)."""

    window_days: int = 14
    embed_dim: int = 16
    hidden_dim: int = 16
    batch_size: int = 64
    steps: int = 600
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    gradient_clip: float = 1.0

    def __post_init__(self) -> None:
        for name in ("window_days", "embed_dim", "hidden_dim", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.learning_rate <= 0.0 or self.weight_decay < 0.0 or self.gradient_clip <= 0.0:
            raise ValueError("learning_rate and gradient_clip must be positive")


def lag_of_row(row: int, window_days: int) -> int:
    """Days between row ``row`` of a window and the window's last (predicted) day."""
    return window_days - 1 - row


class _Network(nn.Module):
    def __init__(self, signals: int, config: AttentionModelConfig) -> None:
        super().__init__()
        d, h, w = config.embed_dim, config.hidden_dim, config.window_days
        self.embed_weight = nn.Parameter(torch.randn(signals, CHANNELS, d) / math.sqrt(CHANNELS))
        self.embed_bias = nn.Parameter(torch.zeros(signals, d))
        self.signal_proj = nn.Linear(d, d)
        self.signal_score = nn.Linear(d, 1, bias=False)
        self.lstm = nn.LSTM(d, h, batch_first=True, bidirectional=True)
        self.day_proj = nn.Linear(2 * h + d, d)
        self.day_score = nn.Linear(d, 1, bias=False)
        self.row_bias = nn.Parameter(torch.zeros(w))
        self.head = nn.Linear(2 * h + d, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` [B, W, S, 3] -> prediction [B], day weights [B, W], signal weights [B, W, S]."""
        h = torch.tanh(torch.einsum("bwsc,scd->bwsd", x, self.embed_weight) + self.embed_bias)
        a = torch.softmax(self.signal_score(torch.tanh(self.signal_proj(h))).squeeze(-1), dim=-1)
        token = (a.unsqueeze(-1) * h).sum(dim=2)
        o, _ = self.lstm(token)
        g = torch.cat([o, token], dim=-1)
        score = self.day_score(torch.tanh(self.day_proj(g))).squeeze(-1) + self.row_bias
        beta = torch.softmax(score, dim=-1)
        context = (beta.unsqueeze(-1) * g).sum(dim=1)
        return self.head(context).squeeze(-1), beta, a


@dataclass(frozen=True)
class Standardisation:
    """Per-cohort statistics stored with the model."""

    signal_mean: tuple[float, ...]
    signal_sd: tuple[float, ...]
    symptom_mean: float
    symptom_sd: float


def _features(windows: FloatArray, stats: Standardisation) -> Tensor:
    """``[N, W, S]`` raw windows (NaN = missing) -> ``[N, W, S, 3]`` float32 inputs."""
    mask = ~np.isnan(windows)
    z = (windows - np.asarray(stats.signal_mean)) / np.asarray(stats.signal_sd)
    z = np.clip(np.where(mask, z, 0.0), -_CLIP, _CLIP)
    count = mask.sum(axis=1, keepdims=True)
    mean = z.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    deviation = np.where(mask, z - mean, 0.0)
    stacked = np.stack([z, deviation, mask.astype(np.float64)], axis=-1)
    return torch.from_numpy(stacked.astype(np.float32))


def make_windows(
    biometrics: FloatArray, symptom: FloatArray, window_days: int
) -> tuple[FloatArray, FloatArray]:
    """Cut every window whose last day has an observed symptom.

    ``biometrics`` [P, T, S] and ``symptom`` [P, T] (NaN = missing) -> windows [N, W, S] and the
    symptom on each window's last day [N], patient-major then chronological.
    """
    if biometrics.ndim != 3 or symptom.shape != biometrics.shape[:2]:
        raise ValueError("biometrics must be [patients, days, signals] and symptom [patients, days]")
    w = window_days
    windows: list[FloatArray] = []
    targets: list[float] = []
    for p in range(biometrics.shape[0]):
        for t in range(w - 1, biometrics.shape[1]):
            if not np.isnan(symptom[p, t]):
                windows.append(biometrics[p, t - w + 1 : t + 1])
                targets.append(float(symptom[p, t]))
    if not windows:
        raise ValueError("no window with an observed symptom on its last day")
    return np.stack(windows), np.asarray(targets)


class AttentionModel:
    """The trained network, its standardisation and names; see the module docstring."""

    def __init__(
        self,
        config: AttentionModelConfig,
        signal_names: Sequence[str],
        symptom_name: str,
        stats: Standardisation,
        network: _Network,
    ) -> None:
        self.config = config
        self.signal_names = tuple(signal_names)
        self.symptom_name = symptom_name
        self.stats = stats
        self._network = network.eval()

    # -- training --------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        biometrics: FloatArray,
        symptom: FloatArray,
        signal_names: Sequence[str],
        symptom_name: str,
        config: AttentionModelConfig | None = None,
        seed: int = 0,
    ) -> AttentionModel:
        """Train on a cohort: ``biometrics`` [P, T, S], ``symptom`` [P, T], NaN for missing."""
        cfg = config or AttentionModelConfig()
        if biometrics.shape[-1] != len(signal_names):
            raise ValueError("one signal name per biometric column is required")
        flat = biometrics.reshape(-1, biometrics.shape[-1])
        counts = (~np.isnan(flat)).sum(axis=0)
        if np.any(counts < 2) or np.sum(~np.isnan(symptom)) < 2:
            raise ValueError("every signal and the symptom need at least two observed values")
        sd = np.nanstd(flat, axis=0)
        stats = Standardisation(
            signal_mean=tuple(float(v) for v in np.nanmean(flat, axis=0)),
            signal_sd=tuple(float(v) if v > 0 else 1.0 for v in sd),
            symptom_mean=float(np.nanmean(symptom)),
            symptom_sd=float(np.nanstd(symptom)) or 1.0,
        )
        windows, targets = make_windows(biometrics, symptom, cfg.window_days)
        x = _features(windows, stats)
        y = torch.from_numpy(((targets - stats.symptom_mean) / stats.symptom_sd).astype(np.float32))

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        network = _Network(len(signal_names), cfg)
        optimiser = torch.optim.Adam(
            network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        network.train()
        for step in range(cfg.steps):
            lr = cfg.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * step / cfg.steps)))
            for group in optimiser.param_groups:
                group["lr"] = lr
            batch = torch.from_numpy(rng.integers(0, len(y), size=cfg.batch_size))
            prediction, _, _ = network(x[batch])
            loss = torch.mean((prediction - y[batch]) ** 2)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(network.parameters(), cfg.gradient_clip)
            optimiser.step()
        return cls(cfg, signal_names, symptom_name, stats, network)

    # -- inference -------------------------------------------------------------------------------

    def predict_batch(self, windows: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``[N, W, S]`` raw windows -> predictions [N] (symptom units) and weights [N, W, S]."""
        if windows.ndim != 3 or windows.shape[1:] != (self.config.window_days, len(self.signal_names)):
            raise ValueError(f"windows must be [n, {self.config.window_days}, {len(self.signal_names)}]")
        with torch.no_grad():
            prediction, beta, a = self._network(_features(windows, self.stats))
        joint = (beta.unsqueeze(-1) * a).double().numpy()
        joint = joint / joint.sum(axis=(1, 2), keepdims=True)
        values = prediction.double().numpy() * self.stats.symptom_sd + self.stats.symptom_mean
        return values, joint

    def predict_with_attention(self, window: FloatArray) -> tuple[float, FloatArray, tuple[str, ...]]:
        """One ``[W, S]`` window (rows chronological, last row = predicted day) -> the predicted
        symptom, the ``[W, S]`` explanation weights (non-negative, sum 1) and the signal names."""
        values, weights = self.predict_batch(window[None])
        return float(values[0]), weights[0], self.signal_names

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: Path) -> list[Path]:
        """Write the weights (safetensors) and the spec (JSON, sorted keys); return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        weights, spec = directory / WEIGHTS_FILE, directory / SPEC_FILE
        state = {k: v.detach().contiguous().clone() for k, v in self._network.state_dict().items()}
        save_file(state, str(weights))
        document: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model": MODEL_NAME,
            "config": asdict(self.config),
            "signal_names": list(self.signal_names),
            "symptom_name": self.symptom_name,
            "standardisation": asdict(self.stats),
        }
        spec.write_text(json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n")
        return [weights, spec]

    @classmethod
    def load(cls, directory: Path) -> AttentionModel:
        document = json.loads((directory / SPEC_FILE).read_text())
        if document.get("format_version") != FORMAT_VERSION or document.get("model") != MODEL_NAME:
            raise ValueError(f"{directory / SPEC_FILE} is not a {MODEL_NAME} v{FORMAT_VERSION} spec")
        config = AttentionModelConfig(**document["config"])
        raw = document["standardisation"]
        stats = Standardisation(
            signal_mean=tuple(raw["signal_mean"]),
            signal_sd=tuple(raw["signal_sd"]),
            symptom_mean=float(raw["symptom_mean"]),
            symptom_sd=float(raw["symptom_sd"]),
        )
        network = _Network(len(document["signal_names"]), config)
        network.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return cls(config, document["signal_names"], document["symptom_name"], stats, network)
