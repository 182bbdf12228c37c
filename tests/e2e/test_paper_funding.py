"""Paper hedges settle funding: the announced rate, on the paper perpetual position, journaled and counted.

The simulated venues run in this process and serve only public data, announcing a funding
rate of 0.0001 (longs pay shorts) settled every second. Gate.io's BTC perpetual trades
80 bps rich, so the paper run opens long-spot/short-perpetual hedges and holds them while
the dislocation lasts. Its paper perpetual market settles the announced rate on the short
position at each settlement time; the engine reads those payments as it reads a venue's.
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
from arb.sim.cluster import SimConfig
from arb.sim.market import Dislocation
from arb.types import ExchangeName, OrderSide

SECOND = 1_000_000_000
PERP = "BTC/USDT:USDT"
START_USDT = D("5000")
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
opportunity_types = ["spot_futures_hedge"]
funding_refresh_interval_ms = 1000

[risk]
# A settlement every second puts ~28,800 of them in the holding horizon: the expected funding
# is a margin of ~29,000 bps, far above the default ceiling.
max_profit_margin_bps = "1000000"

[paper]
mexc = {{ USDT = "{usdt}" }}
gateio = {{ USDT = "{usdt}" }}
gateio_futures = {{ USDT = "{usdt}" }}
"""


def test_paper_hedges_receive_the_announced_funding_and_the_engine_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG.format(usdt=START_USDT))
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    rich = Dislocation(exchange=ExchangeName.GATEIO_FUTURES, symbol=PERP, start_ns=SECOND, duration_ns=20 * SECOND, bps=80)
    sim_config = SimConfig(symbols=manager.config.symbols, funding_interval_s=1)
    cluster = dry_run_cluster(manager.config, dislocations=(rich,), random_per_minute=0, sim_config=sim_config)
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
