"""Synthetic actigraphy with ground truth, so tests can prove that metrics recover what was planted.

:func:`generate` draws an Actiwatch-like recording (activity counts per epoch, local clock time)
from a :class:`SyntheticConfig` and a seed, and returns it with a :class:`GroundTruth`: for every
night the time in bed, sleep onset, final wake, awakenings, total sleep time and sleep
efficiency that were planted, plus the missing, non-wear and anomalous stretches.

Timeline. The recording starts at local midnight of ``start_date`` and lasts ``days`` x 1,440
*elapsed* minutes, the rule of :mod:`novamind.pat.domain.preprocessing`: across a daylight
saving change it ends at 01:00 (spring forward) or 23:00 (fall back) local time, and a week of
it is exactly 10,080 minutes. Bedtimes, wake times, bouts and stretches are given on the local
clock, so a night that spans a spring-forward change is one hour shorter in elapsed time (and
the planted time in bed says so).

Count levels (counts per minute; each minute's count is split at random over its epochs, so the
minute sums are exact). They are calibrated against Cole-Kripke with the "mean" setting
(Cole et al. 1992, Sleep 15(5):461-469: sleep when 0.001 x sum W_i A_i / 30 < 1, weights
106, 54, 58, 76, 230, 74, 67 for minutes t-4..t+2), i.e. sum W_i c_i < 30,000:

* asleep: 0, or 1-4 counts in one minute out of five (at most 665 x 4 = 2,660 per window, far
  below the threshold; a 90-minute zero run, which Choi non-wear would flag, has probability
  0.8^90 < 1e-8 per minute);
* awake in bed: 83-94 counts. Every minute of a wake bout of 3 minutes or more scores wake
  (its window holds at least 364 x 83 > 30,000); the sleep minutes around one stay sleep (the
  first one after it holds at most 294 x 94 + 371 x 4 < 30,000);
* awake out of bed: a 24 h cosine around ``day_mean_counts`` with gamma-Poisson bursts, plus
  activity bouts (light 400, moderate 900, vigorous 1,800 counts per minute).

So the scorer sees planted sleep as sleep and every planted awakening (at least 3 minutes) as
wake; its Webster rescoring then adds 1-4 minutes of wake after wake bouts of 4 minutes or more,
a bias well under 3 % of a night's sleep.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.domain.recording import DeviceInfo, Recording

FloatArray = npt.NDArray[np.float64]
Int8Array = npt.NDArray[np.int8]

MINUTES_PER_DAY: Final = 1_440

#: Probability that a minute asleep holds a small movement, and that movement's largest count.
SLEEP_MOVEMENT_PROBABILITY: Final = 0.2
SLEEP_MOVEMENT_MAX_COUNTS: Final = 4
#: Counts per minute while awake in bed (inclusive range); see the module docstring.
WAKE_IN_BED_COUNTS: Final = (83, 94)
#: Mean counts per minute of an activity bout by intensity.
BOUT_COUNTS: Final = {"light": 400.0, "moderate": 900.0, "vigorous": 1_800.0}
#: Counts per minute during an "unusual_movement" anomaly.
UNUSUAL_MOVEMENT_COUNTS: Final = 3_000.0
#: Factor on out-of-bed activity during a "low_activity_day" anomaly.
LOW_ACTIVITY_FACTOR: Final = 0.15
#: Shape of the gamma noise on waking activity (smaller = burstier; mean 1).
ACTIVITY_GAMMA_SHAPE: Final = 4.0
#: Shortest stretch of sleep between two awakenings, and on either side of them (minutes).
MIN_SLEEP_SEGMENT_MINUTES: Final = 20
#: Share of the in-bed wake time not used by awakenings that falls before sleep onset.
SLEEP_LATENCY_SHARE: Final = 0.75

Intensity = Literal["light", "moderate", "vigorous"]
AnomalyKind = Literal["sleepless_night", "low_activity_day", "unusual_movement"]


class MinuteState(enum.IntEnum):
    """What the wearer was doing in each minute (the planted behaviour, before overlays)."""

    AWAKE_OUT_OF_BED = 0
    AWAKE_IN_BED = 1
    ASLEEP = 2


# --- Configuration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SleepPattern:
    """Nightly sleep: bed and rise times on the local clock ("HH:MM"), each night jittered.

    ``jitter_minutes`` is the standard deviation (minutes) of both times. ``efficiency`` is the
    mean planted sleep efficiency (total sleep time / time in bed, 0-1) and ``efficiency_sd`` its
    night-to-night standard deviation (clipped to 0.5-0.99). ``awakenings`` per night, each
    lasting ``awakening_minutes`` (inclusive range, minutes; fewer or shorter ones when the
    night's wake time cannot hold them).
    """

    bedtime: str = "23:00"
    waketime: str = "07:00"
    jitter_minutes: float = 20.0
    efficiency: float = 0.88
    efficiency_sd: float = 0.03
    awakenings: int = 2
    awakening_minutes: tuple[int, int] = (3, 9)


@dataclass(frozen=True, slots=True)
class ActivityBout:
    """A daily bout of activity starting at a local clock time ("HH:MM"), jittered by an SD."""

    start: str = "08:00"
    minutes: int = 60
    intensity: Intensity = "moderate"
    jitter_minutes: float = 15.0


@dataclass(frozen=True, slots=True)
class Stretch:
    """``minutes`` elapsed minutes from a local clock time ("HH:MM") on recording day ``day`` (0-based)."""

    day: int
    start: str
    minutes: int


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A planted anomaly.

    ``sleepless_night``: the night that starts on the evening of ``day`` is spent awake in bed.
    ``low_activity_day``: activity out of bed on ``day`` is cut to ``LOW_ACTIVITY_FACTOR``.
    ``unusual_movement``: ``minutes`` of very high counts from ``start`` on ``day``.
    """

    kind: AnomalyKind
    day: int
    start: str = "14:30"
    minutes: int = 30


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """What to generate. Times are local clock times in ``timezone`` (IANA).

    ``days`` x 1,440 elapsed minutes from local midnight of ``start_date``, epochs of
    ``epoch_seconds`` (1-60, dividing 60). ``day_mean_counts`` (counts per minute) is the mean of
    waking activity out of bed, modulated by a 24 h cosine of relative ``circadian_amplitude``
    peaking at ``acrophase`` (local clock). Missing stretches become NaN epochs, non-wear
    stretches zero counts (plant them at least 90 minutes long to be detectable as non-wear).
    """

    start_date: dt.date = dt.date(2026, 1, 5)
    days: int = 7
    epoch_seconds: int = 30
    timezone: str = "Europe/Zurich"
    sleep: SleepPattern = field(default_factory=SleepPattern)
    bouts: tuple[ActivityBout, ...] = (ActivityBout(),)
    day_mean_counts: float = 250.0
    circadian_amplitude: float = 0.4
    acrophase: str = "15:00"
    anomalies: tuple[Anomaly, ...] = ()
    missing: tuple[Stretch, ...] = ()
    non_wear: tuple[Stretch, ...] = ()


# --- Ground truth --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """[start, end) in local time (timezone-aware); ``minutes`` is the elapsed length."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def minutes(self) -> int:
        return int((self.end - self.start) // pd.Timedelta(minutes=1))


@dataclass(frozen=True, slots=True)
class NightTruth:
    """One planted night, entirely inside the recording.

    ``night_of`` is the local date of the evening. ``in_bed`` runs from bedtime (lights out) to
    rising. ``sleep_onset`` is the first minute asleep and ``final_wake`` the end of the last one
    (None for a sleepless night). Minutes are elapsed minutes; ``sleep_efficiency`` is total
    sleep time / time in bed in percent (0-100).
    """

    night_of: dt.date
    in_bed: Interval
    sleep_onset: pd.Timestamp | None
    final_wake: pd.Timestamp | None
    awakenings: tuple[Interval, ...]
    total_sleep_minutes: int
    sleepless: bool = False

    @property
    def time_in_bed_minutes(self) -> int:
        return self.in_bed.minutes

    @property
    def sleep_efficiency(self) -> float:
        return 100.0 * self.total_sleep_minutes / self.time_in_bed_minutes

    @property
    def sleep_onset_latency_minutes(self) -> int | None:
        if self.sleep_onset is None:
            return None
        return int((self.sleep_onset - self.in_bed.start) // pd.Timedelta(minutes=1))

    @property
    def wake_after_sleep_onset_minutes(self) -> int:
        return sum(a.minutes for a in self.awakenings)


@dataclass(frozen=True, slots=True)
class PlantedAnomaly:
    """An anomaly as planted: its kind and where it lies (local time)."""

    kind: AnomalyKind
    interval: Interval


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Everything planted. ``minute_state`` (n_minutes,) int8 holds a :class:`MinuteState` per
    elapsed minute from ``start``; nights cut by the recording's ends are planted but not listed.
    """

    start: pd.Timestamp
    nights: tuple[NightTruth, ...]
    missing: tuple[Interval, ...]
    non_wear: tuple[Interval, ...]
    anomalies: tuple[PlantedAnomaly, ...]
    minute_state: Int8Array

    @property
    def asleep(self) -> npt.NDArray[np.bool_]:
        """True for each elapsed minute planted asleep."""
        return np.asarray(self.minute_state == MinuteState.ASLEEP)


@dataclass(frozen=True)
class SyntheticRecording:
    """A generated recording and what was planted in it."""

    recording: Recording
    truth: GroundTruth


# --- Generation ----------------------------------------------------------------------------------


def _clock(text: str, what: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError("clock times must read HH:MM", field=what) from exc


def _validate(config: SyntheticConfig) -> ZoneInfo:
    if not 1 <= config.epoch_seconds <= 60 or 60 % config.epoch_seconds:
        raise ValidationError("epoch must be 1-60 s and divide 60 s", field="epoch_seconds")
    if config.days < 1:
        raise ValidationError("generate at least one day", field="days")
    low, high = config.sleep.awakening_minutes
    if not 1 <= low <= high or config.sleep.awakenings < 0:
        raise ValidationError("awakenings need a count >= 0 and a range of >= 1 minute", field="sleep")
    if not 0.5 <= config.sleep.efficiency <= 0.99:
        raise ValidationError("planted sleep efficiency must lie in 0.5-0.99", field="sleep.efficiency")
    if config.day_mean_counts <= 0 or not 0 <= config.circadian_amplitude < 1:
        raise ValidationError(
            "daytime activity needs a positive mean and amplitude < 1", field="day_mean_counts"
        )
    try:
        return ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError("unknown IANA time zone", field="timezone") from exc


class _Timeline:
    """Elapsed minutes from local midnight of the start date, and local clock instants on it."""

    def __init__(self, config: SyntheticConfig, zone: ZoneInfo) -> None:
        self.zone = zone
        self.start = pd.Timestamp(config.start_date).tz_localize(zone, nonexistent="shift_forward")
        self.n = config.days * MINUTES_PER_DAY
        self.index = pd.date_range(self.start, periods=self.n, freq="min")
        self.hour = np.asarray(self.index.hour + self.index.minute / 60.0, dtype=np.float64)

    def position(self, date: dt.date, clock: dt.time, shift_minutes: float = 0.0) -> int:
        """Elapsed minute of a local clock time (shifted by whole minutes) on a local date."""
        wall = pd.Timestamp(dt.datetime.combine(date, clock)) + pd.Timedelta(minutes=round(shift_minutes))
        local = wall.tz_localize(self.zone, nonexistent="shift_forward", ambiguous=True)
        return int((local - self.start) // pd.Timedelta(minutes=1))

    def at(self, position: int) -> pd.Timestamp:
        return self.start + pd.Timedelta(minutes=position)

    def interval(self, start: int, end: int) -> Interval:
        return Interval(self.at(start), self.at(end))


def _split(total: int, parts: int, minimum: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """``parts`` whole numbers of at least ``minimum`` summing to ``total`` (uniform surplus)."""
    surplus = total - parts * minimum
    return minimum + rng.multinomial(max(surplus, 0), np.full(parts, 1.0 / parts)).astype(np.int64)


def _plant_night(
    state: Int8Array,
    bed: int,
    rise: int,
    sleepless: bool,
    config: SleepPattern,
    rng: np.random.Generator,
) -> tuple[int | None, int | None, list[tuple[int, int]], int]:
    """Writes one night into ``state`` (clipped to it); returns onset, final wake, awakenings, TST."""
    n = state.size
    lo, hi = max(bed, 0), min(rise, n)
    state[lo:hi] = MinuteState.AWAKE_IN_BED
    efficiency = float(np.clip(rng.normal(config.efficiency, config.efficiency_sd), 0.5, 0.99))
    in_bed = rise - bed
    if sleepless:
        return None, None, [], 0
    wake = round((1.0 - efficiency) * in_bed)
    count = config.awakenings
    low, high = config.awakening_minutes
    while count and (count * low > 0.6 * wake or in_bed - wake < (count + 1) * MIN_SLEEP_SEGMENT_MINUTES):
        count -= 1
    lengths = rng.integers(low, high + 1, size=count).astype(np.int64)
    if lengths.sum() > 0.6 * wake:
        lengths = np.maximum(low, np.floor(lengths * 0.6 * wake / lengths.sum())).astype(np.int64)
    rest = wake - int(lengths.sum())
    latency = round(SLEEP_LATENCY_SHARE * rest)
    sleep_total = in_bed - wake
    segments = _split(sleep_total, count + 1, MIN_SLEEP_SEGMENT_MINUTES, rng)
    onset = bed + latency
    awakenings = []
    cursor = onset
    for i, segment in enumerate(segments):
        state[max(cursor, 0) : min(cursor + int(segment), n)] = MinuteState.ASLEEP
        cursor += int(segment)
        if i < count:
            awakenings.append((cursor, cursor + int(lengths[i])))
            cursor += int(lengths[i])
    return onset, cursor, awakenings, sleep_total


def _stretch_positions(timeline: _Timeline, config: SyntheticConfig, stretch: Stretch) -> tuple[int, int]:
    date = config.start_date + dt.timedelta(days=stretch.day)
    start = timeline.position(date, _clock(stretch.start, "start"))
    return max(start, 0), min(start + stretch.minutes, timeline.n)


def generate(config: SyntheticConfig, seed: int) -> SyntheticRecording:
    """A synthetic recording and its ground truth; the same config and seed give identical output.

    Counts per epoch (float64, NaN in missing stretches) on a timezone-aware local index; see
    the module docstring for the timeline and count levels. Randomness comes only from
    ``numpy.random.default_rng(seed)``. Raises ``ValidationError`` for an invalid config.
    """
    zone = _validate(config)
    rng = np.random.default_rng(seed)
    timeline = _Timeline(config, zone)
    n = timeline.n
    sleep = config.sleep
    bedtime, waketime = _clock(sleep.bedtime, "sleep.bedtime"), _clock(sleep.waketime, "sleep.waketime")

    # Waking activity: circadian cosine x gamma bursts, with daily bouts laid over it.
    acrophase = _clock(config.acrophase, "acrophase")
    peak_hour = acrophase.hour + acrophase.minute / 60.0
    rate = config.day_mean_counts * (
        1.0 + config.circadian_amplitude * np.cos(2 * np.pi * (timeline.hour - peak_hour) / 24.0)
    )
    rate *= rng.gamma(ACTIVITY_GAMMA_SHAPE, 1.0 / ACTIVITY_GAMMA_SHAPE, size=n)
    for bout in config.bouts:
        for day in range(-1, config.days + 1):
            date = config.start_date + dt.timedelta(days=day)
            start = timeline.position(
                date, _clock(bout.start, "bouts.start"), rng.normal(0, bout.jitter_minutes)
            )
            lo, hi = max(start, 0), min(start + bout.minutes, n)
            if lo < hi:
                rate[lo:hi] = BOUT_COUNTS[bout.intensity] * rng.gamma(
                    ACTIVITY_GAMMA_SHAPE, 1.0 / ACTIVITY_GAMMA_SHAPE, hi - lo
                )

    # Nights: one per evening from the day before the start to the last day.
    state = np.full(n, MinuteState.AWAKE_OUT_OF_BED, dtype=np.int8)
    sleepless_days = {a.day for a in config.anomalies if a.kind == "sleepless_night"}
    nights: list[NightTruth] = []
    in_bed_by_evening: dict[int, tuple[int, int]] = {}
    for day in range(-1, config.days):
        evening = config.start_date + dt.timedelta(days=day)
        bed_date = evening if bedtime.hour >= 12 else evening + dt.timedelta(days=1)
        bed = timeline.position(bed_date, bedtime, rng.normal(0, sleep.jitter_minutes))
        rise = timeline.position(
            evening + dt.timedelta(days=1), waketime, rng.normal(0, sleep.jitter_minutes)
        )
        if not 60 <= rise - bed <= 16 * 60:
            raise ValidationError("bed and rise times must give 1-16 hours in bed", field="sleep")
        sleepless = day in sleepless_days
        in_bed_by_evening[day] = (bed, rise)
        onset, final, awakenings, total = _plant_night(state, bed, rise, sleepless, sleep, rng)
        if bed >= 0 and rise <= n:
            nights.append(
                NightTruth(
                    night_of=evening,
                    in_bed=timeline.interval(bed, rise),
                    sleep_onset=None if onset is None else timeline.at(onset),
                    final_wake=None if final is None else timeline.at(final),
                    awakenings=tuple(timeline.interval(a, b) for a, b in awakenings),
                    total_sleep_minutes=total,
                    sleepless=sleepless,
                )
            )

    anomalies: list[PlantedAnomaly] = []
    for anomaly in config.anomalies:
        date = config.start_date + dt.timedelta(days=anomaly.day)
        if anomaly.kind == "low_activity_day":
            lo = timeline.position(date, dt.time(0))
            hi = timeline.position(date + dt.timedelta(days=1), dt.time(0))
            rate[max(lo, 0) : min(hi, n)] *= LOW_ACTIVITY_FACTOR
        elif anomaly.kind == "unusual_movement":
            lo = timeline.position(date, _clock(anomaly.start, "anomalies.start"))
            hi = lo + anomaly.minutes
            rate[max(lo, 0) : min(hi, n)] = UNUSUAL_MOVEMENT_COUNTS
        elif anomaly.day in in_bed_by_evening:
            lo, hi = in_bed_by_evening[anomaly.day]
        else:
            raise ValidationError("a sleepless night must start within the recording", field="anomalies.day")
        anomalies.append(PlantedAnomaly(anomaly.kind, timeline.interval(max(lo, 0), min(hi, n))))

    # Minute counts by state; every random array is drawn whole, in a fixed order.
    waking = rng.poisson(rate).astype(np.float64)
    in_bed = rng.integers(WAKE_IN_BED_COUNTS[0], WAKE_IN_BED_COUNTS[1] + 1, size=n).astype(np.float64)
    moves = rng.random(n) < SLEEP_MOVEMENT_PROBABILITY
    asleep = np.where(moves, rng.integers(1, SLEEP_MOVEMENT_MAX_COUNTS + 1, size=n), 0).astype(np.float64)
    counts = np.select(
        [state == MinuteState.ASLEEP, state == MinuteState.AWAKE_IN_BED], [asleep, in_bed], default=waking
    )
    # Unusual movement overrides whatever the wearer was doing.
    for planted in anomalies:
        if planted.kind == "unusual_movement":
            lo = int((planted.interval.start - timeline.start) // pd.Timedelta(minutes=1))
            counts[lo : lo + planted.interval.minutes] = waking[lo : lo + planted.interval.minutes]

    non_wear = [_stretch_positions(timeline, config, s) for s in config.non_wear]
    missing = [_stretch_positions(timeline, config, s) for s in config.missing]
    for lo, hi in non_wear:
        counts[lo:hi] = 0.0

    # Split each minute's count over its epochs; missing minutes become missing epochs.
    per_minute = 60 // config.epoch_seconds
    epochs = rng.multinomial(counts.astype(np.int64), np.full(per_minute, 1.0 / per_minute)).astype(
        np.float64
    )
    for lo, hi in missing:
        epochs[lo:hi] = np.nan
    index = pd.date_range(
        timeline.start, periods=n * per_minute, freq=pd.Timedelta(seconds=config.epoch_seconds)
    )
    recording = Recording(
        activity=pd.Series(epochs.ravel(), index=index, name="activity"),
        epoch_seconds=float(config.epoch_seconds),
        device=DeviceInfo(format="synthetic", manufacturer="Novamind", model="Actiwatch-like generator"),
        timezone=config.timezone,
        metadata={"generator": "novamind.pat.domain.synthetic", "seed": str(seed)},
    )
    truth = GroundTruth(
        start=timeline.start,
        nights=tuple(nights),
        missing=tuple(timeline.interval(lo, hi) for lo, hi in missing),
        non_wear=tuple(timeline.interval(lo, hi) for lo, hi in non_wear),
        anomalies=tuple(anomalies),
        minute_state=state,
    )
    return SyntheticRecording(recording=recording, truth=truth)
