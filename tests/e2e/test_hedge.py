"""SPOT_FUTURES_HEDGE end to end: a scheduled basis dislocation opens hedged pairs, its reversion closes them.

An in-process dry run with only ``spot_futures_hedge`` enabled (MEXC spot, Gate.io spot and
perpetual) against the simulated venues. Gate.io's BTC perpetual trades 80 bps rich from 1 s
to 3 s of simulator time: the engine buys spot and sells the perpetual, then closes by
the opposite pair once the basis reverts (``arb.hedges``). Every number is checked against
the simulator's ledgers to the last unit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController, dry_run_cluster
from arb.hedges import HedgePosition
from arb.exchanges.models import OrderType
from arb.journal import Journal
from arb.sim.cluster import SimCluster
from arb.sim.market import Dislocation
from arb.sim.matching import from_atoms
from arb.types import ArbitrageState, ExchangeName, ExecutionResult, OrderSide, amount_text

SECOND = 1_000_000_000
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
opportunity_types = ["spot_futures_hedge"]
"""
PERP = "BTC/USDT:USDT"


def ledger(cluster: SimCluster) -> dict[str, D]:
    """The funded user's money: spot USDT and BTC (free + locked), futures USDT (free + margin),
    and the perpetual's signed contracts, realized PnL and entry notional of the open contracts."""
    user = cluster.config.api_key
    out = {"spot_usdt": D(0), "spot_btc": D(0)}
    for venue in cluster.venues.values():
        for market, exchange in venue.exchanges.items():
            balances = exchange.balances(user)
            if market.is_futures:
                if market is ExchangeName.GATEIO_FUTURES:
                    free, locked = balances["USDT"]
                    position = exchange.ledger.account(user).position(PERP)
                    out["futures_usdt"] = free + locked
                    out["contracts"] = D(position.contracts)
                    out["realized"] = from_atoms(position.realized_pnl_atoms)
                    out["open_cost"] = from_atoms(position.cost_atoms)
                continue
            out["spot_usdt"] += sum(balances["USDT"])
            out["spot_btc"] += sum(balances["BTC"])
    return out


def test_basis_dislocation_opens_and_reversion_closes_hedges_with_exact_pnl(tmp_path: Path) -> None:
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    rich = Dislocation(
        exchange=ExchangeName.GATEIO_FUTURES, symbol=PERP, start_ns=SECOND, duration_ns=2 * SECOND, bps=80
    )
    cluster = dry_run_cluster(manager.config, dislocations=(rich,), random_per_minute=0)
    journal_path = tmp_path / "journal.sqlite3"

    async def scenario() -> tuple[list[ExecutionResult], dict[str, D], dict[str, D], D]:
        async with cluster:
            before = ledger(cluster)
            controller = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            await controller.initialize(dry_run=True)
            summary = await controller.run(duration_s=5.5)
            assert summary.ok
            assert controller.hedges is not None
            positions = controller.hedges.positions()
            open_base = sum((p.base for p in positions), D(0))
            # The summary says how much of the realized PnL the open positions' openings locked in.
            assert summary.open_hedges == len(positions)
            assert summary.held_hedge_basis == sum((p.entry_basis * p.base for p in positions), D(0))
            if positions:
                assert f"{amount_text(summary.held_hedge_basis)} of it locked in {len(positions)} open hedges" in summary.lines()[5]
            return controller.results, before, ledger(cluster), open_base

    results, before, after, open_base = asyncio.run(scenario())
    assert results and all(r.final_state is ArbitrageState.COMPLETED for r in results)
    legs = [leg for r in results for leg in r.legs]
    opened = [r for r in results if r.legs[0].side is OrderSide.BUY and not r.legs[0].exchange.is_futures]
    closed = [r for r in results if r.legs[0].exchange.is_futures and r.legs[0].side is OrderSide.BUY]
    assert opened and closed, "the dislocation opens hedges and its reversion closes some"
    contract = D("0.0001")
    # The perpetual short never grew past the position limit, however long the dislocation stood.
    limit = manager.config.risk_limits.max_position_size_usd
    short = D(0)
    for result in results:
        for leg in result.legs:
            if leg.exchange.is_futures and leg.filled_quantity:
                short += leg.filled_quantity * contract * (1 if leg.side is OrderSide.SELL else -1)
                assert short * leg.average_price <= limit * D("1.01"), "within the limit at the mark, 1 % aside"

    # Positions: the perpetual's contracts are the negative of the hedge book's open base.
    assert after["contracts"] * contract == -open_base
    # Hedged: spot BTC bought (less the BTC fees of spot buys: Gate.io's; MEXC charges them in USDT)
    # equals the perpetual short.
    spot_buys = [
        leg for leg in legs if leg.side is OrderSide.BUY and not leg.exchange.is_futures and leg.filled_quantity
    ]
    assert all(leg.fee_asset == ("USDT" if leg.exchange is ExchangeName.MEXC else "BTC") for leg in spot_buys)
    btc_fees = sum((leg.fee for leg in spot_buys if leg.fee_asset == "BTC"), D(0))
    assert after["spot_btc"] - before["spot_btc"] + btc_fees == open_base
    # Exact PnL: the engine's realized profit of every execution (openings and closes) is the
    # cash the ledgers moved, with the short's entry notional still held and BTC fees at fill prices.
    btc_fee_value = sum(
        (leg.fee * (leg.average_price or D(0)) for leg in spot_buys if leg.fee_asset == "BTC"), D(0)
    )
    cash = (after["spot_usdt"] - before["spot_usdt"]) + (after["futures_usdt"] - before["futures_usdt"])
    # The simulator apportions a partly closed short's average entry cost in 1e-30 atoms, so a
    # non-terminating average leaves dust far below any currency unit; compare to 1e-12 USDT.
    unit = D("1e-12")
    engine_pnl = sum((r.realized_profit for r in results), D(0))
    assert engine_pnl.quantize(unit) == (cash + after["open_cost"] - btc_fee_value).quantize(unit)
    assert after["realized"] > 0, "closing the short after the reversion realized the basis on the perpetual"
    with Journal(journal_path) as journal:
        assert journal.open_intents() == []
        for result in results:  # every leg journaled, with its venue fill
            for leg in result.legs:
                assert journal.intent(leg.exchange, leg.client_order_id).request.quantity == leg.requested_quantity


@pytest.mark.parametrize("minimum", ["500", "0"], ids=["guarded", "unguarded"])
def test_a_perpetual_position_near_its_liquidation_is_not_grown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, minimum: str
) -> None:
    """The account holds a small short of Gate.io's perpetual margined at 50x, opened by hand before
    the engine starts: isolated, it is liquidated 1.5 % above its entry. With the default 5 % minimum
    distance the engine reads that at start-up and the dislocation's hedges, which would sell more
    of the perpetual, do not grow it; with the check off (0) they do."""
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG + f'[risk]\nmin_liquidation_distance_bps = "{minimum}"\n')
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    rich = Dislocation(
        exchange=ExchangeName.GATEIO_FUTURES, symbol=PERP, start_ns=SECOND, duration_ns=2 * SECOND, bps=80
    )
    cluster = dry_run_cluster(manager.config, dislocations=(rich,), random_per_minute=0)

    async def scenario() -> tuple[D, D, list[ExecutionResult]]:
        async with cluster:
            futures = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES]
            for engine in futures.engines.values():
                engine.leverage = 50
            futures.place_order(cluster.config.api_key, PERP, OrderSide.SELL, OrderType.MARKET, 3, time.monotonic_ns())
            by_hand = ledger(cluster)["contracts"]
            controller = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            summary = await controller.run(duration_s=3.5)
            assert summary.ok
            return by_hand, ledger(cluster)["contracts"], controller.results

    with caplog.at_level(logging.WARNING, logger="arb.risk"):
        by_hand, after, results = asyncio.run(scenario())
    assert by_hand == -3
    warning = "the position is 149.9"
    sold = [
        leg for result in results for leg in result.legs
        if leg.exchange.is_futures and leg.side is OrderSide.SELL and leg.filled_quantity
    ]
    if minimum == "0":
        assert sold, "unguarded, the hedges sold more of the perpetual"
        assert warning not in caplog.text
    else:
        assert after == by_hand and results == [], "guarded, nothing grew the short"
        assert warning in caplog.text and "under min_liquidation_distance_bps 500" in caplog.text


def test_hedges_against_both_spot_venues_that_offset_on_the_perpetual_stay_within_the_limit(tmp_path: Path) -> None:
    """MEXC spot trades 80 bps cheap and Gate.io spot 80 bps rich at once: the engine hedges a long
    MEXC spot with a short perpetual and a short Gate.io spot with a long one. Their perpetual legs
    net to nothing at the venue, so each opening passed a limit checked on the net alone, and both
    sides grew to dozens of times the limit (a close of either side leaves the venue with the other).
    Each side is held within the limit now, and the perpetual with it."""
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    dislocations = tuple(
        Dislocation(exchange=market, symbol="BTC/USDT", start_ns=SECOND, duration_ns=20 * SECOND, bps=bps)
        for market, bps in ((ExchangeName.MEXC, -80), (ExchangeName.GATEIO, 80))
    )
    cluster = dry_run_cluster(manager.config, dislocations=dislocations, random_per_minute=0)

    async def scenario() -> list[HedgePosition]:
        async with cluster:
            controller = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            summary = await controller.run(duration_s=4)
            assert summary.ok and controller.hedges is not None
            return controller.hedges.positions()

    positions = asyncio.run(scenario())
    limit = manager.config.risk_limits.max_position_size_usd
    assert {p.spot: p.base > 0 for p in positions} == {ExchangeName.MEXC: True, ExchangeName.GATEIO: False}
    for position in positions:
        assert abs(position.base) * position.futures_price <= limit, position
