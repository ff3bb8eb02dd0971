"""Patient-reported symptom instruments: validation and total scores.

* PHQ-9 (Kroenke, Spitzer & Williams, 2001): 9 items scored 0-3, total 0-27.
* GAD-7 (Spitzer et al., 2006): 7 items scored 0-3, total 0-21.
* Mood: one rating on a 0-10 numeric rating scale (0 = worst, 10 = best), no items.

Errors name the offending field and the rule, never the patient's answers.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

from novamind.core.errors import ValidationError


class Instrument(enum.StrEnum):
    """A symptom instrument (the names of ``common.v1.SymptomInstrument`` without the prefix)."""

    PHQ9 = "PHQ9"
    GAD7 = "GAD7"
    MOOD = "MOOD"


#: Items of each questionnaire; every item is scored 0-3.
ITEM_COUNTS: dict[Instrument, int] = {Instrument.PHQ9: 9, Instrument.GAD7: 7}
ITEM_MAX = 3
#: Range of the mood rating.
MOOD_MIN, MOOD_MAX = 0.0, 10.0


def score_report(
    instrument: Instrument | None,
    items: Sequence[int],
    *,
    total: float | None = None,
    rating_field: str = "total",
) -> float:
    """The report's total: the item sum (PHQ-9, GAD-7) or the mood rating (0-10).

    ``total`` is the total the sender computed (checked against the items) or, for a mood report,
    the rating itself, read from the field named ``rating_field``. Raises
    :class:`ValidationError` naming the field that breaks a rule.
    """
    if instrument is None:
        raise ValidationError("the instrument must be PHQ9, GAD7 or MOOD", field="instrument")
    if instrument is Instrument.MOOD:
        if items:
            raise ValidationError("a mood report has no item responses", field="item_responses")
        if total is None:
            raise ValidationError("a mood report needs its rating", field=rating_field)
        if not math.isfinite(total) or not MOOD_MIN <= total <= MOOD_MAX:
            raise ValidationError("the mood rating must be between 0 and 10", field=rating_field)
        return float(total)
    expected = ITEM_COUNTS[instrument]
    if len(items) != expected:
        raise ValidationError(
            f"{instrument.value} needs exactly {expected} item responses, got {len(items)}",
            field="item_responses",
        )
    for index, item in enumerate(items):
        if not 0 <= item <= ITEM_MAX:
            raise ValidationError(
                f"each {instrument.value} item is scored 0-{ITEM_MAX}", field=f"item_responses[{index}]"
            )
    computed = float(sum(items))
    if total is not None and (not math.isfinite(total) or total != computed):
        raise ValidationError("the total does not equal the sum of the item responses", field=rating_field)
    return computed
