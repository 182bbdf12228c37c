"""arb_core.replay against its reference (tests/reference/replay.py) and the Python reader.

Blocks are random, garbled and real (a simulated four-market recording re-packed into
blocks of random sizes). The record loop runs on twin worlds (same recording, own books,
routers and scanner pipeline), the compiled one and the reference, driven by the same
Python steps; every stop, the state Python sees at it, and the books are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arb.exchanges.base import BookKey
from arb.pipeline import ScannerPipeline
from arb.replay.player import connector_class
from arb.replay.reader import KIND_TABLE, MARKET_TABLE, _block_records, _Damage, read_records
from arb.replay.recorder import MARKET_CODES, RECORD_HEADER, RecordKind
from arb.sim.cluster import default_instruments
from arb.types import OpportunityType
from arb_core import replay
from arb_core.book import BookError, DeltaBatch, OrderBook
from arb_core.router import DIALECT_GATEIO_SPOT, BookRouter
from arb_core.scanner import SpreadScanner
from reference import replay as ref
from simulated_recording import record_simulated

CODES = sorted(MARKET_CODES.values())
SYMBOL = "BTC/USDT"


def test_the_format_constants_are_the_recorders() -> None:
    assert replay.RECORD_HEADER_SIZE == RECORD_HEADER.size == ref.RECORD_HEADER.size
    assert (replay.KIND_WS_TEXT, replay.KIND_WS_BINARY, replay.KIND_REST_SNAPSHOT, replay.KIND_REST_RESPONSE) == (
        RecordKind.WS_TEXT, RecordKind.WS_BINARY, RecordKind.REST_SNAPSHOT, RecordKind.REST_RESPONSE
    )
    stops = [replay.STOP_END, replay.STOP_NEED_BLOCK, replay.STOP_RECORD, replay.STOP_WAIT, replay.STOP_FOUND,
             replay.STOP_SCAN, replay.STOP_ROUTE_ERROR, replay.STOP_BUDGET]
    assert stops == list(range(8))
    assert [replay.MODE_SKIP, replay.MODE_PYTHON, replay.MODE_BOOKS, replay.MODE_SCAN] == [
        ref.MODE_SKIP, ref.MODE_PYTHON, ref.MODE_BOOKS, ref.MODE_SCAN
    ]


# --- blocks -------------------------------------------------------------------------------

_records = st.lists(
    st.tuples(
        st.integers(-(2**63), 2**63 - 1),
        st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([*CODES, 0, 9, 255]),
        st.sampled_from([1, 2, 3, 4, 0, 5, 255]),
        st.one_of(st.just(b""), st.sampled_from([b"BTC_USDT", b"BTCUSDT", b"ETH_USDT"]), st.binary(max_size=12)),
        st.binary(max_size=80),
    ),
    max_size=12,
)


def _encode(records: list[tuple[int, int, int, int, bytes, bytes]]) -> bytes:
    return b"".join(
        RECORD_HEADER.pack(recv, wall, market, kind, len(symbol), len(payload)) + symbol + payload
        for recv, wall, market, kind, symbol, payload in records
    )


@st.composite
def _blocks(draw: st.DrawFn) -> tuple[bytes, int]:
    records = draw(_records)
    raw = bytearray(_encode(records))
    count = len(records)
    garble = draw(st.sampled_from(["none", "cut", "extra", "flip", "count", "header"]))
    if garble == "cut" and raw:
        del raw[draw(st.integers(0, len(raw) - 1)) :]
    elif garble == "extra":
        raw += draw(st.binary(min_size=1, max_size=30))
    elif garble == "flip" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] ^= draw(st.integers(1, 255))
    elif garble == "count":
        count = max(0, count + draw(st.sampled_from([-1, 1, 1000])))
    elif garble == "header" and raw:
        # a huge symbol or payload length
        at = draw(st.sampled_from([18, 19, 20, 23]))
        if at < len(raw):
            raw[at] = 0xFF
    return bytes(raw), count


@settings(max_examples=600, deadline=None)
@given(_blocks())
def test_check_block_matches_the_reference_and_the_python_reader(block: tuple[bytes, int]) -> None:
    raw, count = block
    checked = replay.check_block(raw, count, MARKET_TABLE, KIND_TABLE)
    assert checked == ref.check_block(raw, count, MARKET_TABLE, KIND_TABLE)
    try:
        records = _block_records(raw, count, 0)
    except _Damage:
        assert checked != -1
    else:
        assert checked == -1 and len(records) == count


@settings(max_examples=400, deadline=None)
@given(_blocks())
def test_the_survey_of_a_block_matches_the_reference(block: tuple[bytes, int]) -> None:
    raw, count = block
    compiled, reference = replay.BlockSurvey(), ref.BlockSurvey()
    try:
        reference.add(raw, count)
    except ValueError:
        with pytest.raises(ValueError):
            compiled.add(raw, count)
        return
    compiled.add(raw, count)
    assert (compiled.records, compiled.first, compiled.last_ns) == (reference.records, reference.first, reference.last_ns)
    assert compiled.symbols == reference.symbols and compiled.responses == reference.responses


def _survey_state(survey: replay.BlockSurvey | ref.BlockSurvey) -> tuple[object, ...]:
    return survey.records, survey.first, survey.last_ns, set(survey.symbols), list(survey.responses)


@settings(max_examples=300, deadline=None)
@given(_records, _blocks())
@example(  # a good response and symbol record, then one that runs past the block
    [(10, 0, CODES[0], 4, b"", b"{}"), (11, 0, CODES[0], 1, b"BTC_USDT", b"x")],
    (_encode([(12, 0, CODES[1], 4, b"", b"[]"), (13, 0, CODES[1], 1, b"ETH_USDT", b"y")])
     + RECORD_HEADER.pack(14, 0, CODES[1], 1, 0, 999), 3),
)
def test_a_bad_block_leaves_the_survey_as_it_was(
    good: list[tuple[int, int, int, int, bytes, bytes]], block: tuple[bytes, int]
) -> None:
    """The compiled survey took a bad block's records up to the bad one before it raised."""
    raw, count = block
    states = []
    for survey in (replay.BlockSurvey(), ref.BlockSurvey()):
        survey.add(_encode(good), len(good))
        before = _survey_state(survey)
        try:
            survey.add(raw, count)
        except ValueError:
            assert _survey_state(survey) == before
            survey.add(_encode(good), len(good))  # and it goes on surveying from there
        states.append(_survey_state(survey))
    assert states[0] == states[1]


@settings(max_examples=300, deadline=None)
@given(st.one_of(_blocks(), st.tuples(st.binary(max_size=200), st.integers(0, 20))), st.integers(0, 3))
def test_the_record_loop_never_crashes_on_unchecked_bytes(block: tuple[bytes, int], mode: int) -> None:
    """Random bytes, and records garbled as ``_blocks`` does: those whole enough stop for Python."""
    raw, count = block
    clock = _Clock(0)
    loop = replay.RecordLoop(clock, 1000, 0)
    for code in CODES:
        loop.add_market(code, replay.MODE_PYTHON if mode == 1 else replay.MODE_SKIP)
    loop.push(raw, count)
    loop.push(None, 0)
    try:
        for _ in range(100):
            status = loop.run(False, math.inf)
            if status == replay.STOP_END:
                break
            if status == replay.STOP_RECORD:
                assert loop.record()[0] == loop.recv_ns
                loop.advance()
    except ValueError as exc:
        assert "checked block" in str(exc)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="count"):
        replay.check_block(b"", -1, MARKET_TABLE, KIND_TABLE)
    with pytest.raises(ValueError, match="markets"):
        replay.check_block(b"", 0, b"\x01", KIND_TABLE)
    with pytest.raises(ValueError, match="count"):
        replay.BlockSurvey().add(b"", -2)
    with pytest.raises(ValueError, match="window_ns"):
        replay.RecordLoop(_Clock(0), -1, 0)
    seconds = _Clock(0)
    floating = replay.RecordLoop(seconds, 0, 0)
    seconds.now_ns = 1.5  # type: ignore[assignment]  # a clock in the wrong unit is refused, not truncated
    with pytest.raises(TypeError, match="float"):
        floating.run(False, math.inf)
    loop = replay.RecordLoop(_Clock(0), 0, 0)
    with pytest.raises(ValueError, match="market"):
        loop.add_market(256, replay.MODE_SKIP)
    with pytest.raises(ValueError, match="mode"):
        loop.add_market(1, 9)
    with pytest.raises(ValueError, match="needs its router"):
        loop.add_market(1, replay.MODE_BOOKS)
    with pytest.raises(ValueError, match="no current record"):
        loop.record()
    with pytest.raises(ValueError, match="only after STOP_RECORD"):
        loop.advance()
    loop.add_market(CODES[0], replay.MODE_PYTHON)
    loop.push(_encode([(5, 6, CODES[0], 3, b"BTC_USDT", b"{}")]), 1)
    loop.push(None, 0)
    with pytest.raises(ValueError, match="after the end"):
        loop.push(b"", 0)
    assert loop.run(False, math.inf) == replay.STOP_RECORD
    assert loop.record() == (5, 6, CODES[0], 3, b"BTC_USDT", b"{}") and loop.last_in_buffer
    with pytest.raises(ValueError, match="advance"):
        loop.run(False, math.inf)
    loop.advance()
    assert loop.run(False, math.inf) == replay.STOP_END and loop.count == 1


# --- the record loop on twin worlds ---------------------------------------------------------


class _Clock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


class _Sync:
    def __init__(self) -> None:
        self.batch_updated = False


class _Connector:
    def __init__(self) -> None:
        self.messages = 0


@dataclass
class _Market:
    code: int
    key: BookKey
    dialect: Any
    scale: Any
    book: OrderBook
    router: BookRouter
    sync: _Sync
    connector: _Connector
    mode: int


class _World:
    """Books, routers, a scanner pipeline and a record loop (compiled or reference) over ``blocks``."""

    def __init__(self, blocks: list[tuple[bytes, int]], loop_class: Any, modes: dict[int, int], window_ns: int,
                 origin_ns: int) -> None:
        self.clock = _Clock(origin_ns)
        self.origin_ns = origin_ns
        self.pipeline = ScannerPipeline(
            max_data_age_ms=60_000, clock=self.clock,
            opportunity_types=(OpportunityType.SPOT_SPOT, OpportunityType.SPOT_FUTURES_HEDGE),
        )
        self.markets: dict[int, _Market] = {}
        legs = []
        for instrument in default_instruments(("BTC",)):
            dialect = connector_class(instrument.exchange).binding.dialect(None)
            scale = dialect.book_scale(instrument)
            book = OrderBook(instrument.exchange.value)
            router = BookRouter(dialect.router_dialect)
            router.add_book(instrument.venue_symbol.encode(), book, scale)
            code = MARKET_CODES[instrument.exchange]
            self.markets[code] = _Market(
                code, BookKey(instrument.exchange, instrument.symbol), dialect, scale, book, router, _Sync(), _Connector(),
                modes[code],
            )
            legs.append((instrument, book, scale))
        for plan in self.pipeline.register_symbol(SYMBOL, legs):
            for leg in plan.legs:
                self.pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, Decimal(1000), Decimal(1000))
        self.loop = loop_class(
            self.clock, window_ns, origin_ns, 1e-6, self.pipeline, self.pipeline.scanner, self.pipeline.max_age_ns,
            len(self.pipeline.plans),
        )
        for code, market in self.markets.items():
            if market.mode >= replay.MODE_BOOKS:
                slots = [self.pipeline._by_key.get(market.key, [])] if market.mode == replay.MODE_SCAN else []
                self.loop.add_market(code, market.mode, market.router, market.sync, market.connector, slots)
            else:
                self.loop.add_market(code, market.mode)
        self.blocks = iter(blocks)
        self.batch = DeltaBatch(256)

    def feed(self, fields: tuple[int, int, int, int, bytes, bytes], last_in_buffer: bool) -> None:
        """A small stand-in for ``BookSync.on_message`` and snapshot offers on the Python side."""
        recv_ns, _, code, kind, _, payload = fields
        market = self.markets.get(code)
        if market is None or market.mode == replay.MODE_SKIP:
            return
        if kind == replay.KIND_REST_SNAPSHOT:
            market.dialect.decode_snapshot(payload, market.scale, self.batch)
            market.book.apply_snapshot(self.batch, recv_ns)
            self.batch.clear()
            market.sync.batch_updated = True
            self.pipeline.on_book_update(market.key)
            self.pipeline.refresh_position_caps()
        elif kind in (replay.KIND_WS_TEXT, replay.KIND_WS_BINARY):
            market.connector.messages += 1
            if market.router.route(payload, recv_ns) == 0:
                market.sync.batch_updated = True
                if market.mode != replay.MODE_BOOKS:
                    self.pipeline.on_book_update(market.key)
        if last_in_buffer and market.sync.batch_updated:
            market.sync.batch_updated = False
            if market.mode != replay.MODE_BOOKS:
                self.pipeline.scan_pending()

    def replay(
        self, busy: list[bool], timers: list[int | None], budget: int, drops: tuple[bool, ...] = (False,)
    ) -> list[tuple[Any, ...]]:
        """Drive the loop as the backtest does; ``drops``: at each scan or find stop in turn, whether
        the batch-end consumer "raised" (``drop_scans``) before the stop is handled."""
        trace: list[tuple[Any, ...]] = []
        handled = 0
        loop, clock, pipeline = self.loop, self.clock, self.pipeline
        waited = False
        for step in range(1_000_000):
            timer = timers[step % len(timers)]
            next_timer_s = math.inf if timer is None else (clock.now_ns - self.origin_ns + timer) / 1e9
            status = loop.run(busy[step % len(busy)], next_timer_s, waited, budget)
            waited = False
            state = (status, loop.count, clock.now_ns, pipeline.scans, sorted(pipeline.marked),
                     tuple((m.sync.batch_updated, m.connector.messages) for m in self.markets.values()))
            if status == replay.STOP_END:
                trace.append(state)
                return trace
            if status == replay.STOP_NEED_BLOCK:
                block = next(self.blocks, None)
                loop.push(*(block or (None, 0)))
                continue
            trace.append(state)
            if status == replay.STOP_RECORD:
                fields = loop.record()
                trace.append((fields[0], fields[2], fields[3], loop.last_in_buffer))
                clock.now_ns = max(clock.now_ns, fields[0])
                try:
                    self.feed(fields, loop.last_in_buffer)
                except (BookError, ValueError, OverflowError) as exc:  # a garbled record: BookSync resyncs
                    trace.append(("python error", type(exc).__name__))
                loop.advance()
            elif status == replay.STOP_WAIT:
                clock.now_ns = max(clock.now_ns, loop.recv_ns - 1)  # a sleep lands at or just before it
                waited = True
            elif status in (replay.STOP_FOUND, replay.STOP_SCAN) and drops[handled % len(drops)]:
                handled += 1
                loop.drop_scans()
                trace.append(("dropped", loop.symbol_id))
            elif status == replay.STOP_FOUND:
                handled += 1
                found = loop.found
                trace.append((loop.symbol_id, found.buy_leg, found.sell_leg, found.size_common, found.profit))
                opportunity = pipeline.handle_scan(loop.symbol_id, found, clock.now_ns)
                trace.append(None if opportunity is None else opportunity.max_quantity)
            elif status == replay.STOP_SCAN:
                handled += 1
                trace.append(("scan", loop.symbol_id, pipeline.scan(loop.symbol_id) is not None))
            elif status == replay.STOP_ROUTE_ERROR:
                trace.append(("error", type(loop.error).__name__))
        raise AssertionError("the loop did not end")

    def books(self) -> list[tuple[Any, ...]]:
        return [
            (m.book.in_sync, m.book.last_update_id, m.book.best_bid_price() if m.book.bid_count else None,
             m.book.best_ask_price() if m.book.ask_count else None, m.router.applied(0), m.router.stale(0))
            for m in self.markets.values()
        ]


@pytest.fixture(scope="module")
def recorded_records(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, int, int, int, bytes, bytes]]:
    path = tmp_path_factory.mktemp("replay") / "four.arbrec"
    record_simulated(path, 2400, rate=2000, dislocations_at_s=(0.1,), step_ns=5_000_000, block_records=400)
    reader = read_records(path)
    records = [fields for raw, count in reader.blocks() for fields, _ in ref.records_of(raw, count)]
    assert reader.damage is None and len(records) == 2404
    return records


def _pack(records: list[tuple[int, int, int, int, bytes, bytes]], sizes: list[int]) -> list[tuple[bytes, int]]:
    blocks = []
    at = 0
    index = 0
    while at < len(records):
        size = sizes[index % len(sizes)]
        index += 1
        chunk = records[at : at + size]
        blocks.append((_encode(chunk), len(chunk)))
        at += size
    return blocks


_modes = st.fixed_dictionaries({
    code: st.sampled_from([replay.MODE_SCAN, replay.MODE_SCAN, replay.MODE_BOOKS, replay.MODE_PYTHON, replay.MODE_SKIP])
    for code in CODES
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=4),
    modes=_modes,
    window_ns=st.sampled_from([0, 100_000, 200_000, 3_000_000]),
    busy=st.lists(st.booleans(), min_size=1, max_size=5),
    timers=st.lists(st.one_of(st.none(), st.integers(-1_000_000, 20_000_000)), min_size=1, max_size=5),
    budget=st.sampled_from([0, 0, 1, 37]),
    drops=st.one_of(st.just((False,)), st.lists(st.booleans(), min_size=1, max_size=5).map(tuple)),
)
def test_the_record_loop_stops_where_the_reference_stops(
    recorded_records: list[tuple[int, int, int, int, bytes, bytes]], sizes: list[int], modes: dict[int, int],
    window_ns: int, busy: list[bool], timers: list[int | None], budget: int, drops: tuple[bool, ...],
) -> None:
    blocks = _pack(recorded_records, sizes)
    worlds = _replayed_alike(blocks, modes, window_ns, recorded_records[0][0], busy, timers, budget, drops)
    assert worlds[0].pipeline.scans > 0 or all(m != replay.MODE_SCAN for m in modes.values())


def _replayed_alike(
    blocks: list[tuple[bytes, int]], modes: dict[int, int], window_ns: int, origin: int, busy: list[bool],
    timers: list[int | None], budget: int, drops: tuple[bool, ...],
) -> list[_World]:
    """Replay ``blocks`` through the compiled record loop and its reference; check that both stop,
    apply and scan alike, and return the two worlds (compiled first)."""
    worlds = [_World(blocks, cls, modes, window_ns, origin) for cls in (replay.RecordLoop, ref.RecordLoop)]
    compiled, reference = (w.replay(busy, timers, budget, drops) for w in worlds)
    assert compiled == reference
    assert worlds[0].books() == worlds[1].books()
    assert worlds[0].pipeline.scans == worlds[1].pipeline.scans
    assert worlds[0].pipeline._standing.keys() == worlds[1].pipeline._standing.keys()
    return worlds


_INT64 = st.integers(-(2**63), 2**63 - 1)
_edge_times = st.one_of(_INT64, st.sampled_from([-(2**63), -(2**63) + 5, -1, 0, 1, 2**63 - 10, 2**63 - 1]))
_KINDS = [replay.KIND_WS_TEXT, replay.KIND_WS_BINARY, replay.KIND_REST_SNAPSHOT, replay.KIND_REST_RESPONSE]
_splices = st.one_of(st.binary(max_size=4), st.lists(st.sampled_from(b'0123456789."{}[],:-'), max_size=4).map(bytes))


def _garble(data: st.DataObject, records: list[tuple[int, int, int, int, bytes, bytes]]
            ) -> list[tuple[int, int, int, int, bytes, bytes]]:
    """``records`` with some garbled: payload bytes replaced, the time moved (to the int64 edges
    too), another kind, symbol or market. The blocks stay checked: kinds and markets are known ones."""
    records = list(records)
    for _ in range(data.draw(st.integers(1, 30), label="garbled")):
        index = data.draw(st.integers(0, len(records) - 1), label="index")
        recv, wall, code, kind, symbol, payload = records[index]
        what = data.draw(st.sampled_from(["payload", "payload", "time", "kind", "symbol", "market"]), label="what")
        if what == "payload":
            at = data.draw(st.integers(0, len(payload)), label="at")
            payload = payload[:at] + data.draw(_splices, label="splice") + payload[at + data.draw(st.integers(0, 4)):]
        elif what == "time" and data.draw(st.booleans(), label="edge"):
            recv = data.draw(_edge_times, label="recv_ns")
        elif what == "time":
            recv = min(max(recv + data.draw(st.integers(-10**9, 10**9), label="shift"), -(2**63)), 2**63 - 1)
        elif what == "kind":
            kind = data.draw(st.sampled_from(_KINDS), label="kind")
        elif what == "symbol":
            symbol = data.draw(st.sampled_from([b"", b"BTC_USDT", b"BTCUSDT", b"ETH_USDT"]), label="symbol")
        else:
            code = data.draw(st.sampled_from(CODES), label="market")
        records[index] = (recv, wall, code, kind, symbol, payload)
    return records


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    data=st.data(),
    sizes=st.lists(st.integers(1, 500), min_size=1, max_size=3),
    modes=_modes,
    window_ns=st.sampled_from([0, 100_000, 3_000_000]),
    busy=st.lists(st.booleans(), min_size=1, max_size=3),
    timers=st.lists(st.one_of(st.none(), st.integers(0, 20_000_000)), min_size=1, max_size=3),
    budget=st.sampled_from([0, 0, 1, 37]),
    drops=st.one_of(st.just((False,)), st.lists(st.booleans(), min_size=1, max_size=3).map(tuple)),
)
def test_the_record_loop_stops_where_the_reference_stops_on_garbled_records(
    recorded_records: list[tuple[int, int, int, int, bytes, bytes]], data: st.DataObject, sizes: list[int],
    modes: dict[int, int], window_ns: int, busy: list[bool], timers: list[int | None], budget: int,
    drops: tuple[bool, ...],
) -> None:
    """Garbled records in every mode: malformed frames and book failures reach the compiled routing
    and scanning (STOP_ROUTE_ERROR among them), times out of order or at the int64 edges its waits."""
    records = _garble(data, recorded_records)
    blocks = _pack(records, sizes)
    assert all(replay.check_block(raw, count, MARKET_TABLE, KIND_TABLE) == -1 for raw, count in blocks)
    _replayed_alike(blocks, modes, window_ns, recorded_records[0][0], busy, timers, budget, drops)


@settings(max_examples=300, deadline=None)
@example(times=[2**63 - 1], now_ns=0, origin_ns=-(2**63), window_ns=100, busy=[False], timer_s=1e10,
         mode=replay.MODE_SKIP)  # 1.8e10 s since the origin: past a clamped 9.2e9 s
@example(times=[10, -(2**63) + 5], now_ns=1000, origin_ns=0, window_ns=100, busy=[True], timer_s=math.inf,
         mode=replay.MODE_SKIP)
@given(
    times=st.lists(_edge_times, min_size=1, max_size=6),
    now_ns=_edge_times,
    origin_ns=_edge_times,
    window_ns=st.sampled_from([0, 100, 2**62]),
    busy=st.lists(st.booleans(), min_size=1, max_size=4),
    timer_s=st.one_of(st.just(math.inf), st.sampled_from([0.0, 1.0, 1e10, 1.9e10, -1e10]),
                      st.floats(min_value=-3e10, max_value=3e10)),
    mode=st.sampled_from([replay.MODE_SKIP, replay.MODE_PYTHON]),
)
def test_the_record_loop_stops_where_the_reference_stops_at_the_int64_edges_of_time(
    times: list[int], now_ns: int, origin_ns: int, window_ns: int, busy: list[bool], timer_s: float, mode: int
) -> None:
    """Record times far from the clock, the origin or each other: differences that overflow
    int64 compared as the exact ones (a record near INT64_MIN with the clock at 1000 gave a
    spurious STOP_WAIT), and the idle timer compared with the time since the origin as the float
    of the exact difference (not of a clamped one)."""
    code = CODES[0]
    raw = _encode([(t, 0, code, replay.KIND_WS_TEXT, b"X", b"{}") for t in times])
    traces = []
    for cls in (replay.RecordLoop, ref.RecordLoop):
        clock = _Clock(now_ns)
        loop = cls(clock, window_ns, origin_ns)
        loop.add_market(code, mode)
        loop.push(raw, len(times))
        loop.push(None, 0)
        trace: list[Any] = []
        waited = False
        for step in range(4 * len(times) + 8):
            status = loop.run(busy[step % len(busy)], timer_s, waited)
            waited = False
            trace.append(status)
            if status == replay.STOP_END:
                break
            if status == replay.STOP_WAIT:
                waited = True
            elif status == replay.STOP_RECORD:
                trace.append((loop.recv_ns, loop.last_in_buffer))
                loop.advance()
        traces.append(trace)
    assert traces[0] == traces[1]
    assert traces[0][-1] == replay.STOP_END


def test_the_record_loop_scans_finds_and_hands_over_on_the_simulated_recording(
    recorded_records: list[tuple[int, int, int, int, bytes, bytes]],
) -> None:
    modes = dict.fromkeys(CODES, replay.MODE_SCAN)
    world = _World(_pack(recorded_records, [400]), replay.RecordLoop, modes, 200_000, recorded_records[0][0])
    trace = world.replay([False], [None], 0)
    stops = [step[0] for step in trace if isinstance(step, tuple) and len(step) == 6]
    assert stops.count(replay.STOP_RECORD) == 4  # the four REST snapshots
    assert replay.STOP_FOUND in stops and replay.STOP_SCAN in stops
    assert world.pipeline.found >= 1 and world.pipeline.scans > 1000
    assert all(m.router.applied(0) > 500 for m in world.markets.values())


def test_a_router_exception_is_handed_over_with_the_record(
    recorded_records: list[tuple[int, int, int, int, bytes, bytes]],
) -> None:
    records = list(recorded_records)
    # A diff that skips ahead: the book meets a sequence gap in the router.
    for index, (recv, wall, code, kind, symbol, payload) in enumerate(records):
        if index > 100 and code == MARKET_CODES[default_instruments(("BTC",))[0].exchange] and kind == 1:
            records[index] = (recv, wall, code, kind, symbol, payload.replace(b'"U":', b'"U":9', 1))
            break
    else:
        raise AssertionError("no Gate.io spot diff in the recording")
    modes = dict.fromkeys(CODES, replay.MODE_SCAN)
    traces = []
    for cls in (replay.RecordLoop, ref.RecordLoop):
        world = _World(_pack(records, [300]), cls, modes, 200_000, records[0][0])
        traces.append(world.replay([False], [None], 0))
    assert traces[0] == traces[1]
    assert any(step == ("error", "SequenceGapError") for step in traces[0])


class _Pipeline:
    """What RecordLoop reads of a scanner pipeline."""

    def __init__(self, marked: set[int]) -> None:
        self.marked = marked
        self._standing: dict[int, object] = {}

    def count_scans(self, n: int) -> None:
        pass


class _AgreesWithEverything(int):
    """An int whose comparisons all pass: a range check made in Python on it proves nothing."""

    def __lt__(self, other: object) -> bool:
        return True

    __le__ = __gt__ = __ge__ = __lt__


def test_symbol_ids_are_checked_as_the_c_integers_that_index_the_tables() -> None:
    router = BookRouter(DIALECT_GATEIO_SPOT)
    sync = SimpleNamespace(batch_updated=False)
    liar = _AgreesWithEverything(1 << 40)
    loop = replay.RecordLoop(_Clock(0), 0, 0, 1e-6, _Pipeline(set()), SpreadScanner(), 0, 1)
    with pytest.raises(ValueError, match="symbol id 1099511627776 is not in"):
        loop.add_market(CODES[0], replay.MODE_SCAN, router, sync, SimpleNamespace(messages=0), [[liar]])
    loop = replay.RecordLoop(_Clock(0), 0, 0, 1e-6, _Pipeline({liar}), SpreadScanner(), 0, 1)
    loop.push(None, 0)
    with pytest.raises(ValueError, match="dirty symbol id 1099511627776"):
        loop.run(False, math.inf)


def test_python_that_the_record_loop_runs_cannot_drive_the_loop_again() -> None:
    """Code the loop calls (its clock here; a book or scanner subclass likewise) calling ``run`` or
    ``push`` again would finish one record twice."""

    class Reentrant:
        loop: Any = None
        call = "run"

        @property
        def now_ns(self) -> int:
            if self.call == "run":
                self.loop.run(False, math.inf)
            elif self.call == "push":
                self.loop.push(b"", 1)
            return 0

        @now_ns.setter
        def now_ns(self, value: int) -> None:  # the loop hands its time back on return
            pass

    for call in ("run", "push"):
        clock = Reentrant()
        clock.call = call
        clock.loop = loop = replay.RecordLoop(clock, 0, 0)
        with pytest.raises(RuntimeError, match=f"RecordLoop.{call}\\(\\) called from code that RecordLoop.run\\(\\) is running"):
            loop.run(False, math.inf)
        clock.call = "neither"
        clock.loop = None
        assert loop.run(False, math.inf) == replay.STOP_NEED_BLOCK  # usable again afterwards


def test_a_record_loop_is_initialised_once() -> None:
    loop = replay.RecordLoop(_Clock(0), 0, 0)
    with pytest.raises(ValueError, match="initialised once"):
        loop.__init__(_Clock(0), 0, 0)  # type: ignore[misc]
