"""Warnings about events that can repeat thousands of times a second, logged about once a minute."""

from __future__ import annotations

import logging
from collections.abc import Hashable

WARNING_INTERVAL_NS = 60_000_000_000
MAX_KEYS = 256
_OTHER_KEYS = object()  # the key of events whose own key found the table full


class ThrottledWarnings:
    """Warns about each key at most once per ``interval_ns``, naming how many of its events were
    logged at debug level only since the last warning.

    At most ``max_keys`` keys are remembered: when a new one finds them all warned about within
    the interval, its events share one key (keys may come from what a venue sends)."""

    def __init__(
        self, logger: logging.Logger, what: str, interval_ns: int = WARNING_INTERVAL_NS, max_keys: int = MAX_KEYS
    ) -> None:
        self.logger = logger
        self.what = what  # the events, plural, for the count: "scans overflowed"
        self.interval_ns = interval_ns
        self.max_keys = max_keys
        self._last: dict[Hashable, tuple[int, int]] = {}  # key -> (warned at, events since)

    def warn(self, key: Hashable, now_ns: int, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``message % args`` as a warning, or at debug level when ``key`` was warned about less
        than ``interval_ns`` before ``now_ns``; whether it was a warning. ``exc_info``: with the
        exception being handled."""
        last = self._last.get(key)
        if last is None and len(self._last) >= self.max_keys:
            # A key whose interval ended would be warned about anew anyway: only its count since goes.
            self._last = {k: v for k, v in self._last.items() if now_ns - v[0] < self.interval_ns}
            if len(self._last) >= self.max_keys:
                key = _OTHER_KEYS
                last = self._last.get(key)
        if last is not None and now_ns - last[0] < self.interval_ns:
            self._last[key] = (last[0], last[1] + 1)
            self.logger.debug(message, *args, exc_info=exc_info)
            return False
        self._last[key] = (now_ns, 0)
        if last is not None and last[1]:
            message += " (%d more %s since the last warning)"
            args = (*args, last[1], self.what)
        self.logger.warning(message, *args, exc_info=exc_info)
        return True
