"""From a request's dated values to a :class:`Panel`, with clear errors for bad input.

Dates are patient-local calendar days ("YYYY-MM-DD"), history ascending without duplicates;
the last dated history entry is the forecast origin (it may itself have no value). Values
outside the target's bounds, non-finite values, unparseable or unordered dates are rejected
naming the offending entry (by position, never by value, since values are PHI). A history needs
``min_observed_days`` observed values. Only the last ``max_history_days`` days are used.

Covariates are matched to the model's schema by name. An unknown name is ignored with a
warning; a name sent twice is an error. Past-only values after the origin are ignored; a
known-future covariate the model knows as such must cover every forecast day.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from novamind.core.daily import DatedValue as DatedValue
from novamind.core.daily import parse_date
from novamind.core.errors import ValidationError
from novamind.forecasting.domain.series import CovariateSchema, Panel, TargetSpec


@dataclass(frozen=True)
class CovariateInput:
    name: str
    values: Sequence[DatedValue]
    known_future: bool


@dataclass(frozen=True)
class PreparedRequest:
    panel: Panel
    origin: int
    origin_date: dt.date
    observed_days: int
    warnings: list[str] = field(default_factory=list)


def prepare(
    history: Sequence[DatedValue],
    covariates: Sequence[CovariateInput],
    *,
    spec: TargetSpec,
    schema: CovariateSchema,
    horizon: int,
    min_observed_days: int,
    max_history_days: int,
    key: str = "request",
) -> PreparedRequest:
    """Validate the inputs and lay them on a day grid ending ``horizon`` days after the origin."""
    if not history:
        raise ValidationError("history is empty", field="history")
    dates: list[dt.date] = []
    for i, entry in enumerate(history):
        day = parse_date(entry.date, f"history[{i}].date")
        if dates and day <= dates[-1]:
            raise ValidationError("dates must be ascending without duplicates", field=f"history[{i}].date")
        if entry.value is not None:
            _check_value(entry.value, spec, f"history[{i}].value")
        dates.append(day)
    origin_date = dates[-1]
    start = max(dates[0], origin_date - dt.timedelta(days=max_history_days - 1))
    length = (origin_date - start).days + 1
    target = np.full(length, np.nan, dtype=np.float64)
    for day, entry in zip(dates, history, strict=True):
        if day >= start and entry.value is not None:
            target[(day - start).days] = entry.value
    observed = int(np.isfinite(target).sum())
    if observed < min_observed_days:
        raise ValidationError(
            f"history too short: {observed} observed days, at least {min_observed_days} are needed",
            field="history",
        )
    warnings: list[str] = []
    past = np.full((length, len(schema.past)), np.nan, dtype=np.float64)
    future = np.full((length + horizon, len(schema.future)), np.nan, dtype=np.float64)
    seen: set[str] = set()
    for c, covariate in enumerate(covariates):
        where = f"covariates[{c}]"
        if not covariate.name:
            raise ValidationError("covariate name is empty", field=f"{where}.series.name")
        if covariate.name in seen:
            raise ValidationError("covariate sent twice", field=f"{where}.series.name")
        seen.add(covariate.name)
        parsed = _parse_series(covariate.values, f"{where}.series.values")
        if covariate.name in schema.future:
            column = schema.future.index(covariate.name)
            for day, value in parsed:
                index = (day - start).days
                if 0 <= index < length + horizon:
                    future[index, column] = value
            if covariate.known_future:
                missing = int(np.isnan(future[length:, column]).sum())
                if missing:
                    raise ValidationError(
                        f"known-future covariate does not cover the horizon ({missing} of "
                        f"{horizon} forecast days without a value)",
                        field=f"{where}.series.values",
                    )
            else:
                future[length:, column] = np.nan
                warnings.append(
                    f"covariate '{covariate.name}' is known in the future to the model but was "
                    "sent as past-only: forecast days treat it as unknown"
                )
        elif covariate.name in schema.past:
            column = schema.past.index(covariate.name)
            for day, value in parsed:
                index = (day - start).days
                if 0 <= index < length:
                    past[index, column] = value
        else:
            warnings.append(f"covariate '{covariate.name}' is not used by the model")
    absent = [name for name in (*schema.past, *schema.future) if name not in seen]
    if absent:
        warnings.append("covariates not supplied, treated as missing: " + ", ".join(absent))
    panel = Panel(key=key, start=start, target=target, past=past, future=future)
    return PreparedRequest(
        panel=panel, origin=length - 1, origin_date=origin_date, observed_days=observed, warnings=warnings
    )


def _check_value(value: float, spec: TargetSpec, field_name: str) -> None:
    if not math.isfinite(value):
        raise ValidationError("value is not a finite number", field=field_name)
    low = -math.inf if spec.lower is None else spec.lower
    high = math.inf if spec.upper is None else spec.upper
    if not low <= value <= high:
        raise ValidationError(f"value is outside the {spec.name} range {low:g}-{high:g}", field=field_name)


def _parse_series(values: Sequence[DatedValue], where: str) -> list[tuple[dt.date, float]]:
    out: list[tuple[dt.date, float]] = []
    previous: dt.date | None = None
    for i, entry in enumerate(values):
        day = parse_date(entry.date, f"{where}[{i}].date")
        if previous is not None and day <= previous:
            raise ValidationError("dates must be ascending without duplicates", field=f"{where}[{i}].date")
        previous = day
        if entry.value is None:
            continue
        if not math.isfinite(entry.value):
            raise ValidationError("value is not a finite number", field=f"{where}[{i}].value")
        out.append((day, entry.value))
    return out
