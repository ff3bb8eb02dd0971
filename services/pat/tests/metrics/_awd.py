"""A minimal reader of CamNtech AWD files, for the reference tests of the metrics only.

AWD: seven header lines (name, start date ``23-Jan-1918``, start time ``13:58``, epoch code,
age, serial, sex), then one count per line, optionally followed by a marker (``71 M``) or
further comma-separated columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

#: AWD epoch codes (header line 4) in seconds.
EPOCH_SECONDS = {1: 15, 2: 30, 4: 60, 8: 120, 20: 300}


def read_awd_counts(path: Path) -> pd.Series:
    """Counts per epoch indexed by epoch start (naive local time)."""
    lines = path.read_text(encoding="latin-1").splitlines()
    start = pd.to_datetime(f"{lines[1].strip()} {lines[2].strip()}", format="%d-%b-%Y %H:%M")
    epoch = pd.Timedelta(seconds=EPOCH_SECONDS[int(lines[3].strip())])
    counts = [float(re.split(r"[,\s]+", line.strip())[0]) for line in lines[7:] if line.strip()]
    index = pd.date_range(start, periods=len(counts), freq=epoch)
    return pd.Series(counts, index=index, dtype="float64", name="activity")
