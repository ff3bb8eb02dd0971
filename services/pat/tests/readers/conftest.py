"""Shared fixtures for the reader tests: where the real recordings live and their reference numbers.

The recordings and ``pyactigraphy_reference.json`` stay in the shared data folder next to the
repository (``../shared/data/actigraphy``); they are read there, never copied into the project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

#: parents[4] is the repository root (services/pat/tests/readers/conftest.py).
ACTIGRAPHY_DIR = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "actigraphy"
REFERENCE_FILE = ACTIGRAPHY_DIR / "pyactigraphy_reference.json"


@pytest.fixture(scope="session")
def actigraphy_dir() -> Path:
    if not REFERENCE_FILE.is_file():
        pytest.skip(f"real actigraphy recordings not found at {ACTIGRAPHY_DIR} (../shared/data/actigraphy)")
    return ACTIGRAPHY_DIR


@pytest.fixture(scope="session")
def reference(actigraphy_dir: Path) -> dict[str, Any]:
    recordings: dict[str, Any] = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))["recordings"]
    return recordings
