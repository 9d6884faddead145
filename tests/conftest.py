"""Shared fixtures: the real benchmark data, when present beside the repository."""

from __future__ import annotations

import os
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


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker gets one core: two workers with two threads each on a 2-core machine
    # oversubscribe it and torch's CPU kernels slow down about tenfold. Subprocesses inherit the setting.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
