"""A synthetic biometric-symptom cohort with ONE planted coupling of known signal, lag and strength.

The attention model (:mod:`novamind.correlation.models.attention`) is trained and tested on this
cohort: the symptom depends on exactly one biometric signal at exactly one lag, so a model whose
explanation is honest must put its attention there. Pure numpy, deterministic under a seed.

Each patient ``i`` has ``days`` daily values of every signal in :data:`SIGNALS` (``k`` indexes
signals, ``N`` is a fresh standard normal, ``t`` runs from ``-burn_in_days`` -- a discarded
warm-up so day 0 is stationary -- to ``days - 1``). Parameters in ``monospace`` are
:class:`SyntheticCohortConfig` fields.

1. Biometric signals, each an AR(1) deviation around a per-patient mean::

       mean_ik ~ signal_mean_k + signal_between_sd_k * N          (drawn once per patient)
       e_ikt   = signal_persistence_k * e_ik(t-1)
                 + sqrt(1 - signal_persistence_k^2) * signal_sd_k * N
       x_ikt   = mean_ik + e_ikt

   so ``e`` has stationary standard deviation ``signal_sd_k`` and lag-1 autocorrelation
   ``signal_persistence_k``. The defaults (:data:`SIGNALS`) are total_sleep_time_minutes
   (420 +- 30 between patients, sd 45, persistence 0.3), steps (7000 +- 1500, sd 2000, 0.5),
   resting_heart_rate (62 +- 5, sd 3, 0.6), hrv_rmssd (45 +- 10, sd 8, 0.5) and two pure-noise
   signals noise_a and noise_b (0 +- 0, sd 1, 0.3 and 0.7) that nothing depends on.

2. The symptom (``symptom_name``, default mood_rating on a 0-10 scale, higher = better), driven
   by the *standardised* deviation of ONE planted signal ``k* = planted_signal`` at ONE lag
   ``L = planted_lag_days`` plus AR(1) noise::

       z_it  = e_ik*t / signal_sd_k*                            (standard normal)
       n_it  = symptom_noise_persistence * n_i(t-1)
               + sqrt(1 - symptom_noise_persistence^2) * symptom_noise_sd * N
       y_it  = symptom_mean + symptom_between_sd * N_i + planted_strength * z_i(t-L) + n_it

   (``N_i`` drawn once per patient). So one standard deviation more sleep raises mood by
   ``planted_strength`` points ``L`` days later and at no other lag; the other signals are
   independent of the symptom. The share of the symptom's within-patient variance explained by
   the coupling is ``planted_strength^2 / (planted_strength^2 + symptom_noise_sd^2)`` (0.8 with
   the defaults). The symptom is not rounded or clipped, so the coupling stays exactly linear.

3. Missing days: each biometric value is independently missing (NaN) with probability
   ``biometric_missing_rate``, each symptom value with probability ``symptom_missing_rate``.
   Missingness is drawn after the dynamics, so it never changes the values that are observed.

Day 0 is ``start_date`` for every patient. Randomness comes from one
``numpy.random.default_rng(seed)`` consumed in a fixed order, so the same configuration and seed
give identical arrays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SignalSpec:
    """One biometric signal's AR(1) parameters (see the module docstring, equation 1)."""

    name: str
    #: Cohort mean of the per-patient means.
    mean: float
    #: Between-patient standard deviation of the per-patient means.
    between_sd: float
    #: Stationary within-patient standard deviation of the daily deviation.
    sd: float
    #: Lag-1 autocorrelation of the daily deviation, in [0, 1).
    persistence: float


#: The default signals: four physiological ones and two pure-noise ones.
SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("total_sleep_time_minutes", 420.0, 30.0, 45.0, 0.3),
    SignalSpec("steps", 7000.0, 1500.0, 2000.0, 0.5),
    SignalSpec("resting_heart_rate", 62.0, 5.0, 3.0, 0.6),
    SignalSpec("hrv_rmssd", 45.0, 10.0, 8.0, 0.5),
    SignalSpec("noise_a", 0.0, 0.0, 1.0, 0.3),
    SignalSpec("noise_b", 0.0, 0.0, 1.0, 0.7),
)


@dataclass(frozen=True)
class SyntheticCohortConfig:
    """Cohort size, the signals, the planted coupling and missingness; defaults as documented."""

    patients: int = 100
    days: int = 120
    #: Discarded warm-up days before day 0.
    burn_in_days: int = 30
    signals: tuple[SignalSpec, ...] = field(default=SIGNALS)
    #: Name of the signal that drives the symptom.
    planted_signal: str = "total_sleep_time_minutes"
    #: Days between the driving signal and the symptom it moves (0 = same day).
    planted_lag_days: int = 2
    #: Symptom points per standard deviation of the planted signal's deviation.
    planted_strength: float = 1.0
    symptom_name: str = "mood_rating"
    symptom_mean: float = 6.0
    #: Between-patient standard deviation of the symptom's level.
    symptom_between_sd: float = 0.5
    #: Stationary standard deviation of the symptom's AR(1) noise.
    symptom_noise_sd: float = 0.5
    symptom_noise_persistence: float = 0.3
    biometric_missing_rate: float = 0.05
    symptom_missing_rate: float = 0.05
    start_date: dt.date = dt.date(2026, 1, 1)

    def __post_init__(self) -> None:
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise ValueError("signal names must be unique")
        if self.planted_signal not in names:
            raise ValueError(f"planted_signal {self.planted_signal!r} is not one of the signals")
        if self.patients < 1 or self.days < 1 or self.burn_in_days < 0:
            raise ValueError("patients and days must be positive, burn_in_days non-negative")
        if not 0 <= self.planted_lag_days <= self.burn_in_days:
            raise ValueError("planted_lag_days must be in [0, burn_in_days]")
        for spec in self.signals:
            if not 0.0 <= spec.persistence < 1.0 or spec.sd <= 0.0 or spec.between_sd < 0.0:
                raise ValueError(f"signal {spec.name!r}: need 0 <= persistence < 1, sd > 0")
        if not 0.0 <= self.symptom_noise_persistence < 1.0:
            raise ValueError("symptom_noise_persistence must be in [0, 1)")
        for rate in (self.biometric_missing_rate, self.symptom_missing_rate):
            if not 0.0 <= rate < 1.0:
                raise ValueError("missing rates must be in [0, 1)")

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals)

    @property
    def planted_index(self) -> int:
        """Column of the planted signal in :attr:`SyntheticCohort.biometrics`."""
        return self.signal_names.index(self.planted_signal)


@dataclass(frozen=True)
class SyntheticCohort:
    """The generated cohort. Arrays are patient-major; NaN marks a missing day."""

    config: SyntheticCohortConfig
    #: ``[patients, days, signals]`` observed biometrics, columns in ``config.signal_names``.
    biometrics: FloatArray
    #: ``[patients, days]`` observed symptom.
    symptom: FloatArray
    #: ``[patients, days]`` the noiseless planted part, ``planted_strength * z_{t-L}`` (no gaps).
    planted_effect: FloatArray

    @property
    def signal_names(self) -> tuple[str, ...]:
        return self.config.signal_names

    def dates(self) -> list[dt.date]:
        """Calendar date of each day index."""
        return [self.config.start_date + dt.timedelta(days=d) for d in range(self.config.days)]


def generate_cohort(config: SyntheticCohortConfig | None = None, seed: int = 0) -> SyntheticCohort:
    """Simulate the cohort of the module docstring; identical output for identical inputs."""
    cfg = config or SyntheticCohortConfig()
    rng = np.random.default_rng(seed)
    p, s = cfg.patients, len(cfg.signals)
    total = cfg.burn_in_days + cfg.days
    means = np.array([spec.mean for spec in cfg.signals])
    between = np.array([spec.between_sd for spec in cfg.signals])
    sds = np.array([spec.sd for spec in cfg.signals])
    phi = np.array([spec.persistence for spec in cfg.signals])

    patient_means = means + between * rng.standard_normal((p, s))
    symptom_level = cfg.symptom_mean + cfg.symptom_between_sd * rng.standard_normal(p)

    innovations = rng.standard_normal((p, total, s)) * (np.sqrt(1.0 - phi**2) * sds)
    deviation = np.empty((p, total, s))
    deviation[:, 0] = rng.standard_normal((p, s)) * sds  # start in the stationary distribution
    for t in range(1, total):
        deviation[:, t] = phi * deviation[:, t - 1] + innovations[:, t]

    rho = cfg.symptom_noise_persistence
    noise_innov = rng.standard_normal((p, total)) * (np.sqrt(1.0 - rho**2) * cfg.symptom_noise_sd)
    noise = np.empty((p, total))
    noise[:, 0] = rng.standard_normal(p) * cfg.symptom_noise_sd
    for t in range(1, total):
        noise[:, t] = rho * noise[:, t - 1] + noise_innov[:, t]

    k, lag = cfg.planted_index, cfg.planted_lag_days
    z = deviation[:, :, k] / sds[k]
    effect_full = np.zeros((p, total))
    effect_full[:, lag:] = cfg.planted_strength * z[:, : total - lag]
    symptom_full = symptom_level[:, None] + effect_full + noise

    keep = slice(cfg.burn_in_days, total)
    biometrics = patient_means[:, None, :] + deviation[:, keep]
    symptom = symptom_full[:, keep].copy()
    planted_effect = effect_full[:, keep].copy()

    biometrics[rng.random(biometrics.shape) < cfg.biometric_missing_rate] = np.nan
    symptom[rng.random(symptom.shape) < cfg.symptom_missing_rate] = np.nan
    return SyntheticCohort(cfg, biometrics, symptom, planted_effect)
