"""Shared fixtures for the test suite."""

from pathlib import Path

import pytest
from datafiles import require_shared_data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the recorded real exchange messages; skips when absent."""
    return require_shared_data()
