"""Where the recorded real exchange data lives (beside the project root)."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def require_shared_data() -> Path:
    """The recorded data folder, or skip the calling test with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"recorded exchange data not found at {SHARED_DATA}")
    return SHARED_DATA
