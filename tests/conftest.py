"""Shared fixtures: the real benchmark data, when present beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (NUDT-SIRST, NUAA-SIRST as released); the test is skipped where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real benchmark data not found at {SHARED_DATA} (only present on the project's machines)"
        )
    return SHARED_DATA
