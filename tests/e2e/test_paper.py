"""Paper trading end to end: the simulator's public data in, fills simulated in-process, no order out.

The simulated venues run in this process and serve only market data to the engine: its
connectors hold no keys and its private side is ``PaperExchange``, so the simulator must
see no order at all. The paper ledgers (balances before and after) account exactly for the
realized PnL the engine reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal as D
from decimal import localcontext
from pathlib import Path

import pytest

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController, ArbitrageEngine, RunSummary, dry_run_cluster
from arb.exchanges.paper import PaperExchange
from arb.journal import Journal
from arb.sim.cluster import SimCluster
from arb.sim.market import Dislocation
from arb.sim.matching import OrderRejected
from arb.types import ExchangeName, ExecutionLeg, OrderSide

SECOND = 1_000_000_000
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
journal_path = "{journal}"

[exchanges.gateio]
markets = ["spot"]

[paper]
mexc = {{ USDT = "5000", BTC = "0.05" }}
gateio = {{ USDT = "5000", BTC = "0.05" }}
"""


def configuration(tmp_path: Path, latency_ms: int = 0) -> tuple[Path, ConfigurationManager]:
    path = tmp_path / "paper.toml"
    path.write_text(CONFIG.format(journal=tmp_path / "journal.sqlite3"))
    manager = ConfigurationManager(path, environ={"ARB_PAPER_LATENCY_MS": str(latency_ms)})
    manager.load_configuration(dry_run=True)
    return path, manager


def cheap_mexc(manager: ConfigurationManager) -> SimCluster:
    """MEXC's BTC/USDT 80 bps cheap from 1 s to 3 s of simulator time, no other dislocation."""
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=2 * SECOND, bps=-80
    )
    return dry_run_cluster(manager.config, dislocations=(dislocation,), random_per_minute=0)


def assert_no_orders_reached(cluster: SimCluster, client_ids: list[str]) -> None:
    """The simulator saw no order event of anyone, knows none of the client ids, and the funded user is untouched."""
    user = cluster.config.api_key
    for venue in cluster.venues.values():
        venue.drain_private_events()
        assert list(venue.private_events) == []
        for market, exchange in venue.exchanges.items():
            assert exchange.open_orders(user) == []
            balances = exchange.balances(user)
            for asset, amount in cluster.config.deposits.items():
                assert balances[asset] == (amount, D(0)), (market, asset)
            for symbol in exchange.engines:
                for cid in client_ids:
                    for text in (cid, f"t-{cid}"):
                        try:
                            exchange.get_order_by_client_id(user, symbol, text)
                        except OrderRejected:
                            continue
                        raise AssertionError(f"{market.value} received order {text}")


def assert_pnl_is_the_paper_ledger(
    legs: list[ExecutionLeg], change: dict[str, D], realized: D
) -> None:
    """MEXC charges spot fees in USDT on both sides; Gate.io in the asset received: BTC on a buy
    (valued at its order's average price), USDT on a sell."""
    with localcontext() as ctx:
        ctx.prec = 60  # as the executor values fees
        bought = sum((leg.filled_quantity for leg in legs if leg.side is OrderSide.BUY), D(0))
        sold = sum((leg.filled_quantity for leg in legs if leg.side is OrderSide.SELL), D(0))
        filled = [leg for leg in legs if leg.filled_quantity]
        assert {leg.fee_asset for leg in filled if leg.exchange is ExchangeName.MEXC} == {"USDT"}
        gate_buys = [leg for leg in filled if leg.exchange is ExchangeName.GATEIO and leg.side is OrderSide.BUY]
        assert all(leg.fee_asset == "BTC" for leg in gate_buys)
        base_fees = [(leg.fee, leg.average_price or D(0)) for leg in filled if leg.fee_asset == "BTC"]
        assert bought == sold > 0
        assert change.get("BTC", D(0)) == -sum((fee for fee, _ in base_fees), D(0))
        fees_in_quote = D(0)
        for fee, price in base_fees:
            fees_in_quote += fee * price
        assert realized == change["USDT"] - fees_in_quote > 0


@pytest.mark.parametrize("latency_ms", [0, 3])
def test_paper_run_on_the_simulators_public_data_trades_exactly_and_sends_no_order(
    tmp_path: Path, latency_ms: int
) -> None:
    _, manager = configuration(tmp_path, latency_ms)
    cluster = cheap_mexc(manager)

    async def scenario() -> tuple[RunSummary, ArbitrageController, dict[str, D]]:
        async with cluster:
            controller = ArbitrageController(
                manager, sim_endpoints=cluster.endpoints(), journal=Journal(tmp_path / "j.sqlite3")
            )
            await controller.initialize(paper=True)
            traders = controller.traders
            assert set(traders) == {ExchangeName.MEXC, ExchangeName.GATEIO}
            assert all(isinstance(t, PaperExchange) and t.latency_s == latency_ms / 1000 for t in traders.values())
            assert not any(c.can_trade for c in controller.connectors.values())  # no keys anywhere

            async def holdings() -> dict[str, D]:
                total: dict[str, D] = {}
                for trader in traders.values():
                    for asset, balance in (await trader.balances()).items():
                        total[asset] = total.get(asset, D(0)) + balance.total
                return total

            before = await holdings()
            assert before == {"USDT": D("10000"), "BTC": D("0.1")}
            summary = await controller.run(duration_s=3.5)
            after = await holdings()
            legs = [leg for result in controller.results for leg in result.legs]
            assert_no_orders_reached(cluster, [leg.client_order_id for leg in legs])
            # Each leg is the paper venue's own record of the order, and the sum of its paper fills.
            for leg in legs:
                trader = traders[leg.exchange]
                assert isinstance(trader, PaperExchange)
                state = await trader.query_order(leg.symbol, client_order_id=leg.client_order_id)
                assert (state.filled_quantity, state.average_price, state.fee) == (
                    leg.filled_quantity, leg.average_price, leg.fee
                )
                fills = [f for f in trader.fills() if f.client_order_id == leg.client_order_id]
                assert sum((f.quantity for f in fills), D(0)) == leg.filled_quantity
                assert sum((f.fee for f in fills), D(0)) == leg.fee
            return summary, controller, {a: after[a] - before[a] for a in before}

    summary, controller, change = asyncio.run(scenario())
    stats = summary.statistics
    assert summary.mode == "paper" and summary.lines()[0].startswith("arb run summary (paper,")
    assert summary.ok and summary.stop_reason == "duration elapsed"
    assert stats.opportunities_detected >= 1 and stats.opportunities_executed >= 1
    results = controller.results
    assert [r for r in results if r.legs and r.legs[0].exchange is ExchangeName.MEXC], "MEXC is the cheap side"
    legs = [leg for result in results for leg in result.legs]
    realized = sum((r.realized_profit for r in results), D(0))
    assert stats.total_realized_profit == realized
    assert_pnl_is_the_paper_ledger(legs, change, realized)


def test_python_m_arb_run_paper_attaches_to_the_simulators_public_endpoints(tmp_path: Path) -> None:
    config, manager = configuration(tmp_path)
    cluster = cheap_mexc(manager)
    urls = tmp_path / "sim.json"

    async def scenario() -> tuple[int, bytes, bytes]:
        async with cluster:
            cluster.endpoints().write(urls)
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "arb", "run", "--paper", "--config", str(config), "--sim-urls", str(urls),
                "--headless", "--duration", "3.5", "--log-level", "WARNING",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_"))},
                cwd=config.parent,  # not the repository root: its arb_core sources would shadow the built package
            )
            out, err = await asyncio.wait_for(child.communicate(), 40)
            assert_no_orders_reached(cluster, [])
            return child.returncode or 0, out, err

    code, out, err = asyncio.run(scenario())
    text = err.decode()
    assert code == 0, text[-3000:]
    assert "arb run summary (paper," in text
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert events, "headless mode writes JSON lines"
    executed = [line for line in text.splitlines() if "opportunities executed" in line]
    assert executed and int(executed[0].split()[-1]) >= 1, text[-3000:]
    assert "Traceback" not in text
    # The paper journal lies beside the configured path, apart from live and dry-run journals.
    assert (tmp_path / "journal-paper.sqlite3").exists()



def test_a_market_the_venue_offers_no_trading_on_stays_market_data_in_a_paper_run(tmp_path: Path) -> None:
    """MEXC futures cannot be traded live, so a paper run must not trade them either."""
    path = tmp_path / "paper.toml"
    path.write_text(
        CONFIG.format(journal=tmp_path / "journal.sqlite3").replace(
            '[exchanges.gateio]\nmarkets = ["spot"]',
            '[exchanges.gateio]\nmarkets = ["spot", "futures"]\n\n[exchanges.mexc]\nmarkets = ["spot", "futures"]',
        ).replace('symbols = ["BTC/USDT"]', 'symbols = ["BTC/USDT"]\nopportunity_types = ["spot_spot", "spot_futures_hedge"]')
    )
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    cluster = dry_run_cluster(manager.config, random_per_minute=0)

    async def scenario() -> dict[ExchangeName, bool]:
        async with cluster:
            engine = ArbitrageEngine(
                ArbitrageController(manager, sim_endpoints=cluster.endpoints(), journal=Journal(tmp_path / "j.sqlite3")),
                paper=True,
            )
            async with engine.session(trade=False):
                traders = engine.controller.traders
                assert set(traders) == {
                    ExchangeName.MEXC, ExchangeName.MEXC_FUTURES, ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES
                }
                return {m: isinstance(t, PaperExchange) and t.can_trade for m, t in traders.items()}

    assert asyncio.run(scenario()) == {
        ExchangeName.MEXC: True, ExchangeName.GATEIO: True, ExchangeName.GATEIO_FUTURES: True,
        ExchangeName.MEXC_FUTURES: False,
    }
