"""Guard: every arb_core module that loaded is a real extension module, not a shadowing source tree."""

import importlib
import importlib.machinery
import pkgutil
from pathlib import Path

import arb_core

SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent / "arb_core"


def test_every_pyx_is_a_loaded_extension_module() -> None:
    expected = {
        "arb_core." + ".".join(p.relative_to(SOURCE_ROOT).with_suffix("").parts) for p in SOURCE_ROOT.rglob("*.pyx")
    }
    found = {info.name for info in pkgutil.walk_packages(arb_core.__path__, "arb_core.") if not info.ispkg}
    assert expected <= found, f"not built: {sorted(expected - found)}"
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name in sorted(expected):
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(suffixes), f"{name} loaded from {module.__file__}"
