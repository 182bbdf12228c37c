"""``python -m arb``."""

import sys

from .shutdown import hold_stop_signals

hold_stop_signals()  # before the engine's modules load: a stop meanwhile is not lost

from .cli import main  # noqa: E402

sys.exit(main())
