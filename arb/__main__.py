"""``python -m arb``, and the ``arb`` command."""

import sys

from .shutdown import hold_stop_signals


def main() -> int:
    """Hold the stop signals, then run the command line: a stop sent while the engine's modules
    load is not lost (``hold_stop_signals``), however the engine was started."""
    hold_stop_signals()
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
