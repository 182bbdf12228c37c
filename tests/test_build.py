"""The build: a missing C compiler is one readable line, not a wall of text."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_missing_compiler_gives_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("Cython", reason="building needs Cython (pip install '.[test]')")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "arb_core", tmp_path / "arb_core", ignore=shutil.ignore_patterns("*.so", "*.c", "*.html"))
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "ARB_BUILD_ONLY": "fsm"}
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("arb: building arb_core needs a C compiler and the Python headers"), result.stderr
