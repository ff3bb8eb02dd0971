"""A synthetic patient cohort with planted dynamics, and its oracle forecast.

The development forecasting artifact is trained and benchmarked on this cohort: every mechanism
a forecaster should learn is planted with a known size, and :func:`oracle_quantiles` gives the
best forecast any model could make (the generator's own conditional distribution), so a
benchmark can say how far a model is from the noise floor. Everything is pure numpy and
deterministic under a seed.

Each patient has a latent daily depressive *severity* ``s_t`` on the PHQ-9 scale, a two-state
relapse regime ``r_t``, a true nightly sleep duration, a slow anxiety component ``z_t`` and a
known antidepressant schedule; the questionnaires are noisy, rounded, clipped readouts of the
latent state, and the wearable's covariates are noisy correlates of it. Day ``t`` runs from
``-burn_in_days`` (a warm-up that is discarded, so day 0 starts near the stationary state) to
``days - 1``; the medication schedule is known up to ``days - 1 + future_days``.

Dynamics, each day ``t`` (``w_t`` = 1 on Saturday and Sunday, else 0; ``N`` a fresh standard
normal; parameters in ``monospace`` are :class:`CohortConfig` fields, subscript ``i`` marks a
per-patient trait drawn once, see below):

1. Relapse regime (a Markov chain; ``r = 1`` is a relapse)::

       P(r_t = 1 | r_{t-1} = 0) = relapse_rate
       P(r_t = 0 | r_{t-1} = 1) = 1 / relapse_mean_days

2. Sleep (true total sleep time, minutes): an AR(1) deviation plus the weekend lie-in and the
   relapse insomnia, clipped to [180, 720]::

       e_t     = sleep_persistence * e_{t-1} + sqrt(1 - sleep_persistence^2) * sleep_sd_i * N
       sleep_t = clip(sleep_base_i + weekend_sleep_minutes * w_t
                      - relapse_sleep_loss_minutes * r_t + e_t, 180, 720)
       d_t     = (sleep_t - sleep_base_i) / 60          (sleep deviation, hours)

3. Severity: mean reversion to a moving target, driven by the sleep deviation ``L =
   sleep_lag_days`` days earlier::

       mu_t = max(0, baseline_i + relapse_size * r_t - medication_i(t))
       s_t  = mu_t + severity_persistence * (s_{t-1} - mu_t) - sleep_gain_i * d_{t-L}
              + severity_noise_sd * N

   So a night of one hour less sleep raises severity by ``sleep_gain_i`` points two days later
   (then decays at ``severity_persistence`` per day); a relapse moves the target up by
   ``relapse_size`` and the severity follows within one to two weeks.

4. Antidepressant response (gamma(2) ramp: flat at the start, most of the effect after 2-6
   weeks; ``k = t - medication_start_i`` days on treatment)::

       medication_i(t) = response_i * (1 - (1 + k / ramp) * exp(-k / ramp))   for k >= 0, else 0

   with ``ramp = medication_ramp_days``. The schedule ``antidepressant_active`` (1 from the
   start day on, else 0) is the known-future covariate.

5. Anxiety component (AR(1))::

       z_t = anxiety_persistence * z_{t-1} + sqrt(1 - anxiety_persistence^2) * anxiety_sd * N

Readouts (the targets) of the *perceived* severity ``p_t = s_t - weekend_effect * w_t``; each
has a fresh measurement error, is rounded to the nearest integer (``numpy.rint``) and clipped to
its range::

    phq9_total  = clip(rint(p_t + phq9_noise_sd_i * N), 0, 27)
    gad7_total  = clip(rint(gad7_slope * p_t + gad7_offset_i + z_t + gad7_noise_sd_i * N), 0, 21)
    mood_rating = clip(rint(mood_intercept + mood_offset_i - mood_slope * p_t
                            + mood_noise_sd_i * N), 0, 10)

:meth:`SyntheticPatient.readout_mean` gives the noiseless, unrounded readouts.

Wearable covariates (past-only; ``u_t = s_t - baseline_i``, ``m_t`` its mean over days
``t-6..t``)::

    total_sleep_time_minutes = rint(sleep_t + sleep_measurement_sd_minutes * N)
    sleep_efficiency         = clip(efficiency_base_i - efficiency_severity_slope * u_t
                                    + efficiency_noise_sd * N, 50, 99.5), 1 decimal
    steps                    = rint(steps_base_i * exp(-steps_severity_slope * u_t
                                                       + steps_noise_sd * N))
    resting_heart_rate       = rint(heart_rate_base_i + heart_rate_severity_slope * u_t
                                    + heart_rate_noise_sd * N)
    pat_embedding_shift      = embedding_shift_slope * m_t + embedding_shift_noise_sd * N

``pat_embedding_shift`` stands for the signed displacement of the week's PAT embedding from the
patient's enrolment reference along the direction that tracks severity (embedding units): a
slowly varying, noisy summary. A patient without a wearable (share ``no_wearable_share``) has
every past covariate NaN on every day; a patient with one misses all of them on a day with
probability ``wear_missing_probability``.

Missing target days: a day is answered when the patient is not in a dropout run and answers
(probability ``adherence_i``); a dropout run starts on a day with probability
``dropout_start_probability`` and lasts ``dropout_mean_days`` on average (geometric); each
answered day's questionnaire is then skipped with probability ``skip_probability``,
independently per target. So the expected observed share is about ``adherence_mean * (1 -
skip_probability) / (1 + dropout_start_probability * dropout_mean_days)``.

Per-patient traits (:class:`PatientTraits`)::

    baseline_i          ~ clip(Normal(baseline_mean, baseline_sd), baseline_min, baseline_max)
    sleep_base_i        ~ clip(Normal(sleep_mean_minutes, sleep_baseline_sd_minutes), 300, 540)
    sleep_sd_i          = sleep_day_sd_minutes * LogNormal(0, sleep_sd_heterogeneity)
    sleep_gain_i        = sleep_gain * LogNormal(0, sleep_gain_heterogeneity)
    <target>_noise_sd_i = <target>_noise_sd * LogNormal(0, noise_heterogeneity)  (one factor)
    gad7_offset_i       ~ Normal(0, gad7_offset_sd);  mood_offset_i ~ Normal(0, mood_offset_sd)
    adherence_i         ~ Beta(adherence_mean * c, (1 - adherence_mean) * c),
                          c = adherence_concentration
    medication_start_i  : with probability medication_share, uniform on
                          [medication_earliest_start, days + future_days - 1], else none
    response_i          ~ max(0, Normal(medication_effect, medication_effect_sd))
    efficiency_base_i ~ clip(Normal(87, 4), 70, 96); steps_base_i ~ LogNormal(ln 6500, 0.45);
    heart_rate_base_i ~ clip(Normal(66, 7), 48, 95); has_wearable_i ~ Bernoulli(1 - no_wearable_share)

Start dates are uniform over ``start_spread_days + 1`` days from ``first_start`` (so weekdays
vary), keys are ``syn-0001``, ``syn-0002``, ...

The oracle (:func:`oracle_quantiles`) restarts these dynamics from the *true* latent state at
the origin (regime, severity, sleep deviation state and the last ``L`` sleep deviations,
anxiety) with the patient's traits and medication schedule, draws ``n_samples`` continuations
with fresh process and measurement noise, rounds and clips them like the generator, and takes
empirical quantiles. It is the noise floor: given that state (and the traits and schedule) the
future is independent of the past observations (Markov dynamics, independent measurement
noise), so no forecast computed from the observations has a lower expected pinball loss than
the true conditional quantiles the oracle estimates. Its remaining loss is the irreducible
noise (relapses yet to start, process noise, measurement error, rounding). Scores are integers,
so a correct quantile ``q`` of level ``a`` has ``P(y < q) <= a <= P(y <= q)``: an 80 % interval
with its endpoints counted covers more than 80 % of outcomes (about 87-91 % by default).

Every parameter, with its default and meaning, is a field of :class:`CohortConfig`;
``docs/forecasting-cohort.md`` mirrors this docstring with a table of them.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt

from novamind.core.errors import ValidationError
from novamind.forecasting.domain.series import CovariateSchema, FloatArray, Panel, TargetSpec

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: The three daily scores the cohort provides (unit "{score}", integer, weekly season).
TARGETS: Final[dict[str, TargetSpec]] = {
    "phq9_total": TargetSpec("phq9_total", "{score}", lower=0.0, upper=27.0, integer=True, season=7),
    "gad7_total": TargetSpec("gad7_total", "{score}", lower=0.0, upper=21.0, integer=True, season=7),
    "mood_rating": TargetSpec("mood_rating", "{score}", lower=0.0, upper=10.0, integer=True, season=7),
}

#: Covariate columns of every synthetic panel.
SCHEMA: Final = CovariateSchema(
    past=(
        "total_sleep_time_minutes",
        "sleep_efficiency",
        "steps",
        "resting_heart_rate",
        "pat_embedding_shift",
    ),
    future=("antidepressant_active",),
)

#: Key of :attr:`Panel.extra` under which :func:`panels` keeps the :class:`SyntheticPatient`.
EXTRA_KEY: Final = "synthetic_patient"

#: Bounds of the true nightly sleep (minutes).
SLEEP_BOUNDS: Final = (180.0, 720.0)
#: Bounds of a patient's habitual sleep (minutes).
SLEEP_BASE_BOUNDS: Final = (300.0, 540.0)
#: Sleep efficiency: patient baseline mean, SD and bounds; daily bounds (percent).
EFFICIENCY_BASE: Final = (87.0, 4.0, 70.0, 96.0)
EFFICIENCY_BOUNDS: Final = (50.0, 99.5)
#: Daily steps: median and log-SD of the patient baseline.
STEPS_BASE: Final = (6500.0, 0.45)
#: Resting heart rate: patient baseline mean, SD and bounds (beats per minute).
HEART_RATE_BASE: Final = (66.0, 7.0, 48.0, 95.0)
#: Days averaged by ``pat_embedding_shift`` (a week, like the PAT model's input).
EMBEDDING_WINDOW_DAYS: Final = 7


@dataclass(frozen=True)
class CohortConfig:
    """Size and planted dynamics of a synthetic cohort (see the module docstring's equations)."""

    # --- size and calendar
    #: Number of patients.
    patients: int = 300
    #: Observed days per patient (target and past covariates).
    days: int = 180
    #: Days the medication schedule extends past the observed days (known-future inputs).
    future_days: int = 30
    #: Discarded warm-up days simulated before day 0.
    burn_in_days: int = 60
    #: Earliest start date; starts are uniform over ``start_spread_days + 1`` days from it.
    first_start: dt.date = dt.date(2024, 1, 1)
    start_spread_days: int = 364

    # --- latent severity (PHQ-9 points)
    #: Mean and SD of the patients' baseline severity, and its clip range.
    baseline_mean: float = 13.0
    baseline_sd: float = 4.5
    baseline_min: float = 2.0
    baseline_max: float = 24.0
    #: Daily AR coefficient of the severity around its target (mean reversion 1 - this).
    severity_persistence: float = 0.9
    #: SD of the daily severity innovation (points).
    severity_noise_sd: float = 0.8

    # --- relapses
    #: Daily probability that a relapse starts (outside a relapse).
    relapse_rate: float = 1.0 / 150.0
    #: Mean length of a relapse (days; geometric).
    relapse_mean_days: float = 30.0
    #: Rise of the severity target during a relapse (points).
    relapse_size: float = 6.0
    #: Sleep lost per night during a relapse (minutes).
    relapse_sleep_loss_minutes: float = 40.0

    # --- sleep and its coupling to severity
    #: Mean and SD of the patients' habitual sleep (minutes).
    sleep_mean_minutes: float = 420.0
    sleep_baseline_sd_minutes: float = 45.0
    #: Median day-to-day SD of a patient's sleep (minutes) and its log-SD across patients.
    sleep_day_sd_minutes: float = 55.0
    sleep_sd_heterogeneity: float = 0.25
    #: AR coefficient of the nightly sleep deviation.
    sleep_persistence: float = 0.5
    #: Extra sleep on Saturday and Sunday (minutes).
    weekend_sleep_minutes: float = 35.0
    #: SD of the wearable's error on total sleep time (minutes).
    sleep_measurement_sd_minutes: float = 15.0
    #: Days from a night's sleep to its effect on severity.
    sleep_lag_days: int = 2
    #: Median severity rise per hour of sleep below habitual (points), log-SD across patients.
    sleep_gain: float = 0.6
    sleep_gain_heterogeneity: float = 0.3

    # --- antidepressant
    #: Share of patients with an antidepressant start (within or before the window).
    medication_share: float = 0.6
    #: Earliest start day (negative: already on treatment at day 0).
    medication_earliest_start: int = -28
    #: Mean and SD of the full response (points of severity removed).
    medication_effect: float = 5.0
    medication_effect_sd: float = 2.0
    #: Scale of the gamma(2) response ramp (days); the mean time to effect is twice this.
    medication_ramp_days: float = 10.0

    # --- weekend
    #: Perceived severity is this much lower on Saturday and Sunday (points).
    weekend_effect: float = 1.0

    # --- readouts (targets)
    #: Median measurement-noise SDs of the readouts (their own units), before rounding.
    phq9_noise_sd: float = 1.5
    gad7_noise_sd: float = 1.2
    mood_noise_sd: float = 0.7
    #: Log-SD of the per-patient factor on all three measurement-noise SDs.
    noise_heterogeneity: float = 0.25
    #: GAD-7 points per PHQ-9 point, SD of the per-patient GAD-7 offset.
    gad7_slope: float = 0.7
    gad7_offset_sd: float = 2.5
    #: Stationary SD and AR coefficient of the anxiety component (GAD-7 points).
    anxiety_sd: float = 1.5
    anxiety_persistence: float = 0.9
    #: Mood rating at zero severity, mood points per PHQ-9 point, SD of the per-patient offset.
    mood_intercept: float = 9.0
    mood_slope: float = 0.33
    mood_offset_sd: float = 0.6

    # --- wearable covariates
    #: Share of patients without a wearable (all past covariates NaN).
    no_wearable_share: float = 0.2
    #: Daily probability that a wearer's covariates are all missing.
    wear_missing_probability: float = 0.1
    #: Sleep-efficiency drop per severity point above baseline (percent) and its noise SD.
    efficiency_severity_slope: float = 0.4
    efficiency_noise_sd: float = 3.0
    #: Relative step-count drop per severity point above baseline, and log-SD of the noise.
    steps_severity_slope: float = 0.04
    steps_noise_sd: float = 0.35
    #: Resting heart rate rise per severity point above baseline (bpm) and its noise SD.
    heart_rate_severity_slope: float = 0.3
    heart_rate_noise_sd: float = 2.0
    #: PAT embedding shift per point of the 7-day mean severity above baseline, and noise SD.
    embedding_shift_slope: float = 0.03
    embedding_shift_noise_sd: float = 0.05

    # --- missing target days
    #: Mean and Beta concentration of the per-patient probability of answering on a day.
    adherence_mean: float = 0.8
    adherence_concentration: float = 10.0
    #: Daily probability that a dropout run starts, and mean run length (days).
    dropout_start_probability: float = 1.0 / 60.0
    dropout_mean_days: float = 6.0
    #: Probability that one questionnaire is skipped on an answered day (per target).
    skip_probability: float = 0.03

    def __post_init__(self) -> None:
        positive_ints = {
            "patients": self.patients,
            "days": self.days,
            "future_days": self.future_days,
            "sleep_lag_days": self.sleep_lag_days,
        }
        for name, count in positive_ints.items():
            if count < 1:
                raise ValidationError("must be at least 1", field=name)
        if self.burn_in_days < max(self.sleep_lag_days, EMBEDDING_WINDOW_DAYS):
            raise ValidationError(
                "must be at least sleep_lag_days and the embedding window (7)", field="burn_in_days"
            )
        if self.start_spread_days < 0:
            raise ValidationError("must not be negative", field="start_spread_days")
        probabilities: dict[str, float] = {
            "relapse_rate": self.relapse_rate,
            "medication_share": self.medication_share,
            "no_wearable_share": self.no_wearable_share,
            "wear_missing_probability": self.wear_missing_probability,
            "dropout_start_probability": self.dropout_start_probability,
            "skip_probability": self.skip_probability,
        }
        for name, value in probabilities.items():
            if not 0.0 <= value <= 1.0:
                raise ValidationError("must be a probability in [0, 1]", field=name)
        if not 0.0 < self.adherence_mean < 1.0:
            raise ValidationError("must be in (0, 1)", field="adherence_mean")
        persistences: dict[str, float] = {
            "severity_persistence": self.severity_persistence,
            "sleep_persistence": self.sleep_persistence,
            "anxiety_persistence": self.anxiety_persistence,
        }
        for name, value in persistences.items():
            if not 0.0 <= value < 1.0:
                raise ValidationError("must be in [0, 1)", field=name)
        at_least_one: dict[str, float] = {
            "relapse_mean_days": self.relapse_mean_days,
            "dropout_mean_days": self.dropout_mean_days,
        }
        for name, value in at_least_one.items():
            if value < 1.0:
                raise ValidationError("must be at least 1 day", field=name)
        positives: dict[str, float] = {
            "medication_ramp_days": self.medication_ramp_days,
            "adherence_concentration": self.adherence_concentration,
        }
        for name, value in positives.items():
            if not value > 0.0:
                raise ValidationError("must be positive", field=name)
        non_negatives: dict[str, float] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith("_sd")
        }
        non_negatives.update(
            {
                "sleep_sd_heterogeneity": self.sleep_sd_heterogeneity,
                "sleep_gain_heterogeneity": self.sleep_gain_heterogeneity,
                "noise_heterogeneity": self.noise_heterogeneity,
                "sleep_baseline_sd_minutes": self.sleep_baseline_sd_minutes,
                "sleep_day_sd_minutes": self.sleep_day_sd_minutes,
                "sleep_measurement_sd_minutes": self.sleep_measurement_sd_minutes,
            }
        )
        for name, value in non_negatives.items():
            if not value >= 0.0:
                raise ValidationError("must not be negative", field=name)
        if self.baseline_min > self.baseline_max:
            raise ValidationError("must not exceed baseline_max", field="baseline_min")


@dataclass(frozen=True)
class PatientTraits:
    """The per-patient parameters drawn once (see the module docstring)."""

    baseline: float
    sleep_base_minutes: float
    sleep_sd_minutes: float
    sleep_gain: float
    phq9_noise_sd: float
    gad7_noise_sd: float
    mood_noise_sd: float
    gad7_offset: float
    mood_offset: float
    adherence: float
    has_medication: bool
    #: Day index of the antidepressant start (meaningless when ``has_medication`` is false).
    medication_start: int
    medication_response: float
    has_wearable: bool
    efficiency_base: float
    steps_base: float
    heart_rate_base: float

    def noise_sd(self, target: str) -> float:
        """The planted measurement-noise SD of one target's readout (before rounding)."""
        _check_target(target)
        return float(getattr(self, f"{_PREFIX[target]}_noise_sd"))


@dataclass(frozen=True, eq=False)
class LatentPath:
    """The hidden daily state over the observed days (index ``d`` = day ``d``)."""

    #: Latent severity s_t (PHQ-9 points, unrounded, unclipped), [T].
    severity: FloatArray
    #: Relapse regime r_t, [T].
    relapse: npt.NDArray[np.bool_]
    #: AR(1) sleep deviation state e_t (minutes), [T].
    sleep_state: FloatArray
    #: True nightly sleep (minutes), [T].
    sleep_minutes: FloatArray
    #: Sleep deviation d_t (hours) for days ``-L .. T-1``: entry ``L + d`` is day ``d``, [L + T].
    sleep_deviation: FloatArray
    #: Anxiety component z_t (GAD-7 points), [T].
    anxiety: FloatArray
    #: Severity removed by the antidepressant, days ``0 .. T + future_days - 1``.
    medication_effect: FloatArray


@dataclass(frozen=True, eq=False)
class SyntheticPatient:
    """One generated patient: what a forecaster sees, and the hidden state behind it."""

    #: Synthetic id, e.g. "syn-0001".
    key: str
    #: Calendar date of day 0.
    start: dt.date
    #: Observed target series by target name (see :data:`TARGETS`), each [T], NaN = missing.
    targets: Mapping[str, FloatArray]
    #: Past covariates [T, len(SCHEMA.past)], NaN = missing.
    past: FloatArray
    #: Known-future covariates [T + future_days, len(SCHEMA.future)].
    future: FloatArray
    traits: PatientTraits
    latent: LatentPath
    config: CohortConfig

    @property
    def days(self) -> int:
        """Observed days (T)."""
        return self.config.days

    def panel(self, target: str) -> Panel:
        """This patient's :class:`Panel` for one target (the patient is kept in ``extra``)."""
        _check_target(target)
        return Panel(
            key=self.key,
            start=self.start,
            target=self.targets[target],
            past=self.past,
            future=self.future,
            extra={EXTRA_KEY: self},
        )

    def readout_mean(self, target: str) -> FloatArray:
        """The noiseless readout of ``target`` on each observed day (unrounded, unclipped), [T]."""
        _check_target(target)
        weekend = _weekend(self.start, 0, self.days)
        return _readout_mean(
            target,
            self.latent.severity,
            self.latent.anxiety,
            weekend,
            _Traits.of([self.traits]).squeezed(),
            self.config,
        )


def generate_cohort(config: CohortConfig, seed: int) -> list[SyntheticPatient]:
    """Draw a cohort; the same ``config`` and ``seed`` give identical arrays."""
    rng = np.random.default_rng(seed)
    n_patients, n_days, lag = config.patients, config.days, config.sleep_lag_days
    burn, future_days = config.burn_in_days, config.future_days
    traits_list = _draw_traits(rng, config)
    traits = _Traits.of(traits_list)
    offsets = rng.integers(0, config.start_spread_days + 1, size=n_patients)
    starts = [config.first_start + dt.timedelta(days=int(offset)) for offset in offsets]

    # Day grid from -burn to T + future_days - 1 (column j is day j - burn).
    grid = np.arange(-burn, n_days + future_days, dtype=np.int64)
    first_weekday = np.array([start.weekday() for start in starts], dtype=np.int64)
    weekend = ((first_weekday[:, None] + grid[None, :]) % 7) >= 5
    medication = _medication_effect(
        grid[None, :].astype(np.float64),
        traits.medication_start[:, None],
        traits.medication_response[:, None],
        traits.has_medication[:, None],
        config.medication_ramp_days,
    )

    # Initial state at day -burn: the regime and the AR components at their stationary laws.
    onset, leave = config.relapse_rate, 1.0 / config.relapse_mean_days
    regime = rng.random(n_patients) < onset / (onset + leave)
    sleep_state = traits.sleep_sd_minutes * rng.standard_normal(n_patients)
    anxiety = config.anxiety_sd * rng.standard_normal(n_patients)
    stationary_sd = config.severity_noise_sd / math.sqrt(1.0 - config.severity_persistence**2)
    severity = np.maximum(
        traits.baseline + config.relapse_size * regime - medication[:, 0], 0.0
    ) + stationary_sd * rng.standard_normal(n_patients)

    steps = burn + n_days
    deviation = np.zeros((n_patients, lag + steps))  # column lag + j: day j - burn
    record_severity = np.empty((n_patients, steps))
    record_regime = np.empty((n_patients, steps), dtype=np.bool_)
    record_sleep_state = np.empty((n_patients, steps))
    record_sleep = np.empty((n_patients, steps))
    record_anxiety = np.empty((n_patients, steps))
    for j in range(steps):
        regime, sleep_state, sleep, severity, anxiety = _advance(
            rng,
            config,
            traits,
            regime,
            sleep_state,
            severity,
            anxiety,
            deviation[:, j],
            weekend[:, j],
            medication[:, j],
        )
        deviation[:, lag + j] = (sleep - traits.sleep_base_minutes) / 60.0
        record_severity[:, j] = severity
        record_regime[:, j] = regime
        record_sleep_state[:, j] = sleep_state
        record_sleep[:, j] = sleep
        record_anxiety[:, j] = anxiety

    observed = slice(burn, burn + n_days)
    severity_obs = record_severity[:, observed]
    anxiety_obs = record_anxiety[:, observed]
    weekend_obs = weekend[:, observed]

    targets: dict[str, FloatArray] = {}
    columns = traits.expanded()
    answered = _answered_days(rng, config, traits.adherence)
    for target in TARGETS:
        mean = _readout_mean(target, severity_obs, anxiety_obs, weekend_obs, columns, config)
        values = _readout(rng, target, mean, columns)
        kept = answered & (rng.random((n_patients, n_days)) >= config.skip_probability)
        targets[target] = np.where(kept, values, np.nan)

    past = _past_covariates(rng, config, traits, record_severity, record_sleep, burn)
    future_window = slice(burn, burn + n_days + future_days)
    schedule = (grid[None, future_window] >= traits.medication_start[:, None]) & traits.has_medication[
        :, None
    ]

    patients: list[SyntheticPatient] = []
    width = max(4, len(str(n_patients)))
    for i in range(n_patients):
        latent = LatentPath(
            severity=severity_obs[i].copy(),
            relapse=record_regime[i, observed].copy(),
            sleep_state=record_sleep_state[i, observed].copy(),
            sleep_minutes=record_sleep[i, observed].copy(),
            sleep_deviation=deviation[i, burn : burn + lag + n_days].copy(),
            anxiety=anxiety_obs[i].copy(),
            medication_effect=medication[i, future_window].copy(),
        )
        patients.append(
            SyntheticPatient(
                key=f"syn-{i + 1:0{width}d}",
                start=starts[i],
                targets={name: series[i].copy() for name, series in targets.items()},
                past=past[i].copy(),
                future=schedule[i].astype(np.float64)[:, None],
                traits=traits_list[i],
                latent=latent,
                config=config,
            )
        )
    return patients


def panels(patients: Sequence[SyntheticPatient], target: str) -> list[Panel]:
    """One :class:`Panel` per patient for ``target`` (each keeps its patient in ``extra``)."""
    _check_target(target)
    return [patient.panel(target) for patient in patients]


def oracle_quantiles(
    patient: SyntheticPatient | Panel,
    target: str,
    origins: Sequence[int],
    horizon: int,
    levels: Sequence[float],
    n_samples: int = 1000,
    seed: int = 0,
) -> FloatArray:
    """The generator's own predictive quantiles, [len(origins), horizon, len(levels)].

    For each origin (an observed day index), ``n_samples`` continuations are simulated from
    the patient's true latent state at that day with the generator's dynamics, the patient's
    traits and medication schedule, and fresh noise; the readouts are rounded and clipped like
    the observations, and the empirical quantiles (inverted CDF, so values are attainable
    scores) are taken at ``levels``. ``patient`` may be a panel made by :func:`panels`.
    Deterministic under ``seed`` (and the patient's key).
    """
    person = _as_patient(patient)
    _check_target(target)
    config, latent = person.config, person.latent
    origin = np.asarray(origins, dtype=np.int64)
    if origin.ndim != 1 or origin.size == 0:
        raise ValidationError("must be a non-empty sequence of day indices", field="origins")
    if origin.min() < 0 or origin.max() >= person.days:
        raise ValidationError("must be observed day indices", field="origins")
    if horizon < 1:
        raise ValidationError("must be at least 1", field="horizon")
    if n_samples < 1:
        raise ValidationError("must be at least 1", field="n_samples")
    level = np.asarray(levels, dtype=np.float64)
    if level.ndim != 1 or level.size == 0 or not ((level > 0) & (level < 1)).all():
        raise ValidationError("must be levels in (0, 1)", field="levels")
    if (np.diff(level) <= 0).any():
        raise ValidationError("must be strictly ascending", field="levels")

    rng = np.random.default_rng([seed, zlib.crc32(person.key.encode("utf-8"))])
    traits = _Traits.of([person.traits]).squeezed()
    lag = config.sleep_lag_days
    shape = (origin.size, n_samples)
    column = origin[:, None]
    regime = np.broadcast_to(latent.relapse[column], shape).copy()
    sleep_state = np.broadcast_to(latent.sleep_state[column], shape).copy()
    severity = np.broadcast_to(latent.severity[column], shape).copy()
    anxiety = np.broadcast_to(latent.anxiety[column], shape).copy()
    # deviations[k] is the sleep deviation of day origin - lag + 1 + k.
    deviations: list[FloatArray] = [
        np.broadcast_to(latent.sleep_deviation[column + 1 + k], shape) for k in range(lag)
    ]

    days = column + np.arange(1, horizon + 1, dtype=np.int64)[None, :]
    weekend = ((person.start.weekday() + days) % 7) >= 5
    medication = _medication_effect(
        days.astype(np.float64),
        traits.medication_start,
        traits.medication_response,
        traits.has_medication,
        config.medication_ramp_days,
    )
    draws = np.empty((origin.size, horizon, n_samples))
    for h in range(horizon):
        regime, sleep_state, sleep, severity, anxiety = _advance(
            rng,
            config,
            traits,
            regime,
            sleep_state,
            severity,
            anxiety,
            deviations[h],
            weekend[:, h : h + 1],
            medication[:, h : h + 1],
        )
        deviations.append((sleep - traits.sleep_base_minutes) / 60.0)
        mean = _readout_mean(target, severity, anxiety, weekend[:, h : h + 1], traits, config)
        draws[:, h, :] = _readout(rng, target, mean, traits)
    return _integer_quantiles(draws, TARGETS[target], level)


# --- internals ---------------------------------------------------------------------------------

_PREFIX: Final = {"phq9_total": "phq9", "gad7_total": "gad7", "mood_rating": "mood"}


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValidationError("unknown synthetic target", field="target")


def _as_patient(patient: SyntheticPatient | Panel) -> SyntheticPatient:
    if isinstance(patient, SyntheticPatient):
        return patient
    found = patient.extra.get(EXTRA_KEY)
    if not isinstance(found, SyntheticPatient):
        raise ValidationError("panel does not come from the synthetic generator", field="patient")
    return found


@dataclass(frozen=True)
class _Traits:
    """Traits as arrays (one entry per patient), for vectorised simulation."""

    baseline: FloatArray
    sleep_base_minutes: FloatArray
    sleep_sd_minutes: FloatArray
    sleep_gain: FloatArray
    phq9_noise_sd: FloatArray
    gad7_noise_sd: FloatArray
    mood_noise_sd: FloatArray
    gad7_offset: FloatArray
    mood_offset: FloatArray
    adherence: FloatArray
    has_medication: BoolArray
    medication_start: FloatArray
    medication_response: FloatArray
    has_wearable: BoolArray
    efficiency_base: FloatArray
    steps_base: FloatArray
    heart_rate_base: FloatArray

    @classmethod
    def of(cls, traits: Sequence[PatientTraits]) -> _Traits:
        values: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.bool_]] = {}
        for item in fields(cls):
            column = [getattr(t, item.name) for t in traits]
            if item.name.startswith("has_"):
                values[item.name] = np.asarray(column, dtype=np.bool_)
            else:
                values[item.name] = np.asarray(column, dtype=np.float64)
        return cls(**values)  # type: ignore[arg-type]

    def expanded(self) -> _Traits:
        """The traits as columns [P, 1] (they broadcast against [P, days] arrays)."""
        return _Traits(**{item.name: getattr(self, item.name)[:, None] for item in fields(self)})

    def squeezed(self) -> _Traits:
        """A single patient's traits as 0-d arrays (they broadcast against any shape)."""
        return _Traits(**{item.name: getattr(self, item.name)[0, ...] for item in fields(self)})

    def noise_sd(self, target: str) -> FloatArray:
        value: FloatArray = getattr(self, f"{_PREFIX[target]}_noise_sd")
        return value


def _lognormal_factor(rng: np.random.Generator, sigma: float, size: int) -> FloatArray:
    return np.exp(sigma * rng.standard_normal(size))


def _draw_traits(rng: np.random.Generator, config: CohortConfig) -> list[PatientTraits]:
    n = config.patients
    baseline = np.clip(
        rng.normal(config.baseline_mean, config.baseline_sd, n), config.baseline_min, config.baseline_max
    )
    sleep_base = np.clip(
        rng.normal(config.sleep_mean_minutes, config.sleep_baseline_sd_minutes, n), *SLEEP_BASE_BOUNDS
    )
    sleep_sd = config.sleep_day_sd_minutes * _lognormal_factor(rng, config.sleep_sd_heterogeneity, n)
    gain = config.sleep_gain * _lognormal_factor(rng, config.sleep_gain_heterogeneity, n)
    noise_factor = _lognormal_factor(rng, config.noise_heterogeneity, n)
    gad7_offset = rng.normal(0.0, config.gad7_offset_sd, n)
    mood_offset = rng.normal(0.0, config.mood_offset_sd, n)
    concentration = config.adherence_concentration
    adherence = rng.beta(
        config.adherence_mean * concentration, (1.0 - config.adherence_mean) * concentration, n
    )
    has_medication = rng.random(n) < config.medication_share
    medication_start = rng.integers(
        config.medication_earliest_start, config.days + config.future_days, size=n, endpoint=False
    )
    response = np.maximum(rng.normal(config.medication_effect, config.medication_effect_sd, n), 0.0)
    has_wearable = rng.random(n) >= config.no_wearable_share
    eff_mean, eff_sd, eff_low, eff_high = EFFICIENCY_BASE
    efficiency = np.clip(rng.normal(eff_mean, eff_sd, n), eff_low, eff_high)
    steps_median, steps_sigma = STEPS_BASE
    steps = steps_median * _lognormal_factor(rng, steps_sigma, n)
    hr_mean, hr_sd, hr_low, hr_high = HEART_RATE_BASE
    heart_rate = np.clip(rng.normal(hr_mean, hr_sd, n), hr_low, hr_high)
    return [
        PatientTraits(
            baseline=float(baseline[i]),
            sleep_base_minutes=float(sleep_base[i]),
            sleep_sd_minutes=float(sleep_sd[i]),
            sleep_gain=float(gain[i]),
            phq9_noise_sd=float(config.phq9_noise_sd * noise_factor[i]),
            gad7_noise_sd=float(config.gad7_noise_sd * noise_factor[i]),
            mood_noise_sd=float(config.mood_noise_sd * noise_factor[i]),
            gad7_offset=float(gad7_offset[i]),
            mood_offset=float(mood_offset[i]),
            adherence=float(adherence[i]),
            has_medication=bool(has_medication[i]),
            medication_start=int(medication_start[i]),
            medication_response=float(response[i]) if has_medication[i] else 0.0,
            has_wearable=bool(has_wearable[i]),
            efficiency_base=float(efficiency[i]),
            steps_base=float(steps[i]),
            heart_rate_base=float(heart_rate[i]),
        )
        for i in range(n)
    ]


def _weekend(start: dt.date, first_day: int, count: int) -> BoolArray:
    """Saturday/Sunday flags for days ``first_day .. first_day + count - 1``."""
    days = np.arange(first_day, first_day + count, dtype=np.int64)
    flags: BoolArray = ((start.weekday() + days) % 7) >= 5
    return flags


def _medication_effect(
    day: FloatArray, start: FloatArray, response: FloatArray, active: BoolArray, ramp_days: float
) -> FloatArray:
    """Severity removed by the antidepressant on ``day`` (gamma(2) ramp from ``start``)."""
    on_treatment = np.maximum(day - start, 0.0) / ramp_days
    ramp = 1.0 - (1.0 + on_treatment) * np.exp(-on_treatment)
    effect: FloatArray = np.where(active, response * ramp, 0.0)
    return effect


def _advance(
    rng: np.random.Generator,
    config: CohortConfig,
    traits: _Traits,
    regime: BoolArray,
    sleep_state: FloatArray,
    severity: FloatArray,
    anxiety: FloatArray,
    lagged_deviation: FloatArray,
    weekend: BoolArray,
    medication: FloatArray,
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """One day of the latent dynamics (module docstring, steps 1-5), vectorised.

    Returns the new regime, sleep deviation state, true sleep (minutes), severity and anxiety.
    ``lagged_deviation`` is the sleep deviation (hours) ``sleep_lag_days`` days before.
    """
    shape = severity.shape
    switch = rng.random(shape)
    normal = rng.standard_normal((3, *shape))
    regime_next: BoolArray = np.where(
        regime, switch >= 1.0 / config.relapse_mean_days, switch < config.relapse_rate
    )
    rho = config.sleep_persistence
    state_next = rho * sleep_state + math.sqrt(1.0 - rho * rho) * traits.sleep_sd_minutes * normal[0]
    sleep = np.clip(
        traits.sleep_base_minutes
        + config.weekend_sleep_minutes * weekend
        - config.relapse_sleep_loss_minutes * regime_next
        + state_next,
        *SLEEP_BOUNDS,
    )
    target = np.maximum(traits.baseline + config.relapse_size * regime_next - medication, 0.0)
    phi = config.severity_persistence
    severity_next = (
        target
        + phi * (severity - target)
        - traits.sleep_gain * lagged_deviation
        + config.severity_noise_sd * normal[1]
    )
    psi = config.anxiety_persistence
    anxiety_next = psi * anxiety + math.sqrt(1.0 - psi * psi) * config.anxiety_sd * normal[2]
    return regime_next, state_next, sleep, severity_next, anxiety_next


def _readout_mean(
    target: str,
    severity: FloatArray,
    anxiety: FloatArray,
    weekend: BoolArray,
    traits: _Traits,
    config: CohortConfig,
) -> FloatArray:
    """Noiseless readout of the perceived severity (before noise, rounding and clipping)."""
    perceived = severity - config.weekend_effect * weekend
    if target == "phq9_total":
        return perceived
    if target == "gad7_total":
        gad: FloatArray = config.gad7_slope * perceived + traits.gad7_offset + anxiety
        return gad
    mood: FloatArray = config.mood_intercept + traits.mood_offset - config.mood_slope * perceived
    return mood


def _readout(rng: np.random.Generator, target: str, mean: FloatArray, traits: _Traits) -> FloatArray:
    """A noisy, rounded, clipped readout around ``mean``."""
    spec = TARGETS[target]
    noisy = mean + traits.noise_sd(target) * rng.standard_normal(mean.shape)
    # Adding 0.0 turns the -0.0 that rint gives small negative values into 0.0.
    return spec.clip(np.rint(noisy)) + 0.0


def _integer_quantiles(draws: FloatArray, spec: TargetSpec, levels: FloatArray) -> FloatArray:
    """Empirical quantiles (inverted CDF) along the last axis of integer scores in the spec's range.

    The smallest score ``k`` whose empirical CDF reaches the level, from per-row counts of each
    score (one ``bincount``, far faster than sorting the samples).
    """
    low = int(spec.lower or 0.0)
    size = int(spec.upper or 0.0) - low + 1
    rows = int(np.prod(draws.shape[:-1]))
    samples = draws.shape[-1]
    codes = (draws.reshape(rows, samples) - low).astype(np.int64) + size * np.arange(rows)[:, None]
    counts = np.bincount(codes.ravel(), minlength=rows * size).reshape(rows, size)
    cumulative = np.cumsum(counts, axis=1)
    needed = np.ceil(levels * samples - 1e-9)  # inverted CDF: F(k) >= level
    index = (cumulative[:, :, None] < needed[None, None, :]).sum(axis=1)
    result: FloatArray = (np.minimum(index, size - 1) + low).astype(np.float64)
    return result.reshape(*draws.shape[:-1], levels.size)


def _answered_days(rng: np.random.Generator, config: CohortConfig, adherence: FloatArray) -> BoolArray:
    """Days a patient checks in: not in a dropout run, and answering (per-patient adherence)."""
    n_patients, n_days = config.patients, config.days
    in_dropout = np.zeros(n_patients, dtype=np.bool_)
    dropout = np.empty((n_patients, n_days), dtype=np.bool_)
    start_draws = rng.random((n_patients, n_days))
    leave = 1.0 / config.dropout_mean_days
    for t in range(n_days):
        in_dropout = np.where(
            in_dropout, start_draws[:, t] >= leave, start_draws[:, t] < config.dropout_start_probability
        )
        dropout[:, t] = in_dropout
    answers: BoolArray = (rng.random((n_patients, n_days)) < adherence[:, None]) & ~dropout
    return answers


def _past_covariates(
    rng: np.random.Generator,
    config: CohortConfig,
    traits: _Traits,
    severity: FloatArray,
    sleep: FloatArray,
    burn: int,
) -> FloatArray:
    """The wearable's daily covariates [P, T, 5] (see the module docstring)."""
    n_patients, n_days = config.patients, config.days
    observed = slice(burn, burn + n_days)
    excess = severity - traits.baseline[:, None]  # over burn-in and observed days
    cumulative = np.cumsum(np.pad(excess, ((0, 0), (1, 0))), axis=1)
    window = EMBEDDING_WINDOW_DAYS
    weekly = (cumulative[:, window:] - cumulative[:, :-window]) / window  # column j: days j..j+6
    weekly_obs = weekly[:, burn - window + 1 : burn - window + 1 + n_days]
    u = excess[:, observed]

    def noise(sd: float) -> FloatArray:
        return sd * rng.standard_normal((n_patients, n_days))

    total_sleep = np.rint(sleep[:, observed] + noise(config.sleep_measurement_sd_minutes))
    efficiency = np.round(
        np.clip(
            traits.efficiency_base[:, None]
            - config.efficiency_severity_slope * u
            + noise(config.efficiency_noise_sd),
            *EFFICIENCY_BOUNDS,
        ),
        1,
    )
    steps = np.rint(
        traits.steps_base[:, None] * np.exp(-config.steps_severity_slope * u + noise(config.steps_noise_sd))
    )
    heart_rate = np.rint(
        traits.heart_rate_base[:, None]
        + config.heart_rate_severity_slope * u
        + noise(config.heart_rate_noise_sd)
    )
    shift = config.embedding_shift_slope * weekly_obs + noise(config.embedding_shift_noise_sd)
    past = np.stack([total_sleep, efficiency, steps, heart_rate, shift], axis=-1)
    worn = traits.has_wearable[:, None] & (
        rng.random((n_patients, n_days)) >= config.wear_missing_probability
    )
    result: FloatArray = np.where(worn[..., None], past, np.nan)
    return result
