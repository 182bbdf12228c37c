"""Market data sources of the simulated venues: a seeded synthetic market and recorded frames.

``SyntheticMarket`` drives the market's own liquidity of several ``MatchingEngine`` books
from one shared mid-price random walk; every step returns the sequenced public changes
(``BookUpdate``) the serving layer pushes. All emitted prices and sizes are exact ints
(ticks, lots); randomness comes from one ``random.Random(seed)``, so the same seed and the
same ``step`` times give the same market.

``read_recording`` / ``merge_recordings`` / ``paced`` replay the cryptofeed recording
format (``/work/shared/data/README.md``) as raw frame bytes with their receive times; frames
are not parsed here, the serving layer re-sends them as they are.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from fractions import Fraction
from math import log
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec
from arb_core.book import ASK, BID

from ..instruments import _scaled
from ..types import ExchangeName
from .matching import BookUpdate, MatchingEngine

COMMON_DECIMALS = 12  # the shared walk's price unit is 10**-12 quote
STARTED_KEPT = 1_000  # dislocations ``SyntheticMarket.dislocations_started`` remembers, the latest
_BPS = 10_000
_PPM = 1_000_000


class MarketSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How one venue market quotes the shared price: spread, depth profile, noise, lag, rate, basis."""

    exchange: ExchangeName
    symbol: str
    spread_ticks: int = 2  # best ask - best bid of the market's own liquidity
    depth_levels: int = 100  # levels per side, one per tick from the best
    base_size_lots: int = 10  # size at the best level
    size_slope_lots: int = 2  # added per level of distance from the best
    noise_ticks: int = 0  # per-update uniform noise on the mid, +-
    lag_ns: int = 0  # this market sees the shared walk this late
    updates_per_second: int = 1_000
    basis_bps: int = 0  # futures premium over the shared mid
    near_top_levels: int = 20  # mean distance from the best of size changes


class Dislocation(msgspec.Struct, frozen=True, kw_only=True):
    """One market's price shifted by ``bps`` (signed) from ``start_ns`` for ``duration_ns``."""

    exchange: ExchangeName
    symbol: str
    start_ns: int
    duration_ns: int
    bps: int


class SyntheticConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The shared walk, the markets that quote it and the dislocations."""

    seed: int
    start_price: Decimal  # quote per base unit
    markets: tuple[MarketSpec, ...]
    walk_interval_ns: int = 1_000_000
    volatility_ppm: int = 20  # each walk step moves the mid by a uniform +-volatility_ppm
    dislocations: tuple[Dislocation, ...] = ()
    random_dislocations_per_minute: int = 0
    random_dislocation_bps: int = 50
    random_dislocation_ns: int = 2_000_000_000


class _Quoter:
    """Generator state of one market: where its own best bid/ask are and when it updates next.

    ``sizes[distance]`` is ``(low, width, bits)`` of the size drawn at ``distance`` levels from
    the best: ``low + r`` for the first ``r = getrandbits(bits)`` below ``width``, which is
    exactly what ``Random.randint(low, low + width - 1)`` draws, without its call layers
    (``_draw`` writes the same loop inline where it is hot).
    """

    __slots__ = (
        "spec", "engine", "tick_common", "bid", "ask", "interval_ns", "next_ns", "sizes", "near_top_rate", "noise_bits",
        "depth", "spread", "half_spread", "lag_ns", "basis_bps", "noise", "apply",
    )

    def __init__(self, spec: MarketSpec, engine: MatchingEngine, start_ns: int) -> None:
        self.spec = spec
        self.engine = engine
        self.apply = engine.apply_market_levels
        # The spec's fields the hot path reads, as plain slots.
        self.depth = spec.depth_levels
        self.spread = spec.spread_ticks
        self.half_spread = spec.spread_ticks // 2
        self.lag_ns = spec.lag_ns
        self.basis_bps = spec.basis_bps
        self.noise = spec.noise_ticks
        instrument = engine.instrument
        self.tick_common = _scaled(instrument.tick_size, COMMON_DECIMALS)
        self.bid = 0
        self.ask = 0
        self.interval_ns = max(1, 1_000_000_000 // spec.updates_per_second)
        self.next_ns = start_ns + self.interval_ns
        self.sizes: list[tuple[int, int, int]] = []
        for distance in range(spec.depth_levels):
            size = spec.base_size_lots + spec.size_slope_lots * distance
            low = max(1, size // 2)
            width = size + size // 2 - low + 1
            self.sizes.append((low, width, width.bit_length()))
        self.near_top_rate = 1.0 / spec.near_top_levels
        self.noise_bits = (2 * spec.noise_ticks + 1).bit_length()


def _draw(rng: random.Random, low: int, width: int, bits: int) -> int:
    """``rng.randint(low, low + width - 1)`` for ``bits = width.bit_length()``: the same draws."""
    r = rng.getrandbits(bits)
    while r >= width:
        r = rng.getrandbits(bits)
    return low + r


class SyntheticMarket:
    """Correlated synthetic books across venues, driven through their matching engines."""

    def __init__(self, config: SyntheticConfig, engines: Sequence[MatchingEngine], start_ns: int) -> None:
        by_key = {(engine.exchange, engine.symbol): engine for engine in engines}
        self.config = config
        self._rng = random.Random(config.seed)
        self._quoters: list[_Quoter] = []
        for spec in config.markets:
            engine = by_key.get((spec.exchange, spec.symbol))
            if engine is None:
                raise ValueError(f"synthetic market: no engine for {spec.exchange.value} {spec.symbol}")
            if spec.spread_ticks < 1 or spec.depth_levels < 1 or spec.updates_per_second < 1 or spec.base_size_lots < 1:
                raise ValueError(f"synthetic market {spec.exchange.value} {spec.symbol}: spread, depth, rate and size must be >= 1")
            self._quoters.append(_Quoter(spec, engine, start_ns))
        if config.walk_interval_ns < 1 or config.volatility_ppm < 0:
            raise ValueError("synthetic market: walk_interval_ns must be >= 1 and volatility_ppm >= 0")
        self._mid = _scaled(config.start_price, COMMON_DECIMALS)
        self._walk_ns = start_ns
        max_lag = max((spec.lag_ns for spec in config.markets), default=0)
        self._history: deque[tuple[int, int]] = deque(maxlen=max_lag // config.walk_interval_ns + 2)
        self._history.append((start_ns, self._mid))
        # Those still to end; each book update looks through them, so an ended one is dropped.
        self._dislocations: list[Dislocation] = list(config.dislocations)
        self._started: set[int] = set()  # ``id`` of those in ``_dislocations`` that have started
        self.dislocations_started: deque[Dislocation] = deque(maxlen=STARTED_KEPT)
        for quoter in self._quoters:
            self._initial_book(quoter, start_ns)

    @property
    def mid_common(self) -> int:
        """The shared mid in units of ``10**-COMMON_DECIMALS`` quote."""
        return self._mid

    def step(self, now_ns: int) -> list[BookUpdate]:
        """Advance to ``now_ns``: every update due by then, in time order (ties in market order)."""
        self._advance_walk(now_ns)
        updates: list[BookUpdate] = []
        append = updates.append
        update = self._update
        for quoter in self._quoters:
            next_ns = quoter.next_ns
            interval_ns = quoter.interval_ns
            while next_ns <= now_ns:
                append(update(quoter, next_ns))
                next_ns += interval_ns
            quoter.next_ns = next_ns
        if len(self._quoters) > 1:
            updates.sort(key=_update_time)
        if self._dislocations and self._quoters:
            self._drop_ended(min(quoter.next_ns for quoter in self._quoters))
        return updates

    def _drop_ended(self, next_ns: int) -> None:
        """Forget the dislocations over before ``next_ns``, the earliest time a book is updated next:
        kept, a run of days would look through tens of thousands of them on every update."""
        ended = [event for event in self._dislocations if event.start_ns + event.duration_ns <= next_ns]
        if ended:
            for event in ended:
                self._started.discard(id(event))
            self._dislocations = [event for event in self._dislocations if event.start_ns + event.duration_ns > next_ns]

    # -- the shared walk ---------------------------------------------------------------------------

    def _advance_walk(self, now_ns: int) -> None:
        config = self.config
        rng = self._rng
        vol = config.volatility_ppm
        vol_bits = (2 * vol + 1).bit_length()
        # Probability per walk step of a random dislocation, in ppm.
        chance_ppm = config.random_dislocations_per_minute * config.walk_interval_ns * _PPM // 60_000_000_000
        while self._walk_ns + config.walk_interval_ns <= now_ns:
            self._walk_ns += config.walk_interval_ns
            if vol:
                self._mid += self._mid * _draw(rng, -vol, 2 * vol + 1, vol_bits) // _PPM
            self._history.append((self._walk_ns, self._mid))
            if chance_ppm and self._quoters and rng.randrange(_PPM) < chance_ppm:
                spec = self._quoters[rng.randrange(len(self._quoters))].spec
                bps = config.random_dislocation_bps * rng.choice((-1, 1))
                event = Dislocation(
                    exchange=spec.exchange, symbol=spec.symbol, start_ns=self._walk_ns,
                    duration_ns=config.random_dislocation_ns, bps=bps,
                )
                self._dislocations.append(event)

    def _offset_bps(self, spec: MarketSpec, time_ns: int) -> int:
        offset = spec.basis_bps
        for event in self._dislocations:
            if (
                event.exchange is spec.exchange
                and event.symbol == spec.symbol
                and event.start_ns <= time_ns < event.start_ns + event.duration_ns
            ):
                offset += event.bps
                if id(event) not in self._started:
                    self._started.add(id(event))
                    self.dislocations_started.append(event)
        return offset

    def _target(self, quoter: _Quoter, time_ns: int) -> tuple[int, int]:
        offset = self._offset_bps(quoter.spec, time_ns) if self._dislocations else quoter.basis_bps
        seen_ns = time_ns - quoter.lag_ns
        history = self._history
        walk_ns, mid = history[-1]
        if walk_ns > seen_ns:
            # the last walk step at or before seen_ns, else the oldest one kept
            for walk_ns, mid in reversed(history):
                if walk_ns <= seen_ns:
                    break
        mid = mid * (_BPS + offset) // _BPS // quoter.tick_common
        noise = quoter.noise
        if noise:
            draw = self._rng.getrandbits
            bits = quoter.noise_bits
            r = draw(bits)
            while r > 2 * noise:
                r = draw(bits)
            mid += r - noise
        bid = mid - quoter.half_spread
        if bid < 1:
            bid = 1
        return bid, bid + quoter.spread

    # -- books -------------------------------------------------------------------------------------

    def _size(self, quoter: _Quoter, distance: int) -> int:
        """The market's size ``distance`` levels from the best: uniform in ``[size // 2, size * 3 // 2]``."""
        return _draw(self._rng, *quoter.sizes[distance])

    def _initial_book(self, quoter: _Quoter, now_ns: int) -> None:
        spec = quoter.spec
        quoter.bid, quoter.ask = self._target(quoter, now_ns)
        levels: list[tuple[int, int, int]] = []
        for distance in range(spec.depth_levels):
            if quoter.bid - distance > 0:
                levels.append((BID, quoter.bid - distance, self._size(quoter, distance)))
            levels.append((ASK, quoter.ask + distance, self._size(quoter, distance)))
        quoter.engine.apply_market_levels(levels, now_ns)

    def _update(self, quoter: _Quoter, time_ns: int) -> BookUpdate:
        rng = self._rng
        bid, ask = self._target(quoter, time_ns)
        levels: list[tuple[int, int, int]] = []
        if bid != quoter.bid:
            self._shift(quoter, quoter.bid, bid, levels)
            quoter.bid, quoter.ask = bid, ask
        # Most traffic is size changes near the top; distance ~ geometric with the configured mean
        # (the exponential draw of Random.expovariate, inlined).
        distance = int(-log(1.0 - rng.random()) / quoter.near_top_rate)
        if distance >= quoter.depth:
            distance = quoter.depth - 1
        low, width, bits = quoter.sizes[distance]
        if rng.random() < 0.5:
            if bid - distance > 0:
                r = rng.getrandbits(bits)  # _draw, inlined as in _shift
                while r >= width:
                    r = rng.getrandbits(bits)
                levels.append((BID, bid - distance, low + r))
        else:
            r = rng.getrandbits(bits)
            while r >= width:
                r = rng.getrandbits(bits)
            levels.append((ASK, ask + distance, low + r))
        if not levels:
            levels.append((ASK, ask, self._size(quoter, 0)))
        return quoter.apply(levels, time_ns)

    def _shift(self, quoter: _Quoter, old_bid: int, bid: int, levels: list[tuple[int, int, int]]) -> None:
        """Move both sides' best by ``bid - old_bid`` (the spread is fixed): delete what is now
        inside, add the new top, trim the depth; bid levels first, then ask levels."""
        depth = quoter.depth
        own_bids, own_asks = quoter.engine.market_levels
        old_ask, ask = old_bid + quoter.spread, bid + quoter.spread
        moved = bid - old_bid if bid > old_bid else old_bid - bid
        if moved >= depth:
            size = self._size
            for side, own, new, step in ((BID, own_bids, bid, -1), (ASK, own_asks, ask, 1)):
                levels.extend((side, price, 0) for price in own)
                levels.extend(
                    (side, new + step * distance, size(quoter, distance))
                    for distance in range(depth)
                    if new + step * distance > 0
                )
            return
        sizes = quoter.sizes
        draw = self._rng.getrandbits
        append = levels.append
        # The size draws (_draw, inlined: this is the generator's hot loop) go nearest the
        # top first on the side that moved towards it, nearest the far end on the other.
        if bid > old_bid:
            for distance in range(moved):  # new bids between the new and old best
                low, width, bits = sizes[distance]
                r = draw(bits)
                while r >= width:
                    r = draw(bits)
                append((BID, bid - distance, low + r))
            for price in range(old_bid - depth + moved, old_bid - depth, -1):  # the far end drops off
                if price in own_bids:
                    append((BID, price, 0))
            for price in range(old_ask, ask):  # asks below the new best are gone
                if price in own_asks:
                    append((ASK, price, 0))
            for distance in range(depth - moved, depth):  # new deep asks
                low, width, bits = sizes[distance]
                r = draw(bits)
                while r >= width:
                    r = draw(bits)
                append((ASK, ask + distance, low + r))
        else:
            for price in range(old_bid, bid, -1):  # bids above the new best are gone
                if price in own_bids:
                    append((BID, price, 0))
            for distance in range(depth - moved, depth):  # new deep bids
                price = bid - distance
                if price > 0:
                    low, width, bits = sizes[distance]
                    r = draw(bits)
                    while r >= width:
                        r = draw(bits)
                    append((BID, price, low + r))
            for distance in range(moved):  # new asks between the new and old best
                low, width, bits = sizes[distance]
                r = draw(bits)
                while r >= width:
                    r = draw(bits)
                append((ASK, ask + distance, low + r))
            for price in range(old_ask + depth - moved, old_ask + depth):  # the far end drops off
                if price in own_asks:
                    append((ASK, price, 0))


_update_time = attrgetter("time_ns")


# -- recorded frames ---------------------------------------------------------------------------------


class RecordedFrame(NamedTuple):
    """One message a venue sent: receive time, market, source URL, kind ("ws" or "http"), raw bytes."""

    time_ns: int
    exchange: ExchangeName
    url: str
    kind: str
    raw: bytes


_HOSTS = {
    "api.gateio.ws": ExchangeName.GATEIO,
    "fx-ws.gateio.ws": ExchangeName.GATEIO_FUTURES,
    "api.mexc.com": ExchangeName.MEXC,
    "wbs-api.mexc.com": ExchangeName.MEXC,
    "contract.mexc.com": ExchangeName.MEXC_FUTURES,
}


def exchange_of_url(url: str) -> ExchangeName:
    """The market a recorded URL belongs to (Gate futures REST shares the spot host under ``/futures/``)."""
    parts = urlsplit(url)
    exchange = _HOSTS.get(parts.hostname or "")
    if exchange is None:
        raise ValueError(f"recording: no simulated market serves {url!r}")
    if exchange is ExchangeName.GATEIO and "/futures/" in parts.path:
        return ExchangeName.GATEIO_FUTURES
    return exchange


def _market_of(url: str, where: str) -> ExchangeName:
    try:
        return exchange_of_url(url)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _seconds_to_ns(raw: bytes, where: str) -> int:
    text = _text(raw, where)
    try:
        seconds = Decimal(text)
    except ArithmeticError:
        seconds = Decimal("NaN")
    if not seconds.is_finite():
        raise ValueError(f"{where}: timestamp {text!r} is not a number")
    return int(seconds.scaleb(9).to_integral_value())


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: {raw[:80]!r} is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def read_recording(path: Path) -> Iterator[RecordedFrame]:
    """Server frames (``<ts>: <json>``) and HTTP responses (``<url> -> <ts>: <body>``) of one file, in file order.

    Client frames (``<url> <- ...``), connection marks and the ``configuration:`` line are
    skipped. A server frame belongs to the URL of the last ``<url> <-> <ts>`` connection line.
    """
    url = ""
    with path.open("rb") as stream:
        for number, line in enumerate(stream, 1):
            line = line.rstrip(b"\r\n")
            where = f"{path.name}:{number}"
            if not line or line.startswith(b"configuration:"):
                continue
            head, sep, body = line.partition(b": ")
            words = head.split(b" ")
            if len(words) == 1 and sep:
                if not url:
                    raise ValueError(f"{where}: server frame before any connection line")
                yield RecordedFrame(_seconds_to_ns(words[0], where), _market_of(url, where), url, "ws", body)
            elif len(words) == 3 and words[1] == b"<->":
                url = _text(words[0], where)
            elif len(words) == 3 and words[1] == b"->" and sep:
                http_url = _text(words[0], where)
                yield RecordedFrame(_seconds_to_ns(words[2], where), _market_of(http_url, where), http_url, "http", body)
            elif not (len(words) == 3 and words[1] == b"<-"):
                raise ValueError(f"{where}: unrecognised recording line {line[:80]!r}")


def merge_recordings(paths: Iterable[Path]) -> Iterator[RecordedFrame]:
    """The frames of several files merged in receive-time order (stable within a file)."""
    streams = [sorted(read_recording(path), key=_frame_time) for path in paths]
    return heapq.merge(*streams, key=_frame_time)


def _frame_time(frame: RecordedFrame) -> int:
    return frame.time_ns


def paced(frames: Iterable[RecordedFrame], start_ns: int, speed: Decimal | int | None) -> Iterator[tuple[int, RecordedFrame]]:
    """``(due_ns, frame)``: when to send each frame if replay starts at ``start_ns``.

    ``speed`` 1 is real time, 10 ten times faster; ``None`` sends every frame at once
    (as fast as possible). The caller sleeps until ``due_ns``; nothing here waits.
    """
    if speed is not None:
        factor = Fraction(speed)
        if factor <= 0:
            raise ValueError(f"replay speed {speed!r} must be positive (or None for as fast as possible)")
    first_ns: int | None = None
    for frame in frames:
        if speed is None:
            yield start_ns, frame
            continue
        if first_ns is None:
            first_ns = frame.time_ns
        elapsed = Fraction(frame.time_ns - first_ns) / factor
        yield start_ns + elapsed.numerator // elapsed.denominator, frame
