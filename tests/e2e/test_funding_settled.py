"""Funding settled on an open hedge is read, journaled once and counted in the daily PnL.

The simulated venues run in this process, announcing a funding rate of 0.0001 (longs pay
shorts) settled every second. Gate.io's BTC perpetual trades 80 bps rich, so the engine opens
long-spot/short-perpetual hedges and holds them while the dislocation lasts: the short
perpetual receives funding at every settlement. The engine reads the settlements every
``funding_refresh_interval_ms`` (1 s) and must count exactly the payments made: the venue's in
a dry run, and in a paper run, where the venues serve only public data, those its paper
perpetual market settles at the announced rate.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

from loopback import eventually

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController, dry_run_cluster
from arb.exchanges.models import FundingPayment
from arb.exchanges.paper import PaperExchange
from arb.journal import Journal
from arb.risk import MS_PER_DAY, RiskManager
from arb.sim.cluster import SimCluster, SimConfig
from arb.sim.market import Dislocation
from arb.sim.matching import from_atoms
from arb.types import ExchangeName, OrderSide

SECOND = 1_000_000_000
PERP = "BTC/USDT:USDT"
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
opportunity_types = ["spot_futures_hedge"]
funding_refresh_interval_ms = 1000

[risk]
# A settlement every second puts ~28,800 of them in the holding horizon: the expected funding
# is a margin of ~29,000 bps, far above the default ceiling.
max_profit_margin_bps = "1000000"
"""
START_USDT = D("5000")
PAPER = f"""
[paper]
mexc = {{ USDT = "{START_USDT}" }}
gateio = {{ USDT = "{START_USDT}" }}
gateio_futures = {{ USDT = "{START_USDT}" }}
"""


def rich_perpetual(tmp_path: Path, config: str) -> tuple[ConfigurationManager, SimCluster]:
    """``config`` loaded, and the simulated venues with Gate.io's perpetual 80 bps rich for 20 s,
    settling funding every second."""
    path = tmp_path / "arb.toml"
    path.write_text(config)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    rich = Dislocation(exchange=ExchangeName.GATEIO_FUTURES, symbol=PERP, start_ns=SECOND, duration_ns=20 * SECOND, bps=80)
    sim_config = SimConfig(symbols=manager.config.symbols, funding_interval_s=1)
    return manager, dry_run_cluster(manager.config, dislocations=(rich,), random_per_minute=0, sim_config=sim_config)


def test_funding_settled_on_open_hedges_is_journaled_once_and_counted(tmp_path: Path) -> None:
    manager, cluster = rich_perpetual(tmp_path, CONFIG)
    journal_path = tmp_path / "journal.sqlite3"

    async def scenario() -> tuple[list[tuple[str, D, int]], list[tuple[str, D, int]], list[str]]:
        async with cluster:
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            await engine.initialize(dry_run=True)
            hedges = engine.hedges
            assert hedges is not None
            running = asyncio.ensure_future(engine.run(duration_s=30))
            await eventually(hedges.has_positions, 5, "a hedge opened on the dislocation")
            await eventually(lambda: engine.summary().funding_payments >= 2, 10, "two settlements counted")
            await engine.shutdown("test over")
            summary = await running
            account = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES].ledger.account(
                cluster.config.api_key
            )
            settled = [(str(e.entry_id), from_atoms(e.change_atoms), e.wall_ms) for e in account.funding]
            with Journal(journal_path) as journal:
                counted = [(p.payment_id, p.amount, p.time_ms) for _, p in journal.funding_payments()]
            assert summary.funding_payments == len(counted)
            assert summary.funding_settled == sum((amount for _, amount, _ in counted), D(0))
            return settled, counted, summary.lines()

    settled, counted, lines = asyncio.run(scenario())
    assert len(counted) >= 2 and all(amount > 0 for _, amount, _ in counted)  # the short perpetual receives
    assert set(counted) <= set(settled)  # each journaled payment is one the venue made, to the digit
    assert len(set(counted)) == len(counted)  # once each, though the reads overlap
    assert any(line.startswith("  funding settled          ") for line in lines)
    # A restart counts today's payments in the daily PnL from the journal.
    risk = RiskManager(manager.config.risk_limits)
    with Journal(journal_path) as journal:
        restored = risk.restore(journal, {})
    today = restored.trading_day  # (a run across midnight UTC counts yesterday's payments on yesterday)
    expected = sum((amount for _, amount, time_ms in counted if time_ms // MS_PER_DAY == today), D(0))
    assert restored.funding_today_usd == expected


def test_paper_hedges_receive_the_announced_funding_and_the_engine_counts_it(tmp_path: Path) -> None:
    manager, cluster = rich_perpetual(tmp_path, CONFIG + PAPER)
    journal_path = tmp_path / "journal.sqlite3"

    async def scenario() -> tuple[list[FundingPayment], list[FundingPayment], D, D]:
        async with cluster:
            engine = ArbitrageController(manager, sim_endpoints=cluster.endpoints(), journal=Journal(journal_path))
            await engine.initialize(paper=True)
            perp = engine.traders[ExchangeName.GATEIO_FUTURES]
            assert isinstance(perp, PaperExchange)
            running = asyncio.ensure_future(engine.run(duration_s=30))
            await eventually(lambda: engine.summary().funding_payments >= 2, 15, "two paper settlements counted")
            await engine.shutdown("test over")
            summary = await running
            settled = list(await perp.funding_payments(0))
            with Journal(journal_path) as journal:
                counted = [p for market, p in journal.funding_payments() if market is ExchangeName.GATEIO_FUTURES]
            assert summary.funding_payments == len(counted)
            assert summary.funding_settled == sum((p.amount for p in counted), D(0))
            fills = [f for f in perp.fills() if f.symbol == PERP]
            assert fills and all(f.side is OrderSide.SELL for f in fills)  # shorts opened, none closed yet
            fees = sum((f.fee for f in fills), D(0))
            total = (await perp.balances())["USDT"].total
            return settled, counted, fees, total

    settled, counted, fees, total = asyncio.run(scenario())
    assert len(counted) >= 2 and all(p.amount > 0 for p in counted)  # the short perpetual receives
    assert set(counted) <= set(settled)  # each journaled payment is one the paper market made, to the digit
    assert len({p.payment_id for p in counted}) == len(counted)
    assert len({p.time_ms for p in settled}) == len(settled)  # one payment per settlement
    assert all(p.time_ms % 1000 == 0 for p in settled)  # stamped with the settlement time announced
    # The paper perpetual account: the start, less the fees of the shorts, plus every payment.
    assert total == START_USDT - fees + sum((p.amount for p in settled), D(0))
