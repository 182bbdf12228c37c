"""A market that stops trading, or changes its order grid, while the engine runs is no longer traded.

The simulated venues run in this process; MEXC's BTC/USDT trades 80 bps cheap for half a
minute, so the engine keeps buying there and selling on Gate.io. The engine reads the venues'
trading rules every second. Gate.io's answer is then edited: BTC/USDT is listed as untradable,
then as at the start, then with a coarser tick size. The engine must stop trading it, trade it
again, and stop again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from loopback import eventually

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController, RunSummary, dry_run_cluster
from arb.exchanges.base import BookKey
from arb.exchanges.connector import ExchangeConnector
from arb.instruments import Instrument, InstrumentCatalog, SkippedPair
from arb.journal import Journal
from arb.pipeline import ScannerPipeline, SymbolPlan
from arb.sim.cluster import SimCluster
from arb.sim.faults import VenueFaults
from arb.sim.market import Dislocation
from arb.sim.matching import MatchingEngine
from arb.types import ArbitrageOpportunity, ArbitrageState, ExchangeName, ExecutionResult, OrderSide

SECOND = 1_000_000_000
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
instrument_refresh_interval_ms = 1000

[exchanges.gateio]
markets = ["spot"]
"""
GATE_BTC = BookKey(ExchangeName.GATEIO, "BTC/USDT")


def dislocated(
    tmp_path: Path, config: str, market: ExchangeName, symbol: str, seconds: int, bps: int
) -> tuple[ConfigurationManager, SimCluster]:
    """The configuration ``config`` and simulated venues where ``market``'s ``symbol`` trades ``bps``
    away from 1 s for ``seconds``."""
    path = tmp_path / "arb.toml"
    path.write_text(config)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    moved = Dislocation(exchange=market, symbol=symbol, start_ns=SECOND, duration_ns=seconds * SECOND, bps=bps)
    return manager, dry_run_cluster(manager.config, dislocations=(moved,), random_per_minute=0)


async def trading(
    manager: ConfigurationManager, cluster: SimCluster, tmp_path: Path
) -> tuple[ArbitrageController, ScannerPipeline, asyncio.Future[RunSummary]]:
    """An engine started on ``cluster`` once it has made its first execution; its pipeline and run."""
    engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
    await engine.initialize(dry_run=True)
    pipeline = engine.pipeline
    assert pipeline is not None
    running = asyncio.ensure_future(engine.run(duration_s=40))
    await eventually(lambda: engine.result_count >= 1, 10, "a first execution")
    return engine, pipeline, running


def reduce_only_closes(journal_path: Path, results: list[ExecutionResult]) -> D:
    """The perpetual base ``results`` bought back, each a completed close whose futures leg the journal
    holds as reduce-only (nothing opened on a halted perpetual)."""
    closed = D(0)
    with Journal(journal_path) as journal:
        for result in results:
            futures_leg = next(leg for leg in result.legs if leg.exchange.is_futures)
            assert futures_leg.side is OrderSide.BUY and result.final_state is ArbitrageState.COMPLETED
            assert journal.intent(futures_leg.exchange, futures_leg.client_order_id).request.reduce_only
            closed += futures_leg.filled_quantity * D("0.0001")
    return closed


def test_a_market_that_stops_trading_or_changes_its_rules_is_halted_then_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager, cluster = dislocated(tmp_path, CONFIG, ExchangeName.MEXC, "BTC/USDT", 30, -80)
    listing = ["as started"]
    read = ExchangeConnector.read_instruments

    async def edited(connector: ExchangeConnector, symbols: Sequence[str] = ()) -> InstrumentCatalog:
        catalog = await read(connector, symbols)
        if connector.exchange is not ExchangeName.GATEIO or listing[0] == "as started":
            return catalog
        btc = catalog.get("BTC/USDT")
        others = [i for i in catalog if i.symbol != "BTC/USDT"]
        if listing[0] == "untradable":
            skipped = SkippedPair.of(btc.venue_symbol, "BTC", "USDT", None, "trade_status=untradable")
            return InstrumentCatalog(
                catalog.exchange, others, [*catalog.skipped, skipped], fees_from_account=catalog.fees_from_account
            )
        coarser = msgspec.structs.replace(btc, tick_size=btc.tick_size * 10)
        return InstrumentCatalog(
            catalog.exchange, [*others, coarser], catalog.skipped, fees_from_account=catalog.fees_from_account
        )

    monkeypatch.setattr(ExchangeConnector, "read_instruments", edited)

    async def scenario() -> tuple[list[str], list[str]]:
        async with cluster:
            engine, pipeline, running = await trading(manager, cluster, tmp_path)
            listing[0] = "untradable"
            await eventually(lambda: GATE_BTC in pipeline.halted, 5, "Gate.io BTC/USDT halted")
            halted_at = engine.result_count
            await asyncio.sleep(1.5)
            assert engine.result_count <= halted_at + 1  # at most one that had started before the halt
            during = engine.summary()
            listing[0] = "as started"
            await eventually(lambda: GATE_BTC not in pipeline.halted, 5, "Gate.io BTC/USDT resumed")
            resumed_at = engine.result_count
            await eventually(lambda: engine.result_count > resumed_at, 10, "an execution after resuming")
            listing[0] = "coarser tick"
            await eventually(lambda: GATE_BTC in pipeline.halted, 5, "Gate.io BTC/USDT halted for its rules")
            halted_at = engine.result_count
            await asyncio.sleep(2.5)  # two more reads: the rules still differ, so it stays halted
            assert GATE_BTC in pipeline.halted and engine.result_count <= halted_at + 1
            await engine.shutdown("test over")
            summary = await running
            return during.lines(), summary.halted_markets

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        lines, halted_at_end = asyncio.run(scenario())
    (halted,) = [line for line in lines if line.startswith("  market halted ")]
    assert halted.startswith("  market halted            gateio BTC/USDT: no longer tradable: ")
    assert halted.endswith("trade_status=untradable")
    assert halted_at_end == [
        "gateio BTC/USDT: trading rules changed (tick_size 0.1 -> 1.0); restart the engine to trade it by the new rules"
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("gateio BTC/USDT: not traded any more: no longer tradable") for m in messages)
    assert any(m.startswith("gateio BTC/USDT: tradable again") for m in messages)
    assert any(m.startswith("gateio BTC/USDT: not traded any more: trading rules changed (tick_size") for m in messages)


HEDGE_CONFIG = """
[engine]
symbols = ["BTC/USDT"]
opportunity_types = ["spot_futures_hedge"]
instrument_refresh_interval_ms = 1000
"""
PERP = "BTC/USDT:USDT"
GATE_PERP = BookKey(ExchangeName.GATEIO_FUTURES, PERP)


def test_hedges_on_a_perpetual_halted_for_a_delisting_are_still_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Gate.io's perpetual trades 80 bps rich from 1 s to 5 s; once hedges are open the venue lists
    it as being delisted: it takes reduce-only orders only. The engine halts it (no new hedge
    there) but still closes the hedges it holds, reduce-only, when the basis reverts."""
    manager, cluster = dislocated(tmp_path, HEDGE_CONFIG, ExchangeName.GATEIO_FUTURES, PERP, 4, 80)
    journal_path = tmp_path / "j.sqlite3"

    async def scenario() -> tuple[list[ExecutionResult], D, int]:
        loop = asyncio.get_running_loop()
        async with cluster:
            started = loop.time()
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            await engine.initialize(dry_run=True)
            pipeline, hedges, risk = engine.pipeline, engine.hedges, engine.risk
            assert pipeline is not None and hedges is not None and risk is not None
            running = asyncio.ensure_future(engine.run(duration_s=30))
            await eventually(hedges.has_positions, 5, "a hedge opened on the dislocation")
            # Held while the venue's listing changes: until the engine reads it, openings would be
            # refused there.
            risk.kill("test: hold entries while the perpetual's listing changes")
            await asyncio.sleep(0.1)
            cluster.venues["gateio"].context.delisting.add(PERP)
            await eventually(lambda: GATE_PERP in pipeline.halted, 3, "the perpetual halted")
            risk.resume()
            held, open_base = len(engine.results), sum((p.base for p in hedges.positions()), D(0))
            assert open_base > 0 and loop.time() - started < 5, "halted while the basis is still rich"
            await eventually(lambda: not hedges.has_positions(), 8, "the hedges closed after the reversion")
            await engine.shutdown("test over")
            summary = await running
            assert summary.halted_markets and summary.halted_markets[0].startswith("gateio_futures BTC/USDT:USDT")
            contracts = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES].ledger.account(
                cluster.config.api_key
            ).position(PERP).contracts
            return engine.results[held:], open_base, contracts

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        after, open_base, contracts = asyncio.run(scenario())
    assert "the venue still takes orders that reduce a position there" in caplog.text
    assert after, "the hedges were closed"
    assert reduce_only_closes(journal_path, after) == open_base and contracts == 0


def test_a_restart_closes_the_hedges_on_a_perpetual_in_delisting_reduce_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hedges are open when the venue lists the perpetual as being delisted, and the engine is
    restarted before the basis reverts. The start refused the whole configuration for that one
    contract; it now starts with the perpetual halted, and closes the hedges reduce-only as the
    running engine would."""
    manager, cluster = dislocated(tmp_path, HEDGE_CONFIG, ExchangeName.GATEIO_FUTURES, PERP, 4, 80)
    journal_path = tmp_path / "j.sqlite3"

    async def scenario() -> tuple[list[ExecutionResult], D, str | None, int]:
        async with cluster:
            first = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            await first.initialize(dry_run=True)
            assert first.hedges is not None
            running = asyncio.ensure_future(first.run(duration_s=30))
            await eventually(first.hedges.has_positions, 5, "a hedge opened on the dislocation")
            await first.shutdown("test over")
            await running
            open_base = sum((p.base for p in first.hedges.positions()), D(0))
            cluster.venues["gateio"].context.delisting.add(PERP)
            second = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            await second.initialize(dry_run=True)
            pipeline, hedges = second.pipeline, second.hedges
            assert pipeline is not None and hedges is not None
            assert sum((p.base for p in hedges.positions()), D(0)) == open_base > 0
            halted = pipeline.halted.get(GATE_PERP)
            running = asyncio.ensure_future(second.run(duration_s=30))
            await eventually(lambda: not hedges.has_positions(), 10, "the hedges closed after the reversion")
            await second.shutdown("test over")
            await running
            contracts = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES].ledger.account(
                cluster.config.api_key
            ).position(PERP).contracts
            return second.results, open_base, halted, contracts

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        results, open_base, halted, contracts = asyncio.run(scenario())
    assert halted == f"no longer tradable: gateio_futures: instrument {PERP!r} was left out: in_delisting=true"
    assert "the venue still takes orders that reduce a position there" in caplog.text
    assert reduce_only_closes(journal_path, results) == open_base and contracts == 0


def test_a_leg_refused_by_a_market_in_delisting_has_the_rules_read_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The perpetual goes into delisting before its basis dislocates, and the rules are read only
    every minute: the first opening the venue refuses there has them read at once, and no new
    entry goes there until they are; the read halts the market. One refusal, not a race between
    the read and further openings (each refused, its spot leg unwound at a cost, three of them
    tripping the consecutive-failures breaker)."""
    config = HEDGE_CONFIG.replace("instrument_refresh_interval_ms = 1000", "instrument_refresh_interval_ms = 60000")
    manager, cluster = dislocated(tmp_path, config, ExchangeName.GATEIO_FUTURES, PERP, 3, 80)
    read_instruments = ExchangeConnector.read_instruments

    async def slow_to_answer(self: ExchangeConnector, symbols: Sequence[str] = ()) -> InstrumentCatalog:
        await asyncio.sleep(0.3)  # a venue's REST under load: the standing basis is scanned again meanwhile
        return await read_instruments(self, symbols)

    monkeypatch.setattr(ExchangeConnector, "read_instruments", slow_to_answer)

    async def scenario() -> tuple[list[ExecutionResult], list[str], int]:
        async with cluster:
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await engine.initialize(dry_run=True)
            pipeline = engine.pipeline
            assert pipeline is not None
            cluster.venues["gateio"].context.delisting.add(PERP)
            running = asyncio.ensure_future(engine.run(duration_s=4))
            await eventually(lambda: GATE_PERP in pipeline.halted, 4, "the perpetual halted")
            summary = await running
            contracts = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES].ledger.account(
                cluster.config.api_key
            ).position(PERP).contracts
            return engine.results, summary.breakers_tripped, contracts

    with caplog.at_level(logging.INFO, logger="arb.controller"):
        results, tripped, contracts = asyncio.run(scenario())
    assert "gateio_futures BTC/USDT:USDT refused (order_rejected): reading the trading rules again now" in caplog.text
    assert len(results) == 1 and results[0].final_state is ArbitrageState.FAILED
    assert all("CONTRACT_IN_DELISTING" in (r.error or "") for r in results)
    assert tripped == [] and contracts == 0


def test_a_new_taker_fee_prices_the_opportunities_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The account's tier changes while the engine runs: Gate.io's spot taker fee rises past what
    MEXC's 80 bps dislocation pays, then falls back; MEXC's halves. The engine takes each new rate
    at its next read: nothing is traded while the fees eat the spread, and every execution after
    a change is priced, planned and recorded with the rates of its moment. Nothing is halted."""
    manager, cluster = dislocated(tmp_path, CONFIG, ExchangeName.MEXC, "BTC/USDT", 30, -80)

    def engines(market: ExchangeName) -> list[MatchingEngine]:
        return list(cluster.venues[market.venue].exchanges[market].engines.values())

    def scanned(engine: ArbitrageController, market: ExchangeName) -> Instrument:
        assert engine.pipeline is not None
        (leg,) = [leg for plan, leg in engine.pipeline.legs_of(market) if plan.symbol == "BTC/USDT"]
        return leg.instrument

    def priced(engine: ArbitrageController, market: ExchangeName) -> D:
        return scanned(engine, market).taker_fee

    def planned_alike(engine: ArbitrageController) -> bool:
        """Whether execution plans with the instruments the scanner prices with."""
        assert engine.executor is not None
        instruments = engine.executor.instruments
        return all(instruments[m].get("BTC/USDT") is scanned(engine, m) for m in (ExchangeName.GATEIO, ExchangeName.MEXC))

    async def scenario() -> tuple[list[ExecutionResult], list[ArbitrageOpportunity], list[ArbitrageOpportunity], int,
                                  D, D, D, bool]:
        async with cluster:
            engine, pipeline, running = await trading(manager, cluster, tmp_path)
            assert planned_alike(engine)
            found: list[ArbitrageOpportunity] = []
            handler = pipeline.on_opportunity
            assert handler is not None

            def recording(opportunity: ArbitrageOpportunity, plan: SymbolPlan) -> None:
                found.append(opportunity)
                handler(opportunity, plan)

            pipeline.on_opportunity = recording
            gate = engines(ExchangeName.GATEIO)
            tier = [(e, e.instrument.taker_fee, e.instrument.maker_fee) for e in gate]
            gate_taker = tier[0][1]
            for e, taker, maker in tier:
                e.set_fees(D("0.01"), maker)  # 100 bps: the 80 bps no longer pay
            await eventually(lambda: priced(engine, ExchangeName.GATEIO) == D("0.01"), 5, "the higher fee taken")
            raised_at, found_at = engine.result_count, len(found)
            await asyncio.sleep(1.5)
            during, found_during = engine.result_count - raised_at, found[found_at:]
            mexc = next(e for e in engines(ExchangeName.MEXC) if e.symbol == "BTC/USDT")
            mexc_lower = mexc.instrument.taker_fee / 2
            mexc.set_fees(mexc_lower, mexc.instrument.maker_fee)
            for e, taker, maker in tier:
                e.set_fees(taker, maker)
            await eventually(
                lambda: (priced(engine, ExchangeName.GATEIO), priced(engine, ExchangeName.MEXC)) == (gate_taker, mexc_lower),
                5, "both new fees taken",
            )
            lowered_at, found_at = engine.result_count, len(found)
            await eventually(lambda: engine.result_count > lowered_at + 1, 10, "executions at the new rates")
            halted = bool(pipeline.halted)
            assert planned_alike(engine)
            await engine.shutdown("test over")
            await running
            return (engine.results[lowered_at + 1:], found_during, found[found_at:], during, gate_taker, mexc_lower,
                    D("0.01"), halted)

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        after, found_during, found_after, during, gate_taker, mexc_lower, raised, halted = asyncio.run(scenario())
    assert during <= 1 and found_during == []  # at most one execution started before the read
    by_id = {o.opportunity_id: o for o in found_after}
    assert {(by_id[r.opportunity_id].buy_fee, by_id[r.opportunity_id].sell_fee) for r in after} == {(mexc_lower, gate_taker)}
    assert not halted and "not traded any more" not in caplog.text
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"gateio BTC/USDT: taker_fee {gate_taker} -> {raised};") for m in messages)
    assert any(m.startswith(f"gateio BTC/USDT: taker_fee {raised} -> {gate_taker};") for m in messages)
    assert any(m.startswith("mexc BTC/USDT: taker_fee ") and f" -> {mexc_lower};" in m for m in messages)
    assert after and all(r.final_state is ArbitrageState.COMPLETED for r in after)
    for result in after:  # bought on MEXC, sold on Gate.io, each fee charged at the new rate
        # The entry legs; a leg the moving market left unfilled is completed by recovery's orders after them.
        buy, sell = result.legs[:2]
        assert (buy.side, sell.side) == (OrderSide.BUY, OrderSide.SELL)
        assert buy.exchange is ExchangeName.MEXC and sell.exchange is ExchangeName.GATEIO
        assert sell.fee == sell.filled_quantity * sell.average_price * gate_taker
        # MEXC charges a spot buy's fee in quote, on what it paid.
        assert (buy.fee, buy.fee_asset) == (buy.filled_quantity * buy.average_price * mexc_lower, "USDT")


def test_a_leg_refused_for_its_timestamp_has_the_venues_clock_read_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The rules (and clocks) are read only every minute. MEXC's clock falls 1.5 s behind ours
    while the engine trades there: the first order it refuses for its timestamp has the clock read
    at once, which names the cause."""
    config = CONFIG.replace("instrument_refresh_interval_ms = 1000", "instrument_refresh_interval_ms = 60000")
    manager, cluster = dislocated(tmp_path, config, ExchangeName.MEXC, "BTC/USDT", 30, -80)

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records]

    async def scenario() -> None:
        async with cluster:
            engine, _, running = await trading(manager, cluster, tmp_path)
            risk = engine.risk
            assert risk is not None
            # Between executions: an order already at the venue would end unknown (its queries and
            # cancel refused too) rather than refused for its timestamp.
            risk.kill("test: hold entries while the venue's clock moves")
            await eventually(lambda: engine._waiter is not None, 10, "the engine between executions")
            cluster.faults.configure("mexc", VenueFaults(clock_skew_ms=-1_500))
            risk.resume()
            await eventually(
                lambda: any(m.startswith("mexc: the local clock is") for m in messages()), 10, "the clock read"
            )
            await engine.shutdown("test over")
            await running

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        asyncio.run(scenario())
    refused = [m for m in messages() if m == "mexc POST /api/v3/order refused for its timestamp: reading the venue's clock now"]
    (clock,) = [m for m in messages() if m.startswith("mexc: the local clock is")]
    assert refused and "ahead of the venue's, which refuses signed requests 1000 ms ahead or more" in clock


def test_a_new_minimum_is_taken_as_the_engine_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Gate.io lists BTC/USDT with a minimum order value above anything the engine would trade, then
    as it was: the engine trades nothing there meanwhile, without halting the market, and trades
    again once the minimum comes down."""
    manager, cluster = dislocated(tmp_path, CONFIG, ExchangeName.MEXC, "BTC/USDT", 30, -80)
    minimum: list[D | None] = [None]
    read = ExchangeConnector.read_instruments

    async def edited(connector: ExchangeConnector, symbols: Sequence[str] = ()) -> InstrumentCatalog:
        catalog = await read(connector, symbols)
        if connector.exchange is not ExchangeName.GATEIO or minimum[0] is None:
            return catalog
        return catalog.replaced(msgspec.structs.replace(catalog.get("BTC/USDT"), min_notional=minimum[0]))

    monkeypatch.setattr(ExchangeConnector, "read_instruments", edited)

    def traded_minimum(engine: ArbitrageController) -> D:
        assert engine.pipeline is not None and engine.executor is not None
        (leg,) = [leg for plan, leg in engine.pipeline.legs_of(ExchangeName.GATEIO) if plan.symbol == "BTC/USDT"]
        assert engine.executor.instruments[ExchangeName.GATEIO].get("BTC/USDT") is leg.instrument
        return leg.instrument.min_notional

    async def scenario() -> tuple[D, int, bool]:
        async with cluster:
            engine, pipeline, running = await trading(manager, cluster, tmp_path)
            listed = traded_minimum(engine)
            minimum[0] = D(1_000_000)
            await eventually(lambda: traded_minimum(engine) == D(1_000_000), 5, "the higher minimum taken")
            raised_at = engine.result_count
            await asyncio.sleep(1.5)
            during = engine.result_count - raised_at
            halted = bool(pipeline.halted)
            minimum[0] = listed
            await eventually(lambda: traded_minimum(engine) == listed, 5, "the minimum back")
            lowered_at = engine.result_count
            await eventually(lambda: engine.result_count > lowered_at, 10, "an execution after the minimum came down")
            await engine.shutdown("test over")
            await running
            return listed, during, halted

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        listed, during, halted = asyncio.run(scenario())
    assert during <= 1 and not halted  # at most one execution started before the read
    messages = [r.getMessage() for r in caplog.records]
    assert f"gateio BTC/USDT: min_notional {listed} -> 1000000; traded by the new terms from now on" in messages
    assert f"gateio BTC/USDT: min_notional 1000000 -> {listed}; traded by the new terms from now on" in messages


def test_a_pair_closed_to_api_orders_is_halted_at_its_first_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MEXC lists BTC/USDT but takes API orders only on the pairs of ``GET /api/v3/defaultSymbols``
    and refuses the others with code 10007. The pair leaves that list after the engine started (the
    rules are read only every minute): the first leg refused there has the rules read at once, and
    the pair, no longer in the list, is halted before more executions pay to unwind the other leg."""
    config = CONFIG.replace("instrument_refresh_interval_ms = 1000", "instrument_refresh_interval_ms = 60000").replace(
        'symbols = ["BTC/USDT"]', 'symbols = ["BTC/USDT", "ETH/USDT"]'  # the list never empties (refused as unread)
    )
    manager, cluster = dislocated(tmp_path, config, ExchangeName.MEXC, "BTC/USDT", 3, 80)
    mexc_btc = BookKey(ExchangeName.MEXC, "BTC/USDT")

    async def scenario() -> tuple[list[ExecutionResult], list[str]]:
        async with cluster:
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await engine.initialize(dry_run=True)
            pipeline = engine.pipeline
            assert pipeline is not None
            cluster.faults.configure("mexc", VenueFaults(api_refused_symbols=frozenset({"BTCUSDT"})))
            running = asyncio.ensure_future(engine.run(duration_s=4))
            await eventually(lambda: mexc_btc in pipeline.halted, 4, "MEXC's BTC/USDT halted")
            summary = await running
            return engine.results, summary.breakers_tripped

    with caplog.at_level(logging.INFO, logger="arb.controller"):
        results, tripped = asyncio.run(scenario())
    assert "mexc BTC/USDT refused (invalid_request): reading the trading rules again now" in caplog.text
    assert "not open to API orders (not in GET /api/v3/defaultSymbols)" in caplog.text
    assert len(results) == 1 and results[0].final_state is ArbitrageState.FAILED
    assert all("symbol not support api" in (r.error or "") for r in results)
    assert tripped == []
