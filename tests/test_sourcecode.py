"""Static checks run as tests: ``mypy --strict`` on the package."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_strict_on_arb() -> None:
    if shutil.which("mypy") is None and subprocess.run(
        [sys.executable, "-c", "import mypy"], capture_output=True
    ).returncode:
        pytest.skip("mypy is not installed (pip install '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "arb"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
