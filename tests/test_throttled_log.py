"""arb/throttled_log.py: one warning per key and interval, with a bounded table of keys."""

from __future__ import annotations

import logging

import pytest

from arb.throttled_log import ThrottledWarnings

log = logging.getLogger("tests.throttled_log")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_each_key_is_warned_about_once_per_interval_with_the_count_since(caplog: pytest.LogCaptureFixture) -> None:
    warnings = ThrottledWarnings(log, "events", interval_ns=10)
    with caplog.at_level(logging.DEBUG, logger=log.name):
        assert [warnings.warn(key, now, "%s", key) for key, now in (("a", 0), ("a", 5), ("b", 6), ("a", 10))] == [
            True, False, True, True
        ]
    assert warnings_of(caplog) == ["a", "b", "a (1 more events since the last warning)"]


def test_keys_past_the_bound_share_one_warning_until_older_ones_expire(caplog: pytest.LogCaptureFixture) -> None:
    """Keys taken from what a venue sends (its error messages) could grow the table without end."""
    warnings = ThrottledWarnings(log, "events", interval_ns=100, max_keys=3)
    with caplog.at_level(logging.WARNING, logger=log.name):
        for n in range(1000):
            warnings.warn(f"key {n}", 0, "key %d", n)
        assert len(warnings._last) <= 4
        assert warnings_of(caplog) == ["key 0", "key 1", "key 2", "key 3"]  # key 3 on: one shared warning
        warnings.warn("key 1000", 100, "key %d", 1000)  # the others' interval ended: a key of its own again
        warnings.warn("key 1000", 101, "key %d", 1000)
    assert warnings_of(caplog)[4:] == ["key 1000"] and "key 1000" in warnings._last
