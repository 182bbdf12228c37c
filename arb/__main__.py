"""``python -m arb``, and the ``arb`` command."""

import signal
import sys

from .shutdown import hold_stop_signals


def main() -> int:
    """Hold the stop signals, then run the command line: a stop sent while the engine's modules
    load is not lost (``hold_stop_signals``), however the engine was started. Once the command
    has returned, SIGINT and SIGTERM are ignored: nothing is left for them to stop."""
    hold_stop_signals()
    from .cli import main as cli_main

    code = cli_main()
    # The interpreter's teardown gives the signals their defaults back: a stop in its last moments
    # ended the process with the signal's status (-15, -2), not the command's, after its summary.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
