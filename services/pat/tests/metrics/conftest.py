"""The six pyActigraphy reference recordings and their reference numbers, as fixtures.

The recordings live outside the repository, in ``<repo>/../shared/data/actigraphy``; tests that
need them are skipped when that folder is absent. AWD files are read with the small helper in
``_awd.py``; the others need ``novamind.pat.readers`` and are skipped without it.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[4]
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "actigraphy"
REFERENCE_FILE = DATA_DIR / "pyactigraphy_reference.json"

#: Reference name -> file in DATA_DIR.
RECORDINGS = {
    "example_01": "example_01.AWD",
    "example_02": "example_02.AWD",
    "example_03": "example_03.AWD",
    "test_sample_rpx_eng": "test_sample_rpx_eng.csv",
    "test_sample_agd": "test_sample.agd",
    "test_sample_mtn": "test_sample.mtn",
}


def _awd_module() -> Any:
    spec = importlib.util.spec_from_file_location("metrics_tests_awd", Path(__file__).with_name("_awd.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _reference() -> dict[str, Any]:
    return dict(json.loads(REFERENCE_FILE.read_text())["recordings"])


@cache
def _counts(name: str) -> pd.Series:
    path = DATA_DIR / RECORDINGS[name]
    if path.suffix.upper() == ".AWD":
        counts: pd.Series = _awd_module().read_awd_counts(path)
        return counts
    readers = pytest.importorskip("novamind.pat.readers", reason="the device-file readers are not available")
    return readers.read_recording(path).activity


@dataclass(frozen=True)
class ReferenceRecording:
    """One reference recording: its counts and what pyActigraphy 1.2.2 computed on them."""

    name: str
    counts: pd.Series
    reference: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.reference["metrics"])

    def expected(self, key: str) -> Any:
        """The reference value for ``key``; skips the test when pyActigraphy gave none."""
        value = self.metrics.get(key)
        if value is None or (isinstance(value, dict) and "error" in value):
            pytest.skip(f"pyActigraphy 1.2.2 gives no {key} for {self.name}")
        return value


@pytest.fixture(scope="session", params=list(RECORDINGS))
def recording(request: pytest.FixtureRequest) -> ReferenceRecording:
    if not REFERENCE_FILE.exists():
        pytest.skip(f"reference recordings not found in {DATA_DIR}")
    name = str(request.param)
    return ReferenceRecording(name=name, counts=_counts(name), reference=_reference()[name])
