"""Vectorised parsing of a text column of numbers, naming the first bad line."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from novamind.core.errors import ValidationError
from novamind.pat.readers._grid import FloatArray, Locate

#: Cell texts (case-insensitive) that mean "no value recorded" rather than a malformed number.
MISSING_TEXTS = frozenset({"", "nan", "na", "n/a"})


def parse_numbers(
    cells: Sequence[str | None] | pd.Series,
    what: str,
    locate: Locate,
    *,
    decimal_comma: bool = False,
    allow_missing: bool = True,
) -> FloatArray:
    """Parse ``cells`` to float64, NaN for missing cells.

    ``what`` describes the expected content ("activity counts per epoch") for messages;
    ``locate(i)`` names row ``i``. With ``decimal_comma`` a ``,`` is the decimal separator.
    Raises ValidationError at the first cell that is not a finite, non-negative number (or is
    missing when ``allow_missing`` is false).
    """
    text = pd.Series(cells, dtype=object).fillna("").astype(str).str.strip()
    if decimal_comma:
        text = text.str.replace(",", ".", regex=False)
    missing = text.str.lower().isin(MISSING_TEXTS).to_numpy()
    if not allow_missing and missing.any():
        raise ValidationError(f"missing value; expected {what}", field=locate(int(np.argmax(missing))))
    numbers = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & ~missing
    if bad.any():
        raise ValidationError(f"not a number; expected {what}", field=locate(int(np.argmax(bad))))
    infinite = np.isinf(numbers)
    if infinite.any():
        raise ValidationError(f"not a finite number; expected {what}", field=locate(int(np.argmax(infinite))))
    negative = numbers < 0
    if negative.any():
        raise ValidationError(
            f"negative value; expected {what} (zero or more)", field=locate(int(np.argmax(negative)))
        )
    return numbers
