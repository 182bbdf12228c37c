"""arb.view: the dashboard rendered from fake parts, the JSON event lines, and ``run --headless``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire.common import WireScale

from arb.exchanges.base import BookKey
from arb.exchanges.book_sync import BookSyncStats
from arb.exchanges.models import Balance, ConnectionHealth, Fill, FundingPayment
from arb.monitor import PerformanceMonitor, Stage
from arb.pipeline import ScannerPipeline
from arb.recovery import RecoveryManager
from arb.risk import FuturesHolding, RiskManager
from arb.sim.cluster import default_instruments
from arb.types import (
    ArbitrageOpportunity,
    ArbitrageState,
    ExchangeName,
    ExecutionLeg,
    ExecutionResult,
    OpportunityType,
    OrderSide,
    RiskLimits,
)
from arb.view import (
    EVENTS_LOGGER,
    BreakerRow,
    ConnectionRow,
    ExecutionRow,
    HaltRow,
    JsonLogFormatter,
    LatencyRow,
    LiveView,
    Output,
    StatusLines,
    VenueRow,
    ViewSnapshot,
    choose_output,
    install_json_events,
    render_snapshot,
)

MS = 1_000_000
NOW = 10_000 * MS
LIMITS = RiskLimits(
    max_position_size_usd=D(100), max_total_exposure_usd=D(500), max_daily_loss_usd=D(50), min_profit_margin_bps=D(10)
)


class FakeSync:
    def __init__(self, books: dict[str, BookSyncStats]) -> None:
        self.books = books

    def stats(self) -> Mapping[str, BookSyncStats]:
        return self.books


class FakeConnector:
    def __init__(self, venue: str, connected: bool, age_ns: int | None, reconnects: int, sync: FakeSync | None) -> None:
        self.venue, self.connected, self.age_ns, self.reconnects, self.sync = venue, connected, age_ns, reconnects, sync

    def health(self) -> ConnectionHealth:
        return ConnectionHealth(
            venue=self.venue, url=f"ws://127.0.0.1/{self.venue}", connected=self.connected, connects=1,
            reconnects=self.reconnects, messages=1234, last_message_age_ns=self.age_ns, errors={},
        )

    def book_sync(self) -> FakeSync | None:
        return self.sync


class FakeBalances:
    def snapshot(self) -> Mapping[ExchangeName, Mapping[str, Balance]]:
        return {ExchangeName.MEXC: {"USDT": Balance(asset="USDT", free=D("987.65"), locked=D(0))}}


def book_stats(symbol: str, in_sync: bool, resyncs: dict[str, int]) -> BookSyncStats:
    return BookSyncStats(
        symbol=symbol, venue_symbol=symbol.replace("/", ""), in_sync=in_sync, last_update_id=7, applied=100, stale=0,
        snapshots=1, malformed=0, snapshot_failures=0, buffered=0, resyncs=resyncs,
    )


def opportunity(symbol: str, bps: str, detected_at: int) -> ArbitrageOpportunity:
    return ArbitrageOpportunity(
        opportunity_id=f"o-{symbol}", opportunity_type=OpportunityType.SPOT_SPOT, symbol=symbol,
        buy_exchange=ExchangeName.GATEIO, sell_exchange=ExchangeName.MEXC, buy_price=D("3000.04"),
        sell_price=D("3018.03"), max_quantity=D("0.0331"), profit_per_unit=D("10.5"),
        total_profit_estimate=D("0.3469"), profit_margin_bps=D(bps), detected_at=detected_at,
    )


def result(opportunity_id: str, state: ArbitrageState, pnl: str, ms: str) -> ExecutionResult:
    leg = ExecutionLeg(
        exchange=ExchangeName.GATEIO, symbol="ETH/USDT", side=OrderSide.BUY, client_order_id=f"{opportunity_id}-b",
        requested_quantity=D("0.0331"), limit_price=D("3000.04"), filled_quantity=D("0.0331"),
        average_price=D("3000.04"), contract_size=D(1),
    )
    return ExecutionResult(
        opportunity_id=opportunity_id, final_state=state, total_execution_time_ms=D(ms), realized_profit=D(pnl),
        legs=(leg,), error=None if state is ArbitrageState.COMPLETED else "sell leg rejected",
    )


class Parts:
    """Real monitor and risk manager, fake connectors, balances, opportunities and results."""

    def __init__(self) -> None:
        self.now = NOW
        self.monitor = PerformanceMonitor(50, clock=lambda: self.now)
        self.risk = RiskManager(LIMITS, clock=lambda: self.now)
        self.gate_books = {"ETH/USDT": book_stats("ETH/USDT", True, {"gap": 2})}
        mexc_books = {"ETH/USDT": book_stats("ETH/USDT", True, {})}
        self.connectors = {
            ExchangeName.MEXC: FakeConnector("mexc", True, 7 * MS, 0, FakeSync(mexc_books)),
            ExchangeName.GATEIO: FakeConnector("gateio", False, None, 3, FakeSync(self.gate_books)),
        }
        self.opportunities = [opportunity("BTC/USDT", "12.5", NOW - 40 * MS), opportunity("ETH/USDT", "42.5", NOW)]
        self.results = [
            result("r1eth", ArbitrageState.COMPLETED, "0.3469", "59.8"),
            result("r2eth", ArbitrageState.FAILED, "-0.0125", "71.2"),
        ]
        for r in self.results:
            self.monitor.record_opportunity_detected()
            self.monitor.record_execution(r)
            self.risk.record_execution(r)
        self.monitor.record_stage(Stage.PLACE, 2_500_000)
        self.monitor.record_cycle(48_000_000)
        self.risk.record_fill(
            ExchangeName.GATEIO,
            Fill(symbol="ETH/USDT", order_id="1", client_order_id="c1", trade_id="t1", side=OrderSide.BUY,
                 price=D(3000), quantity=D("0.5"), fee=D(0), fee_asset="", is_maker=False, timestamp_ms=1),
        )
        self.risk.kill("operator pressed stop")

    def view(self) -> LiveView:
        return LiveView(
            monitor=self.monitor, risk=self.risk, connectors=self.connectors,
            opportunities=lambda: self.opportunities, executions=lambda start: (self.results[start:], len(self.results)),
            balances=FakeBalances(), mode="dry run", clock=lambda: self.now,
        )


def rendered(view: LiveView, width: int = 200) -> str:
    snapshot, _ = view.poll()
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render_snapshot(snapshot))
    return console.export_text()


def test_the_dashboard_shows_every_section_with_its_values() -> None:
    text = rendered(Parts().view())
    for section in ("Connections", "Top opportunities now", "Recent executions", "PnL and exposure", "Latency (ms)",
                    "Circuit breakers"):
        assert section in text
    lines = text.splitlines()
    mexc = next(line for line in lines if "mexc " in line and " up " in line)
    assert "7 ms" in mexc and "1234" in mexc and "1/1" in mexc
    gate = next(line for line in lines if "gateio" in line and "DOWN" in line)
    assert " 3 " in gate and " 2 " in gate  # reconnects, resyncs
    # Opportunities, best first, with their direction, size and age.
    eth = next(i for i, line in enumerate(lines) if "42.50" in line)
    btc = next(i for i, line in enumerate(lines) if "12.50" in line)
    assert eth < btc
    assert "gateio -> mexc" in lines[eth] and "0.0331" in lines[eth] and "40 ms" in lines[btc]
    # Executions, newest first.
    failed = next(i for i, line in enumerate(lines) if "r2eth" in line)
    done = next(i for i, line in enumerate(lines) if "r1eth" in line)
    assert failed < done
    assert "FAILED" in lines[failed] and "-0.0125" in lines[failed] and "71.2" in lines[failed]
    assert "COMPLETED" in lines[done] and "0.3469" in lines[done]
    # PnL, exposure, the position and the free quote per market.
    assert "0.3344 USDT" in text  # 0.3469 - 0.0125
    assert "1500.00 / 500 USD" in text
    assert "987.65" in text and "1500.00" in text
    # Latency per stage in ms, and the tripped breaker with its reason.
    place = next(line for line in lines if "│ place " in line)
    assert "2.500" in place.split("│ place ")[1]
    kill = next(line for line in lines if "kill_switch" in line)
    assert "TRIPPED" in kill and "operator pressed stop" in kill


def test_funding_settled_today_shows_as_part_of_todays_pnl() -> None:
    parts = Parts()
    assert "of it funding" not in rendered(parts.view())  # none settled: no row
    now_ms = time.time_ns() // 1_000_000
    parts.risk.record_funding(FundingPayment(payment_id="1", symbol="BTC/USDT:USDT", amount=D("0.0421"), time_ms=now_ms))
    funding = next(line for line in rendered(parts.view()).splitlines() if "of it funding" in line)
    assert "0.0421" in funding.split("of it funding")[1].split("│")[0]


def test_narrow_terminal_still_renders_every_section() -> None:
    text = rendered(Parts().view(), width=80)
    assert "Connections" in text and "Circuit breakers" in text and "Latency" in text


def wide_snapshot() -> ViewSnapshot:
    """Long names and large numbers, a connection down, a breaker tripped and a market halted."""
    return ViewSnapshot(
        mode="live", stopping=None, uptime_s=D("100.0"), opportunities_detected=10, opportunities_executed=5,
        executions_succeeded=4, executions_failed=1, realized_pnl=D("-12.3456"), daily_pnl=D("-40.5"),
        daily_funding=D(0), max_daily_loss=D(50), exposure_usd=D(250), max_exposure_usd=D(500), in_flight_usd=D(0),
        quote_asset="USDT",
        connections=(
            ConnectionRow(market="gateio_futures", connected=False, message_age_ms=15000, messages=123456,
                          reconnects=3, resyncs=2, books_in_sync=0, books=2),
            ConnectionRow(market="mexc", connected=True, message_age_ms=3, messages=99999, reconnects=0, resyncs=0,
                          books_in_sync=2, books=2),
        ),
        opportunities=(),
        executions=(ExecutionRow(opportunity_id="tp7ra5548_btc", symbol="BTC/USDT", state="FAILED",
                                 realized_profit=D("-1.2345"), execution_ms=D("12.3")),),
        venues=(VenueRow(market="gateio_futures", positions=2, position_usd=D("-123456.78"),
                         free_quote=D("1234567.89")),),
        latencies=(LatencyRow(stage="cycle", count=5, p50_ms=D("3.785"), p99_ms=D("153.865")),),
        breakers=(
            BreakerRow(breaker="consecutive_failures", tripped=True, count=3, threshold=3, trips=1,
                       reason="3 failed executions in a row"),
            BreakerRow(breaker="venue_errors", tripped=False, count=4, threshold=5, trips=0),
        ),
        halted=(HaltRow(market="gateio", symbol="ETH/USDT", reason="trade_status untradable"),),
    )


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_status_words_and_numbers_are_never_cut_from_80_columns(width: int) -> None:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render_snapshot(wide_snapshot()))
    text = console.export_text()
    lines = text.splitlines()
    assert "…" not in text
    down = next(line for line in lines if "DOWN" in line)
    assert "15000 ms" in down and "123456" in down and "0/2" in down
    assert "up" in next(line for line in lines if "99999" in line).split()
    tripped = next(line for line in lines if "TRIPPED" in line)
    assert "3/3" in tripped
    assert " ok " in next(line for line in lines if "4/5" in line)
    assert "HALTED" in text
    for number in ("-123456.78", "1234567.89", "-1.2345", "153.865", "-12.3456"):
        assert number in text


def test_an_empty_run_says_so() -> None:
    parts = Parts()
    parts.opportunities, parts.results = [], []
    text = rendered(parts.view())
    assert "none standing" in text and "none yet" in text


def test_poll_reports_each_event_once() -> None:
    parts = Parts()
    view = parts.view()
    _, events = view.poll()
    kinds = [e.event for e in events]
    assert kinds.count("execution") == 2 and kinds.count("breaker_trip") == 1 and kinds.count("resync") == 1
    resync = next(e for e in events if e.event == "resync")
    assert resync.data == {"market": "gateio", "symbol": "ETH/USDT", "reason": "gap", "count": 2, "total": 2}
    assert view.poll()[1] == []
    parts.results.append(result("r3eth", ArbitrageState.COMPLETED, "0.2", "50"))
    parts.gate_books["ETH/USDT"] = book_stats("ETH/USDT", False, {"gap": 3, "crossed": 1})
    _, events = view.poll()
    assert sorted((e.event, e.data.get("reason"), e.data.get("count")) for e in events) == [
        ("execution", None, None), ("resync", "crossed", 1), ("resync", "gap", 1),
    ]
    snapshot = view.latest
    assert snapshot is not None and [e.opportunity_id for e in snapshot.executions] == ["r3eth", "r2eth", "r1eth"]


class GoneReader(io.StringIO):
    """A stream whose reader went away after ``lines`` lines (``| head``)."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= text.count("\n")
        return super().write(text)


def test_status_lines_to_a_stream_whose_reader_went_away_stop_once_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = GoneReader(1)
    status = StatusLines(stream)
    with caplog.at_level(logging.WARNING, logger="arb.view"):
        status("first")
        status("second")
        assert not status.write("third")
    assert stream.getvalue() == "first\n" and status.closed
    assert [r.getMessage() for r in caplog.records] == [
        "status output closed ([Errno 32] Broken pipe); the run goes on without showing its status"
    ]
    assert choose_output(False, None) is Output.PLAIN and StatusLines(None).write("x") is False


def test_json_events_to_a_stream_that_failed_stay_silent_after_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    stream = GoneReader(1)
    handler = install_json_events(stream)
    events = logging.getLogger(EVENTS_LOGGER)
    try:
        with caplog.at_level(logging.WARNING, logger="arb.view"):
            for n in range(5):
                events.info("event %d", n)
    finally:
        events.removeHandler(handler)
        events.propagate = True
    assert len(stream.getvalue().splitlines()) == 1
    assert [r.getMessage() for r in caplog.records if r.name == "arb.view"] == [
        "event output closed ([Errno 32] Broken pipe); the run goes on without writing events"
    ]


@pytest.fixture
def json_events() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = install_json_events(stream)
    yield stream
    logger = logging.getLogger(EVENTS_LOGGER)
    logger.removeHandler(handler)
    logger.propagate = True


def test_headless_lines_are_json_objects_with_the_expected_keys(json_events: io.StringIO) -> None:
    view = Parts().view()
    view.report("[   1.0s] status line")
    objects = [json.loads(line) for line in json_events.getvalue().splitlines()]
    assert [o["event"] for o in objects] == ["execution", "execution", "breaker_trip", "resync", "status"]
    for o in objects:
        assert {"ts", "level", "logger", "event", "message"} <= o.keys()
    execution = objects[1]
    assert execution["opportunity_id"] == "r2eth" and execution["state"] == "FAILED"
    assert execution["realized_profit"] == "-0.0125" and execution["error"] == "sell leg rejected"
    assert execution["legs"][0]["market"] == "gateio" and execution["legs"][0]["filled"] == "0.0331"
    assert execution["legs"][0]["contract_size"] == "1"  # what a unit of the quantities is in base
    trip = objects[2]
    assert trip["breaker"] == "kill_switch" and trip["reason"] == "operator pressed stop"
    # What needs a look is a warning, with when it happened (the event is written at the next poll).
    assert trip["level"] == "WARNING" and isinstance(trip["tripped_at_ms"], int) and execution["level"] == "INFO"
    status = objects[-1]
    assert status["message"] == "[   1.0s] status line"
    for key in ("uptime_s", "realized_pnl", "connections", "opportunities", "venues", "latencies", "breakers"):
        assert key in status
    assert "executions" not in status  # each has its own line
    assert status["connections"][1] == {
        "market": "gateio", "connected": False, "message_age_ms": None, "messages": 1234, "reconnects": 3,
        "resyncs": 2, "books_in_sync": 1, "books": 1,
    }
    assert {lat["stage"]: lat["p50_ms"] for lat in status["latencies"]}["place"] == "2.500"


def test_the_json_formatter_keeps_its_own_keys_and_adds_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("arb.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    record.data = {"event": "not this", "value": D("1.50")}
    line = json.loads(JsonLogFormatter().format(record))
    assert line["event"] == "log" and line["message"] == "failed here" and line["value"] == "1.50"
    assert "ValueError: boom" in line["exception"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_output_is_headless_on_request_live_on_a_terminal_and_plain_otherwise() -> None:
    assert choose_output(True, Tty()) is Output.HEADLESS
    assert choose_output(False, Tty()) is Output.LIVE
    assert choose_output(False, io.StringIO()) is Output.PLAIN


def test_the_live_view_draws_on_a_terminal_console() -> None:
    parts = Parts()
    view = parts.view()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)

    async def body() -> None:
        async with view.live(console, refresh_per_second=20):
            parts.results.append(result("r9eth", ArbitrageState.COMPLETED, "0.1", "40"))
            await asyncio.sleep(0.2)

    asyncio.run(body())
    text = out.getvalue()
    assert "Connections" in text and "r9eth" in text and "kill_switch" in text


def test_a_failing_live_view_is_logged_and_never_ends_the_body(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A poll or a drawing that raises froze the view unsaid, then re-raised at the body's end,
    a bare traceback in place of the run's summary."""
    parts = Parts()
    view = parts.view()
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    calls = 0
    poll = view.poll

    def sometimes_failing() -> Any:
        nonlocal calls
        calls += 1
        if calls >= 3:
            raise ZeroDivisionError("boom in poll")
        return poll()

    monkeypatch.setattr(view, "poll", sometimes_failing)
    monkeypatch.setattr("arb.view.render_snapshot", lambda snapshot: 1 / 0)

    async def body() -> str:
        async with view.live(console, refresh_per_second=20):
            await asyncio.sleep(0.3)
        return "body ended"

    with caplog.at_level(logging.WARNING, logger="arb.view"):
        assert asyncio.run(body()) == "body ended"
    assert "live view: reading the engine's state failed" in caplog.text
    assert "live view: drawing failed" in caplog.text
    assert calls > 3  # polled on after the failure


def test_the_pipeline_keeps_each_symbols_standing_opportunity() -> None:
    (mexc, gate) = sorted(
        (i for i in default_instruments(("BTC",)) if not i.is_futures), key=lambda i: i.exchange.value
    )
    books = []
    for instrument, (bid, ask) in ((gate, ("59000", "60000")), (mexc, ("60400", "60500"))):
        scale = WireScale(*instrument.wire_scale())
        tick, lot = D(scale.tick_units).scaleb(-scale.price_decimals), D(scale.lot_units).scaleb(-scale.size_decimals)
        batch = DeltaBatch(4)
        batch.add(BID, int(D(bid) / tick), int(D(1) / lot))
        batch.add(ASK, int(D(ask) / tick), int(D(1) / lot))
        batch.first_update_id = batch.last_update_id = 1
        book = OrderBook(instrument.exchange.value)
        book.apply_snapshot(batch, 1)
        books.append((instrument, book, scale))
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: 2)
    (plan,) = pipeline.register_symbol("BTC/USDT", books)
    for leg in plan.legs:
        pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, D(1), D(1))
    found = pipeline.scan(plan.symbol_id)
    assert found is not None and pipeline.standing_opportunities() == [found]
    books[0][1].mark_out_of_sync()
    assert pipeline.scan(plan.symbol_id) is None and pipeline.standing_opportunities() == []


def test_run_headless_prints_json_lines_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    done = subprocess.run(
        [sys.executable, "-m", "arb", "run", "--duration", "2", "--headless"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [o["event"] for o in objects]
    assert "status" in kinds and kinds[-1] == "summary"
    summary = objects[-1]
    assert summary["ok"] is True and summary["stop_reason"] == "duration elapsed"
    # Every execution of the run has its own line, the last ones included.
    assert kinds.count("execution") == summary["statistics"]["opportunities_executed"]
    assert "arb run summary" in done.stderr


def test_a_headless_status_whose_poll_fails_is_logged_and_the_run_goes_on(tmp_path: Path) -> None:
    """The controller's housekeeping asks for the headless status: a poll that raised there ended
    that task, which stopped the engine ("stopped: arb status: RuntimeError") and failed the run."""
    script = """
import sys
import arb.view
poll, calls = arb.view.LiveView.poll, []
def failing_once(self):
    calls.append(1)
    if len(calls) == 1:  # the first status, a second into the run
        raise RuntimeError("boom in poll")
    return poll(self)
arb.view.LiveView.poll = failing_once
from arb.cli import main
sys.exit(main(["run", "--duration", "3", "--headless"]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert objects[-1]["event"] == "summary" and objects[-1]["stop_reason"] == "duration elapsed"
    assert [o["event"] for o in objects].count("status") >= 1  # those after the failure
    assert "live view: reading the engine's state failed" in done.stderr and "boom in poll" in done.stderr


def test_events_of_a_poll_that_fails_partway_come_with_the_next_status(
    json_events: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll that raised after its executions and breakers were marked reported dropped their
    events: the next poll took them as reported, and the headless channel never carried them."""
    parts = Parts()  # two executions, a tripped kill switch, one resync
    view = parts.view()
    connector = next(iter(parts.connectors.values()))
    health, calls = type(connector).health, []

    def failing_once(self: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("health read failed once")
        return health(self)

    monkeypatch.setattr(type(connector), "health", failing_once)
    view.report("first status")  # fails once the executions, breakers and halts are gathered
    view.report("second status")
    events = [json.loads(line)["event"] for line in json_events.getvalue().splitlines()]
    assert events == ["execution", "execution", "breaker_trip", "resync", "status"]


def test_results_dropped_before_they_were_shown_are_skipped_and_none_is_shown_twice() -> None:
    parts = Parts()
    window = 2  # the controller keeps only the newest results

    def executions(start: int) -> tuple[list[ExecutionResult], int]:
        return parts.results[max(start, len(parts.results) - window):], len(parts.results)

    view = LiveView(
        monitor=parts.monitor, risk=parts.risk, connectors=parts.connectors,
        opportunities=lambda: parts.opportunities, executions=executions, clock=lambda: parts.now,
    )
    parts.results.extend(result(f"r{n}eth", ArbitrageState.COMPLETED, "0.1", "50") for n in range(3, 7))
    snapshot, events = view.poll()
    assert [e.opportunity_id for e in snapshot.executions] == ["r6eth", "r5eth"]
    assert sum(e.event == "execution" for e in events) == 2
    assert not [e for e in view.poll()[1] if e.event == "execution"]


def test_a_halted_market_shows_in_the_breaker_table_and_is_an_event_when_it_halts_and_resumes() -> None:
    parts = Parts()
    halted: dict[BookKey, str] = {}
    view = LiveView(
        monitor=parts.monitor, risk=parts.risk, connectors=parts.connectors, opportunities=lambda: [],
        executions=lambda start: ([], 0), halted=halted, clock=lambda: parts.now,
    )
    view.poll()
    halted[BookKey(ExchangeName.GATEIO, "ETH/USDT")] = "no longer tradable: trade_status=untradable"
    _, events = view.poll()
    assert [(e.event, e.data) for e in events] == [
        ("market_halted", {"market": "gateio", "symbol": "ETH/USDT", "reason": "no longer tradable: trade_status=untradable"}),
    ]
    assert view.poll()[1] == []
    text = rendered(view)
    assert "market gateio ETH/USDT" in text and "HALTED" in text and "trade_status=untradable" in text
    halted.clear()
    _, events = view.poll()
    assert [(e.event, e.message) for e in events] == [("market_resumed", "gateio ETH/USDT: traded again")]
    assert "HALTED" not in rendered(view)


def test_a_position_near_its_liquidation_shows_in_the_breaker_table_and_is_an_event_both_ways() -> None:
    parts = Parts()
    view = LiveView(
        monitor=parts.monitor, risk=parts.risk, connectors=parts.connectors, opportunities=lambda: [],
        executions=lambda start: ([], 0), clock=lambda: parts.now,
    )
    view.poll()
    perp = ExchangeName.GATEIO_FUTURES

    def read(bps: str) -> None:
        holding = FuturesHolding(base=D("-0.1"), lot=D("0.0001"), entry_price=D(100), liquidation_distance_bps=D(bps))
        parts.risk.align_futures_positions(perp, {"ETH/USDT": holding}, ["ETH/USDT"])

    read("950")  # far enough: nothing to show
    assert view.poll()[1] == [] and "NEAR LIQ" not in rendered(view)
    read("312.5")
    snapshot, events = view.poll()
    assert [(e.event, e.data) for e in events] == [
        ("near_liquidation", {"market": "gateio_futures", "symbol": "ETH/USDT", "distance_bps": D("312.5")}),
    ]
    assert [(n.market, n.symbol, n.distance_bps) for n in snapshot.near_liquidation] == [
        ("gateio_futures", "ETH/USDT", D("312.5"))
    ]
    assert view.poll()[1] == []
    text = rendered(view)
    assert "gateio_futures ETH/USDT" in text and "NEAR LIQ" in text and "312.5 bps from liquidation" in text
    read("600")
    assert [(e.event, e.message) for e in view.poll()[1]] == [
        ("liquidation_cleared", "gateio_futures ETH/USDT: far enough from its liquidation")
    ]
    assert "NEAR LIQ" not in rendered(view)


def test_a_residual_awaiting_approval_shows_in_the_breaker_table_and_is_an_event_both_ways() -> None:
    parts = Parts()
    recovery = RecoveryManager({}, max_loss_quote=D(1))
    view = LiveView(
        monitor=parts.monitor, risk=parts.risk, connectors=parts.connectors, opportunities=lambda: [],
        executions=lambda start: ([], 0), recoveries=recovery.get_active_recoveries, clock=lambda: parts.now,
    )
    view.poll()  # the first poll's events (the fixture's breaker trip) are not this test's
    assert view.poll()[1] == [] and "APPROVAL" not in rendered(view)
    recovery.restore_flagged("o7", "BTC/USDT", D("0.25"), "interrupted by an engine restart with unmatched legs")
    snapshot, events = view.poll()
    assert [(e.event, e.data) for e in events] == [
        ("awaiting_approval", {"opportunity_id": "o7", "symbol": "BTC/USDT", "residual": D("0.25"),
                               "reason": "interrupted by an engine restart with unmatched legs"}),
    ]
    assert [(a.opportunity_id, a.residual) for a in snapshot.awaiting_approval] == [("o7", D("0.25"))]
    assert view.poll()[1] == []  # said once
    text = rendered(view, width=300)
    assert "o7 BTC/USDT" in text and "APPROVAL" in text and "residual 0.25: interrupted by an engine" in text
    recovery.acknowledge("o7")
    assert [(e.event, e.message) for e in view.poll()[1]] == [("approval_cleared", "o7: acknowledged")]
    assert "APPROVAL" not in rendered(view)
