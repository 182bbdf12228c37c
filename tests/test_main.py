"""``python -m arb`` (arb.__main__): the stop signals around the command."""

from __future__ import annotations

import subprocess
import sys


def test_a_stop_once_the_command_has_returned_leaves_its_exit_status_as_it_was() -> None:
    """The interpreter's teardown gave SIGINT and SIGTERM their defaults back: one sent in the
    process's last moments, after the run's summary, ended it with the signal's status (-15, -2)."""
    script = (
        "import os, signal, sys\n"
        "from arb.__main__ import main\n"
        "sys.argv = ['arb', 'version']\n"
        "code = main()\n"
        "os.kill(os.getpid(), signal.SIGTERM)  # as a stop during the teardown that follows\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("arb ") and result.stderr == ""
