"""The simulated venues' own enforcement of their documented request rate limits.

A ``VenueRateLimit`` is one budget as a venue documents it: at most ``limit`` requests in
``window_ms``. ``RateLimits`` keeps, per budget and key (the user, and the market where the
venue counts per market), the times of the requests it took, and takes one only while fewer
than ``limit`` fall in the window ending now: a sliding window, the strictest reading of "N
per second", so an engine that keeps within it keeps within the venue's however the venue
cuts its windows. A refused request is not counted. Each venue's ``sim.py`` states its
numbers from the venue's docs, never from the connectors' budgets, so an engine whose
budgets are wrong meets the venue's refusal here as it would live.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import NamedTuple


class VenueRateLimit(NamedTuple):
    """One documented budget: at most ``limit`` requests in any ``window_ms``."""

    name: str
    limit: int
    window_ms: int


class Admission(NamedTuple):
    """What one request came to against one budget."""

    admitted: bool
    limit: int
    remaining: int  # requests the window still takes after this one (0 when refused)
    wait_ns: int  # 0 when admitted; else how long until the window takes one again


class RateLimits:
    """The requests each budget took, per key; ``refused`` counts the refusals by budget name."""

    def __init__(self) -> None:
        self._taken: dict[tuple[str, Hashable], deque[int]] = {}
        self.refused: Counter[str] = Counter()

    def spend(self, budget: VenueRateLimit, key: Hashable, now_ns: int) -> Admission:
        """Take one request of ``key`` at ``now_ns`` (monotonic) if ``budget`` has room for it."""
        window_ns = budget.window_ms * 1_000_000
        taken = self._taken.setdefault((budget.name, key), deque())
        while taken and taken[0] <= now_ns - window_ns:
            taken.popleft()
        if len(taken) >= budget.limit:
            self.refused[budget.name] += 1
            return Admission(False, budget.limit, 0, taken[0] + window_ns - now_ns)
        taken.append(now_ns)
        return Admission(True, budget.limit, budget.limit - len(taken), 0)
