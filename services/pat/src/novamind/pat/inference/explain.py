"""Which hours of the week drove a PAT embedding: attention received, as a 7 x 24 map.

What the map is
---------------
PAT cuts the week into patches of ``patch_size`` minutes and every encoder layer lets each patch
(query) attend to every patch (key) with softmax weights that sum to 1 over the keys. The
*attention received* by patch ``j`` is the weight put on it, averaged over all queries, all heads
and all layers::

    received[j] = mean over layers l, heads h, queries i of A[l, h, i, j]

It sums to 1 over the patches. Each patch's share is spread evenly over its minutes, and the
minutes are summed into (day of week, hour of day) bins, so the map also sums to 1 (uniform
attention gives 1/168 per hour). The PAT authors' explainability notebook shows the same
quantity per patch (njacobsonlab/Pretrained-Actigraphy-Transformer, ``Model Explainability``).

What it is not
--------------
Attention weights say where the model *looked* when mixing patches, not how much each hour
changed the embedding: values pass through projections, residual connections and the
feed-forward layers after the weights are applied, so a heavily attended hour can still matter
little (Jain & Wallace 2019, "Attention is not Explanation", NAACL). Read the map as a
description of the model's focus, not as a causal attribution; it is only as meaningful as the
weights (randomly initialised weights give a map that follows input magnitude, not physiology).

Hours
-----
Weeks start at local midnight of their first day. Without clock labels, minute ``m`` of the week
falls in day ``m // 1440`` and hour ``(m % 1440) // 60``. With the week's local clock labels
(``Week.local_minute_of_day``), hours follow the local clock across daylight saving time: the
repeated hour of a fall-back night collects both of its occurrences, the skipped hour of a
spring-forward night stays empty, and the 60 minutes a spring-forward week runs into an eighth
day are left out of the map, which is then renormalised over the seven days.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from novamind.core.errors import ValidationError

MINUTES_PER_WEEK: Final = 10_080
DAYS: Final = 7
HOURS: Final = 24
_MINUTES_PER_DAY: Final = 1_440
# A daylight-saving change moves the local clock back by at most an hour; a midnight by almost 24 h.
_MIDNIGHT_DROP_MINUTES: Final = 12 * 60

FloatArray = npt.NDArray[np.float64]


def attention_received(attention: Sequence[npt.ArrayLike]) -> FloatArray:
    """Mean attention each key patch receives: (n_patches,), sums to 1.

    ``attention`` holds one array per encoder layer, each (heads, queries, keys) softmax weights
    of one week (rows sum to 1). Raises ``ValidationError`` for no layers or mismatched shapes.
    """
    if not attention:
        raise ValidationError("attention weights of at least one layer are needed", field="attention")
    layers = [np.asarray(a, dtype=np.float64) for a in attention]
    shape = layers[0].shape
    if len(shape) != 3 or shape[1] != shape[2] or any(a.shape != shape for a in layers):
        raise ValidationError(
            "attention weights must be (heads, patches, patches) for every layer", field="attention"
        )
    received = np.mean([a.mean(axis=(0, 1)) for a in layers], axis=0)
    return np.asarray(received / received.sum())


def _day_and_hour(local_minute_of_day: npt.ArrayLike | None) -> tuple[npt.NDArray[np.int64], ...]:
    if local_minute_of_day is None:
        minutes = np.arange(MINUTES_PER_WEEK, dtype=np.int64)
        return minutes // _MINUTES_PER_DAY, (minutes % _MINUTES_PER_DAY) // 60
    labels = np.asarray(local_minute_of_day, dtype=np.int64)
    if labels.shape != (MINUTES_PER_WEEK,):
        raise ValidationError("clock labels must have shape (10080,)", field="local_minute_of_day")
    if labels.min() < 0 or labels.max() >= _MINUTES_PER_DAY:
        raise ValidationError("local clock minutes must lie in 0-1439", field="local_minute_of_day")
    midnight = np.concatenate([[False], np.diff(labels) < -_MIDNIGHT_DROP_MINUTES])
    return np.cumsum(midnight), labels // 60


def hour_of_week_map(
    received: npt.ArrayLike,
    *,
    patch_size: int,
    local_minute_of_day: npt.ArrayLike | None = None,
) -> FloatArray:
    """Spread per-patch attention over the week's hours: a (7, 24) map summing to 1.

    ``received`` (n_patches,) is non-negative attention per patch (:func:`attention_received`);
    ``patch_size`` is in minutes and ``n_patches * patch_size`` must be 10,080.
    ``local_minute_of_day`` (10080,), local clock minute 0-1439 of each minute, makes the hours
    follow the local clock across daylight saving time (see the module docstring); without it
    minute ``m`` is day ``m // 1440``, hour ``(m % 1440) // 60``. Row 0 is the week's first day,
    column 0 the hour from local midnight. Raises ``ValidationError`` for mismatched shapes or
    negative or all-zero attention.
    """
    weights = np.asarray(received, dtype=np.float64)
    if patch_size < 1 or weights.ndim != 1 or weights.size * patch_size != MINUTES_PER_WEEK:
        raise ValidationError(
            f"{weights.size} patches of {patch_size} minutes do not make a week of 10080 minutes",
            field="received",
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValidationError("attention must be finite, non-negative and not all zero", field="received")
    per_minute = np.repeat(weights / patch_size, patch_size)
    day, hour = _day_and_hour(local_minute_of_day)
    inside = day < DAYS
    grid = np.bincount(
        day[inside] * HOURS + hour[inside], weights=per_minute[inside], minlength=DAYS * HOURS
    ).reshape(DAYS, HOURS)
    return np.asarray(grid / grid.sum())
