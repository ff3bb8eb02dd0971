"""Rules for a patient's medication list."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from novamind.core.errors import ValidationError

#: A generic (INN) name in lower case: letters and digits, words joined by one space or hyphen.
_GENERIC_NAME = re.compile(r"[a-z][a-z0-9]*(?:[ -][a-z0-9]+)*")
MAX_NAME_LENGTH = 100
MAX_MEDICATIONS = 100


@dataclass(frozen=True, slots=True)
class MedicationEntry:
    """One medication as submitted: generic name, daily dose (value and unit) and dates."""

    name: str
    dose_value: float | None = None
    dose_unit: str = ""
    started_at: datetime | None = None
    stopped_at: datetime | None = None


def validate_medications(entries: Sequence[MedicationEntry]) -> None:
    """Check a complete medication list; raises :class:`ValidationError` naming the entry's field.

    Names are lower-case generic names (``sertraline``, ``lithium carbonate``), each listed once;
    a dose is a finite, non-negative amount with a unit; a stop date is not before the start date.
    """
    if len(entries) > MAX_MEDICATIONS:
        raise ValidationError(f"at most {MAX_MEDICATIONS} medications", field="medications")
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"medications[{index}]"
        if not entry.name:
            raise ValidationError("a medication needs its generic name", field=f"{where}.name")
        if len(entry.name) > MAX_NAME_LENGTH or not _GENERIC_NAME.fullmatch(entry.name):
            raise ValidationError(
                "the name must be a lower-case generic (INN) name, e.g. 'sertraline'", field=f"{where}.name"
            )
        if entry.name in seen:
            raise ValidationError("the medication is listed twice", field=f"{where}.name")
        seen.add(entry.name)
        if entry.dose_value is not None:
            if not math.isfinite(entry.dose_value) or entry.dose_value < 0:
                raise ValidationError(
                    "the daily dose must be a non-negative number", field=f"{where}.daily_dose.value"
                )
            if not entry.dose_unit:
                raise ValidationError("the daily dose needs a unit", field=f"{where}.daily_dose.unit")
        if entry.started_at and entry.stopped_at and entry.stopped_at < entry.started_at:
            raise ValidationError("the stop date is before the start date", field=f"{where}.stopped_at")


#: Antidepressants by generic name (WHO ATC N06A, plus esketamine), for the forecasting
#: covariate ``antidepressant_active``.
ANTIDEPRESSANTS = frozenset(
    {
        "agomelatine",
        "amitriptyline",
        "amoxapine",
        "bupropion",
        "citalopram",
        "clomipramine",
        "desipramine",
        "desvenlafaxine",
        "dosulepin",
        "doxepin",
        "duloxetine",
        "escitalopram",
        "esketamine",
        "fluoxetine",
        "fluvoxamine",
        "imipramine",
        "isocarboxazid",
        "levomilnacipran",
        "maprotiline",
        "mianserin",
        "milnacipran",
        "mirtazapine",
        "moclobemide",
        "nefazodone",
        "nortriptyline",
        "paroxetine",
        "phenelzine",
        "protriptyline",
        "reboxetine",
        "selegiline",
        "sertraline",
        "tianeptine",
        "tranylcypromine",
        "trazodone",
        "trimipramine",
        "vilazodone",
        "vortioxetine",
    }
)


def antidepressant_days(
    entries: Sequence[MedicationEntry], first: date, last: date, time_zone: tzinfo
) -> dict[date, float]:
    """1.0 on each local day from ``first`` to ``last`` when an antidepressant is taken, else 0.0.

    A medication counts from its start day (unknown start: always) up to the day before it
    stops (no stop: for the whole range, so a current prescription is assumed to continue
    through a forecast's horizon).
    """
    spans: list[tuple[date | None, date | None]] = [
        (
            e.started_at.astimezone(time_zone).date() if e.started_at else None,
            e.stopped_at.astimezone(time_zone).date() if e.stopped_at else None,
        )
        for e in entries
        if e.name in ANTIDEPRESSANTS
    ]
    out: dict[date, float] = {}
    day = first
    while day <= last:
        active = any((s is None or s <= day) and (e is None or day < e) for s, e in spans)
        out[day] = 1.0 if active else 0.0
        day += timedelta(days=1)
    return out
