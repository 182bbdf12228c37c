"""Child process of the shutdown tests: an engine stand-in whose shutdown steps print their names.

Usage: ``python shutdown_child.py ok|hang|force|requested``. Prints ``ready`` once the signal
handlers are installed; exits with the shutdown's exit code. ``requested``: as ``force``, the
shutdown requested by the program itself (a run's duration over) rather than by a signal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from arb.shutdown import ShutdownManager

STEPS = ("stop scanning", "cancel open orders", "hand residuals to recovery", "close connectors", "close journal")


def step(name: str, hang: bool) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        print(name, flush=True)
        if hang:
            await asyncio.sleep(60)

    return run


async def main(mode: str) -> int:
    async with ShutdownManager(timeout_s=10, force_exit_code=3) as shutdown:
        for index, name in enumerate(STEPS):
            hangs = (mode == "hang" and index == 1) or (mode in ("force", "requested") and index == 0)
            shutdown.add_step(name, step(name, hangs), timeout_s=0.3 if mode == "hang" else 5)
        print("ready", flush=True)
        if mode == "requested":
            shutdown.request_shutdown("run over")
        await shutdown.wait()
    return shutdown.exit_code


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    sys.exit(asyncio.run(main(sys.argv[1])))
