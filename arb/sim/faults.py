"""Fault plans for the simulated venues: what to break, when, and a count of what was broken.

The serving layer asks the plan at each decision point (``on_order`` before handling an
order request, ``on_book_update`` before pushing a book update, ``clock_skew_ms`` when
stamping times) and applies the answer; the plan itself does no I/O. Faults come from
scheduled one-shot triggers first (``fail_next_orders``, ``at_update``), then from per-kind
probabilities drawn from one seeded RNG, so a plan with the same seed and the same calls
injects the same faults. ``injected`` counts every fault handed out, so a test can assert
that each one was observed.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Mapping
from enum import Enum
from typing import NamedTuple

import msgspec

from ..exchanges.errors import ErrorCategory

_PPM = 1_000_000


class OrderFaultKind(str, Enum):
    """Faults of an order request."""

    REJECT = "reject"  # answer with an error of ``category``; nothing placed
    PARTIAL_FILL = "partial_fill"  # fill only ``fill_ppm`` of what would fill, expire the rest
    RATE_LIMIT = "rate_limit"  # HTTP 429 with ``retry_after_ms``; nothing placed
    TIMEOUT_PLACED = "timeout_placed"  # place the order, then never answer (outcome unknown to the client)


class StreamFaultKind(str, Enum):
    """Faults of a market-data stream at one book update."""

    DISCONNECT = "disconnect"  # close the connection instead of sending
    GAP = "gap"  # drop this update, so the next one skips a sequence id
    STALL = "stall"  # hold this and later updates for ``stall_ms`` (stale data)
    DUPLICATE = "duplicate"  # send this update twice
    REORDER = "reorder"  # send this update after the next one
    MALFORMED = "malformed"  # send a corrupted frame in its place


class OrderFault(NamedTuple):
    """An order fault and its parameters (``None`` where they do not apply)."""

    kind: OrderFaultKind
    category: ErrorCategory | None = None
    fill_ppm: int | None = None
    retry_after_ms: int | None = None


class StreamFault(NamedTuple):
    """A stream fault and its stall length (0 unless STALL)."""

    kind: StreamFaultKind
    stall_ms: int = 0


class VenueFaults(msgspec.Struct, frozen=True, kw_only=True):
    """Per-kind probabilities (parts per million) and fault parameters of one venue."""

    order_ppm: Mapping[OrderFaultKind, int] = {}
    stream_ppm: Mapping[StreamFaultKind, int] = {}
    reject_category: ErrorCategory = ErrorCategory.ORDER_REJECTED
    partial_fill_ppm: int = 500_000
    retry_after_ms: int = 1_000
    stall_ms: int = 2_000
    clock_skew_ms: int = 0
    # How long after an order ends the venue still finds it by client id (ms); None: the venue's own
    # rule (Gate.io spot only while open, futures 60 s; otherwise as long as by its id).
    client_id_lookup_ms: int | None = None
    # Venue symbols listed but closed to API orders (MEXC: left out of defaultSymbols, orders refused).
    api_refused_symbols: frozenset[str] = frozenset()
    # For how long after it is placed a query does not find an order yet (ms; MEXC answers -2013).
    query_lag_ms: int = 0


class FaultPlan:
    """Seeded, scriptable fault decisions per venue (a venue is any key: ``ExchangeName`` value, name)."""

    def __init__(self, seed: int = 0, venues: Mapping[str, VenueFaults] | None = None) -> None:
        self._rng = random.Random(seed)
        self._venues: dict[str, VenueFaults] = {}
        for venue, faults in (venues or {}).items():
            self.configure(venue, faults)
        self._next_orders: dict[str, deque[OrderFault]] = {}
        self._at_update: dict[str, dict[int, StreamFault]] = {}
        self._updates_seen: Counter[str] = Counter()
        self.injected: Counter[tuple[str, str]] = Counter()

    def configure(self, venue: str, faults: VenueFaults) -> None:
        """Set a venue's probabilities and parameters (replacing earlier ones)."""
        probabilities: list[tuple[Enum, int]] = [*faults.order_ppm.items(), *faults.stream_ppm.items()]
        for kind, ppm in probabilities:
            if not 0 <= ppm <= _PPM:
                raise ValueError(f"fault plan {venue}: probability of {kind.name} is {ppm} ppm, not in 0..{_PPM}")
        if not 0 <= faults.partial_fill_ppm <= _PPM:
            raise ValueError(f"fault plan {venue}: partial_fill_ppm {faults.partial_fill_ppm} not in 0..{_PPM}")
        if faults.retry_after_ms < 0 or faults.stall_ms < 0 or faults.query_lag_ms < 0:
            raise ValueError(f"fault plan {venue}: retry_after_ms, stall_ms and query_lag_ms must be >= 0")
        self._venues[venue] = faults

    def fail_next_orders(
        self,
        venue: str,
        kind: OrderFaultKind,
        count: int = 1,
        *,
        category: ErrorCategory | None = None,
        fill_ppm: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """The venue's next ``count`` order requests get ``kind`` (unset parameters default to the venue's)."""
        if count < 1:
            raise ValueError(f"fault plan {venue}: count {count} must be >= 1")
        fault = self._order_fault(venue, kind)
        if category is not None:
            fault = fault._replace(category=category)
        if fill_ppm is not None:
            if not 0 <= fill_ppm <= _PPM:
                raise ValueError(f"fault plan {venue}: fill_ppm {fill_ppm} not in 0..{_PPM}")
            fault = fault._replace(fill_ppm=fill_ppm)
        if retry_after_ms is not None:
            fault = fault._replace(retry_after_ms=retry_after_ms)
        self._next_orders.setdefault(venue, deque()).extend([fault] * count)

    def at_update(self, venue: str, update_number: int, kind: StreamFaultKind, stall_ms: int | None = None) -> None:
        """The venue's ``update_number``-th book update (1-based, counted by ``on_book_update``) gets ``kind``."""
        if update_number < 1:
            raise ValueError(f"fault plan {venue}: update number {update_number} must be >= 1")
        fault = self._stream_fault(venue, kind)
        if stall_ms is not None:
            fault = fault._replace(stall_ms=stall_ms)
        self._at_update.setdefault(venue, {})[update_number] = fault

    def on_order(self, venue: str) -> OrderFault | None:
        """The fault to inject into this order request of ``venue``, or None."""
        queued = self._next_orders.get(venue)
        fault: OrderFault | None = queued.popleft() if queued else None
        if fault is None:
            faults = self._venues.get(venue)
            if faults is not None:
                kind = self._draw(faults.order_ppm)
                fault = None if kind is None else self._order_fault(venue, kind)
        if fault is not None:
            self.injected[(venue, fault.kind.value)] += 1
        return fault

    def on_book_update(self, venue: str) -> StreamFault | None:
        """The fault to inject into this book update of ``venue``, or None."""
        self._updates_seen[venue] += 1
        fault = self._at_update.get(venue, {}).pop(self._updates_seen[venue], None)
        if fault is None:
            faults = self._venues.get(venue)
            if faults is not None:
                kind = self._draw(faults.stream_ppm)
                fault = None if kind is None else self._stream_fault(venue, kind)
        if fault is not None:
            self.injected[(venue, fault.kind.value)] += 1
        return fault

    def clock_skew_ms(self, venue: str) -> int:
        """How far the venue's clock runs ahead (negative: behind) of the true time, in ms."""
        faults = self._venues.get(venue)
        return 0 if faults is None else faults.clock_skew_ms

    def client_id_lookup_ms(self, venue: str) -> int | None:
        """How long after an order ends ``venue`` still finds it by client id (ms); None: the venue's own rule."""
        faults = self._venues.get(venue)
        return None if faults is None else faults.client_id_lookup_ms

    def query_lag_ms(self, venue: str) -> int:
        """For how long after it is placed ``venue``'s queries do not find an order yet (ms)."""
        faults = self._venues.get(venue)
        return 0 if faults is None else faults.query_lag_ms

    def api_refused_symbols(self, venue: str) -> frozenset[str]:
        """The venue symbols ``venue`` lists but refuses API orders on."""
        faults = self._venues.get(venue)
        return frozenset() if faults is None else faults.api_refused_symbols

    def count(self, venue: str, kind: OrderFaultKind | StreamFaultKind) -> int:
        """How many faults of ``kind`` were handed out for ``venue``."""
        return self.injected[(venue, kind.value)]

    def _draw(self, ppm: Mapping[OrderFaultKind, int] | Mapping[StreamFaultKind, int]) -> OrderFaultKind | StreamFaultKind | None:
        if not ppm:
            return None
        # One draw per decision; the kinds share the million in a fixed order.
        roll = self._rng.randrange(_PPM)
        for kind in sorted(ppm, key=_kind_value):
            roll -= ppm[kind]  # type: ignore[index]
            if roll < 0:
                return kind
        return None

    def _order_fault(self, venue: str, kind: OrderFaultKind | StreamFaultKind) -> OrderFault:
        faults = self._venues.get(venue, VenueFaults())
        if kind is OrderFaultKind.REJECT:
            return OrderFault(OrderFaultKind.REJECT, category=faults.reject_category)
        if kind is OrderFaultKind.PARTIAL_FILL:
            return OrderFault(OrderFaultKind.PARTIAL_FILL, fill_ppm=faults.partial_fill_ppm)
        if kind is OrderFaultKind.RATE_LIMIT:
            return OrderFault(OrderFaultKind.RATE_LIMIT, category=ErrorCategory.RATE_LIMITED, retry_after_ms=faults.retry_after_ms)
        if kind is OrderFaultKind.TIMEOUT_PLACED:
            return OrderFault(OrderFaultKind.TIMEOUT_PLACED, category=ErrorCategory.OUTCOME_UNKNOWN)
        raise ValueError(f"fault plan {venue}: {kind!r} is not an order fault")

    def _stream_fault(self, venue: str, kind: OrderFaultKind | StreamFaultKind) -> StreamFault:
        if not isinstance(kind, StreamFaultKind):
            raise ValueError(f"fault plan {venue}: {kind!r} is not a stream fault")
        stall = self._venues.get(venue, VenueFaults()).stall_ms if kind is StreamFaultKind.STALL else 0
        return StreamFault(kind, stall)


def _kind_value(kind: OrderFaultKind | StreamFaultKind) -> str:
    return kind.name
