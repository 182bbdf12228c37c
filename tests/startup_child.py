"""Child process of the start-up signal tests: an engine whose markets take a minute to connect.

Usage: ``python startup_child.py ok|hang``. Prints ``connecting`` once the start-up waits on the
venues; ``hang``: stopping that wait takes a minute too. Exits 0 when the start-up was stopped
with ``StartupInterrupted``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController
from arb.errors import StartupInterrupted


class SlowFactory:
    """Connects nothing: waits, as a venue that does not answer."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang

    async def create_exchanges(self, markets: Any, *, dry_run: bool, paper: bool) -> dict[Any, Any]:
        print("connecting", flush=True)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            print("connecting stopped", flush=True)
            if self.hang:
                await asyncio.sleep(60)
            raise
        return {}

    async def close_all(self) -> None:
        print("connections closed", flush=True)


async def main(mode: str) -> int:
    manager = ConfigurationManager()
    manager.load_configuration(dry_run=True)
    controller = ArbitrageController(manager, factory=SlowFactory(mode == "hang"))  # type: ignore[arg-type]
    try:
        await controller.initialize(dry_run=True)
    except StartupInterrupted as exc:
        print(f"interrupted: {exc}", flush=True)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
