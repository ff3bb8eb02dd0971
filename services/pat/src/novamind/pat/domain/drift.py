"""Input drift: per-week summary statistics and their population stability index (PSI).

The model was trained on a population of weeks; when the weeks it now sees differ in level,
spread or rhythm, its embeddings stop meaning what they meant. Each week is reduced to a few
summary statistics (:data:`WEEK_STATISTICS`), and the distribution of each statistic over recent
weeks is compared with its distribution over the training weeks by the PSI.

Population stability index
--------------------------
Siddiqi N. (2006) *Credit Risk Scorecards*, Wiley, ch. 8; Yurdakul B. (2018) *Statistical
Properties of Population Stability Index*, dissertation, Western Michigan University::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over bins ``i``, with ``e_i`` the reference (expected) and ``a_i`` the recent (actual)
proportion of weeks in bin ``i``. Conventional reading: below 0.10 no material shift, 0.10-0.25
a moderate shift, above 0.25 a significant shift (the alert threshold).

Binning, as fitted by :func:`fit_reference`:

* Cut points are the reference sample's empirical quantiles (the inverse of the empirical
  distribution function, Hyndman & Fan type 1, so each is an observed value) at
  ``1/k, 2/k, ..., (k-1)/k`` (``k`` = 10 by default, deciles): each reference bin holds about
  ``1/k`` of the training weeks. The outer bins are open (``-inf``, ``+inf``), so no value
  falls outside.
* Bins are closed on the right: value ``x`` falls in bin ``i`` when ``c_{i-1} < x <= c_i``.
  Tied cut points (a statistic with a point mass, such as many weeks with no zero minute) are
  merged and a cut point at the sample maximum is dropped, so no reference bin is empty.
* A proportion of zero (a bin no recent week fell in) makes ``ln`` infinite; proportions are
  floored at ``epsilon`` (1e-4 by default) before the sum, which caps one empty bin's term
  near ``e_i * ln(e_i / epsilon)`` (0.69 for a decile bin).

Everything here is pure: arrays in, numbers out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from novamind.core.errors import ValidationError

FloatArray = npt.NDArray[np.float64]

#: Version tag of the reference JSON written next to a model artifact.
REFERENCE_FORMAT: Final = "novamind.pat.drift-reference/v1"

#: Bins of a fitted reference (deciles of the training weeks).
DEFAULT_BINS: Final = 10
#: Floor for empty-bin proportions in the PSI sum.
DEFAULT_EPSILON: Final = 1e-4

#: PSI above which a shift is conventionally significant (Siddiqi 2006).
SIGNIFICANT_PSI: Final = 0.25
#: PSI above which a shift is conventionally moderate.
MODERATE_PSI: Final = 0.10

#: Local clock window of the night statistic, minutes after midnight: 00:00 to 05:59.
NIGHT_START_MINUTE: Final = 0
NIGHT_END_MINUTE: Final = 6 * 60

_MINUTES_PER_DAY: Final = 1440

#: The per-week summary statistics, in the order dashboards list them. All are over the week's
#: recorded (non-missing) minutes:
#:
#: * ``mean`` — mean activity, counts/min;
#: * ``sd`` — population standard deviation of activity, counts/min;
#: * ``fraction_zero`` — fraction (0-1) of minutes with zero counts (sedentary, asleep or off
#:   the wrist);
#: * ``log_mean`` — mean of ``ln(1 + counts)``, the level on the scale where the heavy right
#:   tail of activity counts does not dominate;
#: * ``night_mean`` — mean activity between 00:00 and 06:00 local time, counts/min.
WEEK_STATISTICS: Final[tuple[str, ...]] = ("mean", "sd", "fraction_zero", "log_mean", "night_mean")


def week_statistics(
    counts: npt.ArrayLike, local_minute_of_day: npt.ArrayLike | None = None
) -> dict[str, float]:
    """The :data:`WEEK_STATISTICS` of one week of minute-level activity counts.

    ``counts`` (n,) counts per minute, NaN = missing (usually n = 10,080). ``local_minute_of_day``
    (n,) is each minute's local clock minute (0-1439); when omitted the week is taken to start at
    local midnight with no clock change, i.e. minute ``j`` is at ``j mod 1440``.

    ``night_mean`` is NaN when no night minute was recorded. Raises :class:`ValidationError` when
    the arrays are not one-dimensional and of equal length, a count is negative or infinite, or
    no minute was recorded.
    """
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValidationError("counts must be a non-empty one-dimensional array", field="counts")
    if local_minute_of_day is None:
        clock = np.arange(values.size) % _MINUTES_PER_DAY
    else:
        clock = np.asarray(local_minute_of_day)
        if clock.shape != values.shape:
            raise ValidationError(
                "local_minute_of_day must have the shape of counts", field="local_minute_of_day"
            )
    present = ~np.isnan(values)
    recorded = values[present]
    if recorded.size == 0:
        raise ValidationError("the week has no recorded minute", field="counts")
    if not np.all(np.isfinite(recorded)) or np.any(recorded < 0):
        raise ValidationError("counts must be finite and non-negative", field="counts")
    night = recorded[(clock[present] >= NIGHT_START_MINUTE) & (clock[present] < NIGHT_END_MINUTE)]
    return {
        "mean": float(recorded.mean()),
        "sd": float(recorded.std()),
        "fraction_zero": float(np.mean(recorded == 0)),
        "log_mean": float(np.log1p(recorded).mean()),
        "night_mean": float(night.mean()) if night.size else float("nan"),
    }


@dataclass(frozen=True, eq=False)
class BinnedReference:
    """One statistic's reference distribution: cut points and the proportion in each bin.

    ``cut_points`` (k-1,) strictly increasing; ``proportions`` (k,) non-negative, summing to 1.
    Raises :class:`ValidationError` when either is malformed.
    """

    cut_points: FloatArray
    proportions: FloatArray

    def __post_init__(self) -> None:
        cuts, props = self.cut_points, self.proportions
        if cuts.ndim != 1 or props.ndim != 1 or props.size != cuts.size + 1:
            raise ValidationError("a reference needs k-1 cut points and k proportions", field="reference")
        if not (np.all(np.isfinite(cuts)) and np.all(np.diff(cuts) > 0)):
            raise ValidationError("reference cut points must be finite and increasing", field="reference")
        if np.any(props < 0) or not np.isclose(props.sum(), 1.0, atol=1e-6):
            raise ValidationError(
                "reference proportions must be non-negative and sum to 1", field="reference"
            )

    def proportions_of(self, sample: npt.ArrayLike) -> FloatArray:
        """Proportion (0-1) of ``sample`` in each bin; NaN values are ignored.

        Raises :class:`ValidationError` when no value is left.
        """
        values = np.asarray(sample, dtype=np.float64).ravel()
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise ValidationError("no values to bin", field="sample")
        # side="left": x equal to a cut point falls in the bin that cut point closes (right-closed).
        bins = np.searchsorted(self.cut_points, values, side="left")
        counts = np.bincount(bins, minlength=self.proportions.size)
        return np.asarray(counts / values.size, dtype=np.float64)


def fit_binned_reference(sample: npt.ArrayLike, n_bins: int = DEFAULT_BINS) -> BinnedReference:
    """Quantile bins of ``sample`` (see the module's binning rules) and its proportions in them.

    NaN values are ignored. Raises :class:`ValidationError` when ``n_bins`` < 2 or fewer than
    ``n_bins`` values remain.
    """
    if n_bins < 2:
        raise ValidationError("at least two bins are needed", field="n_bins")
    values = np.asarray(sample, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size < n_bins:
        raise ValidationError(f"a reference needs at least {n_bins} values", field="sample")
    quantiles = np.quantile(values, np.arange(1, n_bins) / n_bins, method="inverted_cdf")
    cut_points = np.unique(quantiles)  # merges tied cut points
    # A cut point at the sample maximum would leave the top bin empty by construction.
    cut_points = cut_points[cut_points < values.max()]
    provisional = BinnedReference(cut_points, np.full(cut_points.size + 1, 1.0 / (cut_points.size + 1)))
    return BinnedReference(cut_points, provisional.proportions_of(values))


def population_stability_index(
    expected: npt.ArrayLike, actual: npt.ArrayLike, *, epsilon: float = DEFAULT_EPSILON
) -> float:
    """PSI of the ``actual`` bin proportions against the ``expected`` ones (same bins, 0-1 each).

    Proportions are floored at ``epsilon`` (see the module docstring). Returns a non-negative
    number: 0 for identical distributions, above :data:`SIGNIFICANT_PSI` for a significant
    shift. Raises :class:`ValidationError` on mismatched shapes or a non-positive ``epsilon``.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValidationError("expected and actual need the same bins", field="actual")
    if not epsilon > 0:
        raise ValidationError("epsilon must be positive", field="epsilon")
    e = np.maximum(e, epsilon)
    a = np.maximum(a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def sample_psi(
    reference: BinnedReference, sample: npt.ArrayLike, *, epsilon: float = DEFAULT_EPSILON
) -> float:
    """PSI of ``sample`` (raw values, NaN ignored) against a fitted reference distribution."""
    return population_stability_index(
        reference.proportions, reference.proportions_of(sample), epsilon=epsilon
    )


@dataclass(frozen=True, eq=False)
class DriftReference:
    """The training-time distribution of every week statistic, stored with the model artifact.

    ``statistics`` maps each name in :data:`WEEK_STATISTICS` that could be fitted to its bins;
    ``n_weeks`` is the number of training weeks it was fitted on.
    """

    statistics: Mapping[str, BinnedReference]
    n_weeks: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``format`` :data:`REFERENCE_FORMAT`): cut points are the reference quantiles."""
        return {
            "format": REFERENCE_FORMAT,
            "n_weeks": self.n_weeks,
            "statistics": {
                name: {
                    "cut_points": [float(c) for c in ref.cut_points],
                    "proportions": [float(p) for p in ref.proportions],
                }
                for name, ref in self.statistics.items()
            },
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> DriftReference:
        """Parse :meth:`to_json`'s form. Raises :class:`ValidationError` when it is malformed."""
        if document.get("format") != REFERENCE_FORMAT:
            raise ValidationError(f"drift reference format must be {REFERENCE_FORMAT!r}", field="format")
        try:
            statistics = {
                str(name): BinnedReference(
                    np.asarray(entry["cut_points"], dtype=np.float64),
                    np.asarray(entry["proportions"], dtype=np.float64),
                )
                for name, entry in document["statistics"].items()
            }
            n_weeks = int(document["n_weeks"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValidationError(
                f"malformed drift reference ({type(exc).__name__})", field="statistics"
            ) from None
        unknown = sorted(set(statistics) - set(WEEK_STATISTICS))
        if unknown:
            raise ValidationError(f"unknown week statistics {unknown}", field="statistics")
        return cls(statistics, n_weeks)


def fit_reference(weeks: Sequence[Mapping[str, float]], n_bins: int = DEFAULT_BINS) -> DriftReference:
    """Fit a :class:`DriftReference` from the :func:`week_statistics` of the training weeks.

    A statistic with fewer than ``n_bins`` non-NaN values is left out. Raises
    :class:`ValidationError` when none can be fitted.
    """
    statistics: dict[str, BinnedReference] = {}
    for name in WEEK_STATISTICS:
        values = np.asarray([week.get(name, np.nan) for week in weeks], dtype=np.float64)
        if np.count_nonzero(~np.isnan(values)) >= n_bins:
            statistics[name] = fit_binned_reference(values, n_bins)
    if not statistics:
        raise ValidationError(f"a drift reference needs at least {n_bins} weeks", field="weeks")
    return DriftReference(statistics, len(weeks))
