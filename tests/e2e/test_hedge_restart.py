"""SPOT_FUTURES_HEDGE across a restart: hedges opened by one engine are closed by the next one on the same journal.

The simulated venues (MEXC spot, Gate.io spot and perpetual) run in this process for the
whole test. Gate.io's BTC perpetual trades 80 bps rich from 1 s to 6 s of simulator
time. A first engine opens hedges during the dislocation and is shut down while it still
lasts, holding them open. A second engine starts on the same journal after the basis has
reverted: it rebuilds the hedge book from the journal (the same positions, to the last
digit), opens nothing, and closes the positions by the opposite pairs. The venues' ledgers
agree with the rebuilt book throughout. Or, when the perpetual position was closed at the
venue between the two engines, the second one finds the venue no longer holds it: it takes
the hedges out of its book and sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from decimal import Decimal as D
from pathlib import Path

import pytest
from loopback import eventually

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController, RunSummary, dry_run_cluster
from arb.exchanges.models import OrderType
from arb.hedges import HedgeBook, HedgePosition
from arb.instruments import InstrumentCatalog
from arb.journal import Journal
from arb.sim.cluster import SimCluster
from arb.sim.market import Dislocation
from arb.types import ArbitrageState, ExchangeName, ExecutionResult, OrderSide, amount_text

SECOND = 1_000_000_000
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
opportunity_types = ["spot_futures_hedge"]
"""
PERP = "BTC/USDT:USDT"
CONTRACT = D("0.0001")  # the simulated perpetual's base units per contract
DISLOCATION_END_S = 6.0  # generous: a loaded machine may take seconds to start the first engine


def perp_contracts(cluster: SimCluster) -> D:
    """The funded user's signed contracts of the Gate.io perpetual."""
    exchange = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES]
    return D(exchange.ledger.account(cluster.config.api_key).position(PERP).contracts)


def _setup(tmp_path: Path, extra: str = "") -> tuple[ConfigurationManager, SimCluster]:
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG + extra)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    rich = Dislocation(
        exchange=ExchangeName.GATEIO_FUTURES, symbol=PERP, start_ns=SECOND,
        duration_ns=int((DISLOCATION_END_S - 1) * SECOND), bps=80,
    )
    return manager, dry_run_cluster(manager.config, dislocations=(rich,), random_per_minute=0)


async def open_hedges(manager: ConfigurationManager, cluster: SimCluster, journal_path: Path) -> list[HedgePosition]:
    """Run the first engine during the dislocation and stop it while the dislocation lasts: the hedges stay open."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
    await first.initialize(dry_run=True)
    summary = await first.run(duration_s=max(2.6 - (loop.time() - started), 0.5))
    assert summary.ok and first.hedges is not None
    # The hedges were decided with the perpetual's funding (read from the simulated venue).
    assert first.funding is not None and first.pipeline is not None
    assert [(r.exchange, r.rate) for r in first.funding.rates()] == [(ExchangeName.GATEIO_FUTURES, D("0.0001"))]
    assert first.funding.refused == 0 and first.pipeline.dropped_for_funding == 0
    assert loop.time() - started < DISLOCATION_END_S, "the first engine must stop before the basis reverts"
    await asyncio.sleep(max(DISLOCATION_END_S + 0.3 - (loop.time() - started), 0))
    return first.hedges.positions()


def test_a_restarted_engine_rebuilds_the_hedges_from_the_journal_and_closes_them(tmp_path: Path) -> None:
    manager, cluster = _setup(tmp_path)
    journal_path = tmp_path / "journal.sqlite3"

    async def scenario() -> tuple[list[HedgePosition], list[HedgePosition], D, list[ExecutionResult], list[HedgePosition], D]:
        async with cluster:
            held = await open_hedges(manager, cluster, journal_path)
            contracts_held = perp_contracts(cluster)
            second = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            await second.initialize(dry_run=True)
            assert second.hedges is not None
            rebuilt = second.hedges.positions()
            summary = await second.run(duration_s=2.5)
            assert summary.ok
            return held, rebuilt, contracts_held, second.results, second.hedges.positions(), perp_contracts(cluster)

    held, rebuilt, contracts_held, results, left, contracts_left = asyncio.run(scenario())
    assert held, "the dislocation opened hedges"
    assert all(p.base > 0 for p in held)  # long spot, short the rich perpetual
    assert rebuilt == held  # quantities and average entry prices, exactly
    assert contracts_held * CONTRACT == -sum((p.base for p in held), D(0))

    # After the reversion the second engine only closes: buy the perpetual back, sell spot.
    assert results and all(r.final_state is ArbitrageState.COMPLETED for r in results)
    for result in results:
        futures_leg = next(leg for leg in result.legs if leg.exchange.is_futures)
        spot_leg = next(leg for leg in result.legs if not leg.exchange.is_futures)
        assert futures_leg.side is OrderSide.BUY and spot_leg.side is OrderSide.SELL
    closed = sum((next(leg for leg in r.legs if leg.exchange.is_futures).filled_quantity for r in results), D(0))
    open_base = sum((p.base for p in left), D(0))
    assert open_base == sum((p.base for p in held), D(0)) - closed * CONTRACT
    assert open_base < sum((p.base for p in held), D(0))
    assert contracts_left * CONTRACT == -open_base  # the venue holds what the book says


def test_a_restarted_engine_drops_hedges_whose_futures_were_closed_at_the_venue_and_sends_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager, cluster = _setup(tmp_path)
    journal_path = tmp_path / "journal.sqlite3"

    async def scenario() -> tuple[list[HedgePosition], list[HedgePosition], list[ExecutionResult], D, list[str]]:
        async with cluster:
            held = await open_hedges(manager, cluster, journal_path)
            # The operator buys the perpetual back by hand while no engine runs.
            futures = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES]
            short = -int(perp_contracts(cluster))
            assert short > 0
            futures.place_order(cluster.config.api_key, PERP, OrderSide.BUY, OrderType.MARKET, short, time.monotonic_ns())
            assert perp_contracts(cluster) == 0
            second = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            with caplog.at_level(logging.ERROR, logger="arb.hedges"):
                await second.initialize(dry_run=True)
            assert second.hedges is not None and second.risk is not None
            rebuilt = second.hedges.positions()
            # The risk manager counts what the venues hold: the spot side alone.
            positions = [p.exchange.value for p in second.risk.get_current_risk_metrics().positions]
            summary = await second.run(duration_s=1.5)
            assert summary.ok and len(summary.hedges_dropped) == 1
            return held, rebuilt, second.results, perp_contracts(cluster), positions

    held, rebuilt, results, contracts_left, positions = asyncio.run(scenario())
    assert positions and not any(market.endswith("_futures") for market in positions)
    assert held and rebuilt == []
    booked = -sum((p.base for p in held), D(0))
    assert f"gateio_futures BTC/USDT: the journal's hedges hold {booked} base of futures, the venue 0" in caplog.text
    assert results == [] and contracts_left == 0  # no "close" opened a new position


async def run_until_hedged(engine: ArbitrageController, why_held: str) -> asyncio.Future[RunSummary]:
    """Run ``engine`` until a hedge opens, then engage its kill switch (entries held, ``why_held``);
    the running engine's future."""
    await engine.initialize(dry_run=True)
    hedges, risk = engine.hedges, engine.risk
    assert hedges is not None and risk is not None
    running = asyncio.ensure_future(engine.run(duration_s=30))
    await eventually(hedges.has_positions, 5, "a hedge opened on the dislocation")
    risk.kill(why_held)
    return running


async def hedge_then_buy_back_by_hand(
    engine: ArbitrageController, cluster: SimCluster
) -> tuple[asyncio.Future[RunSummary], D]:
    """Run ``engine`` until a hedge opens, then engage its kill switch (entries held) and buy the whole
    perpetual short back by hand at the venue; the running engine's future and the basis its hedges
    had locked in."""
    running = await run_until_hedged(engine, "test: hold entries while the perpetual is bought back by hand")
    hedges = engine.hedges
    assert hedges is not None
    await asyncio.sleep(0.1)  # an execution in flight finishes
    locked = sum((p.locked_basis for p in hedges.positions()), D(0))
    futures = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES]
    futures.place_order(cluster.config.api_key, PERP, OrderSide.BUY, OrderType.MARKET,
                        -int(perp_contracts(cluster)), time.monotonic_ns())
    return running, locked


@pytest.mark.parametrize(
    "refresh_ms", [200, 60_000], ids=["periodic check", "check brought forward by the balance push"]
)
def test_a_running_engine_drops_hedges_whose_futures_were_closed_at_the_venue_before_it_would_close_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, refresh_ms: int
) -> None:
    """With a one-minute check interval the hedge is still dropped at once: the buy-back moves the
    futures margin account, its balance push brings the position check forward."""
    manager, cluster = _setup(tmp_path, f"balance_refresh_interval_ms = {refresh_ms}\n")

    journal_path = tmp_path / "journal.sqlite3"
    catalogs: list[Mapping[ExchangeName, InstrumentCatalog]] = []

    async def scenario() -> tuple[list[ExecutionResult], list[str], D]:
        loop = asyncio.get_running_loop()
        async with cluster:
            started = loop.time()
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            running, locked = await hedge_then_buy_back_by_hand(engine, cluster)
            hedges, risk = engine.hedges, engine.risk
            assert hedges is not None and risk is not None
            with caplog.at_level(logging.ERROR, logger="arb.hedges"):
                await eventually(lambda: not hedges.has_positions(), 3, "the hedges dropped")
            held = len(engine.results)
            # Released once the basis has reverted: the engine would close its hedges now, had it kept them.
            await asyncio.sleep(max(DISLOCATION_END_S + 0.3 - (loop.time() - started), 0))
            risk.resume()
            await asyncio.sleep(1.0)
            positions = [p.exchange.value for p in risk.get_current_risk_metrics().positions]
            await engine.shutdown("test over")
            summary = await running
            (dropped,) = summary.hedges_dropped  # the run's summary says so too
            assert f"  HEDGE DROPPED            {dropped}" in summary.lines()
            # Its realized PnL holds the basis the dropped hedge locked in; it says so rather than nothing.
            assert summary.open_hedges == 0 and summary.dropped_positions == 1 and locked > 0
            assert summary.dropped_hedge_basis == locked and summary.held_hedge_basis >= locked
            pnl_line = next(line for line in summary.lines() if "realized PnL" in line)
            assert (f"({amount_text(summary.held_hedge_basis)} of it hedge basis locked in; 0 open hedges, 1 dropped "
                    f"with {amount_text(locked)} locked in them by the runs that opened them: their close outside the engine is not "
                    "in this figure)") in pnl_line
            catalogs.append(hedges.catalogs)
            return engine.results[held:], positions, perp_contracts(cluster)

    after, positions, contracts = asyncio.run(scenario())
    assert "hedge position(s) taken out of the book" in caplog.text
    with Journal(journal_path) as journal:  # the drop is journaled: a restart does not bring them back
        (drop,) = journal.hedge_drops()
        assert (drop.symbol, drop.futures) == ("BTC/USDT", ExchangeName.GATEIO_FUTURES)
        assert HedgeBook(catalogs[0], min_profit_bps=D(0)).restore(journal) == []
    assert after == [] and contracts == 0  # no "close" opened a new position
    assert positions and not any(market.endswith("_futures") for market in positions)


def test_a_close_sent_before_the_engine_saw_the_position_closed_by_hand_opens_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the balance push (as when the private stream is down) and with a one-minute check
    interval, the engine still believes in its hedge when the basis reverts and sends the close.
    Its futures leg is reduce-only: the venue refuses it, the spot sold is bought back, the
    perpetual stays flat, and the refused leg brings the position check forward, which drops the
    hedge so it is not closed again."""
    manager, cluster = _setup(tmp_path, "balance_refresh_interval_ms = 60000\n")

    async def scenario() -> tuple[list[ExecutionResult], D, bool]:
        loop = asyncio.get_running_loop()
        async with cluster:
            started = loop.time()
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "journal.sqlite3"))
            monkeypatch.setattr(engine, "_checking_positions", lambda read: read)  # no early check on a push
            running, _ = await hedge_then_buy_back_by_hand(engine, cluster)
            hedges, risk = engine.hedges, engine.risk
            assert hedges is not None and risk is not None
            held = len(engine.results)
            await asyncio.sleep(max(DISLOCATION_END_S + 0.3 - (loop.time() - started), 0))
            unseen = hedges.has_positions()  # the engine has not looked at the venue since
            risk.resume()
            with caplog.at_level(logging.ERROR, logger="arb.hedges"):
                await eventually(lambda: not hedges.has_positions(), 3, "the hedges dropped")
            await asyncio.sleep(0.5)
            await engine.shutdown("test over")
            summary = await running
            assert len(summary.hedges_dropped) == 1
            return engine.results[held:], perp_contracts(cluster), unseen

    closes, contracts, unseen = asyncio.run(scenario())
    assert unseen, "the hedge was still booked when the basis reverted"
    # Once: later closes would each pay the spot round trip again, while the executions in flight put
    # the position check off.
    (result,) = closes
    futures_leg = next(leg for leg in result.legs if leg.exchange.is_futures)
    assert futures_leg.side is OrderSide.BUY and futures_leg.filled_quantity == 0
    assert result.final_state is ArbitrageState.FAILED
    assert contracts == 0  # the plain buy would have opened a long position
    assert "hedge position(s) taken out of the book" in caplog.text


def test_a_close_that_fell_short_is_not_sent_again_before_a_position_check_compares_its_perpetual(
    tmp_path: Path,
) -> None:
    """The perpetual is bought back by hand just after a position check, as the basis reverts. The
    close goes out reduce-only and the venue refuses its futures leg; the position check it brings
    forward waits out its spacing and then finds an execution in flight, over and over, while the same
    close went out again each time, each paying the spot round trip (some twenty in half a second
    with the failures breaker out of the way). It is sent once, and the check drops the hedge."""
    manager, cluster = _setup(
        tmp_path, "balance_refresh_interval_ms = 60000\n[risk]\nmax_consecutive_failures = 1000\n"
    )

    async def scenario() -> list[ExecutionResult]:
        loop = asyncio.get_running_loop()
        async with cluster:
            started = loop.time()
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "journal.sqlite3"))
            running = await run_until_hedged(engine, "test: hold entries until the basis reverts")
            hedges, risk = engine.hedges, engine.risk
            assert hedges is not None and risk is not None
            await asyncio.sleep(max(DISLOCATION_END_S + 0.3 - (loop.time() - started), 0))
            held = len(engine.results)
            engine._positions_due.set()  # a check now finds the hedge at the venue
            await asyncio.sleep(0.05)
            futures = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES]
            futures.place_order(cluster.config.api_key, PERP, OrderSide.BUY, OrderType.MARKET,
                                -int(perp_contracts(cluster)), time.monotonic_ns())
            risk.resume()
            await eventually(lambda: not hedges.has_positions(), 5, "the hedge dropped")
            await asyncio.sleep(0.3)
            await engine.shutdown("test over")
            await running
            return engine.results[held:]

    closes = asyncio.run(scenario())
    (close,) = closes
    assert next(leg for leg in close.legs if leg.exchange.is_futures).filled_quantity == 0
