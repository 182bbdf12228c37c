"""Crash safety: the engine is SIGKILLed mid-trading and restarted; the journal still accounts for every order.

The simulated venues run in this process (they outlive the engine); the engine runs as
``python -m arb run --sim-urls FILE`` in a child process. Each round waits until the child
has journaled a seeded random number of new order intents, waits a few more random
milliseconds, then kills it with SIGKILL, so kills land between "intent journaled" and
"order sent", "sent" and "acknowledged", "filled" and "fill written", and inside recovery.
Every restart reconciles the open intents by client id at start-up. A last, non-trading
start reconciles what the last kill left; then the journal is compared with the
simulator's own record of orders and fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

from arb.config import ConfigurationManager
from arb.controller import dry_run_cluster
from arb.journal import Journal
from arb.sim.cluster import SimCluster
from arb.sim.matching import Fill, OrderEvent, from_atoms
from arb.types import ExchangeName, OrderSide

SEED = 20240611
TARGET_EXECUTIONS = 100
MAX_ROUNDS = 12
ROUND_TIMEOUT_S = 20.0

CONFIG = """
[engine]
symbols = ["BTC/USDT"]
journal_path = "{journal}"

[risk]
min_profit_margin_bps = "{margin}"
max_profit_margin_bps = "1000000"  # the settling run's minimum (never enter) must not exceed it
max_consecutive_failures = 1000
# What a kill loses is measured here, not speed: on a loaded machine one slow execution latched
# the latency breaker, the engine stopped trading and the round missed its deadline.
max_execution_latency_ms = 60000

[exchanges.gateio]
markets = ["spot"]
"""


def write_config(tmp_path: Path, name: str, margin: str) -> Path:
    path = tmp_path / name
    path.write_text(CONFIG.format(journal=tmp_path / "journal.sqlite3", margin=margin))
    return path


def intent_count(journal: Path) -> int:
    """Intents written so far by the child (read-only; the child may be writing)."""
    if not journal.exists():
        return 0
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        (count,) = db.execute("SELECT count(*) FROM intents").fetchone()
        return int(count)
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0
    finally:
        db.close()


async def start_engine(config: Path, urls: Path, log: Path, duration: str | None = None) -> asyncio.subprocess.Process:
    argv = [sys.executable, "-m", "arb", "run", "--config", str(config), "--sim-urls", str(urls), "--headless",
            "--log-level", "WARNING"]
    if duration is not None:
        argv += ["--duration", duration]
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=log.parent,  # not the repository root: its arb_core sources would shadow the built package
        )


@contextlib.asynccontextmanager
async def killed_on_failure(child: asyncio.subprocess.Process) -> AsyncIterator[None]:
    """Kill ``child`` if the block fails while it runs: left running, it outlived the test and
    reconnected to the stopped venues for good, loading the machine under the tests after it."""
    try:
        yield
    except BaseException:
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise


Key = tuple[ExchangeName, str]


def simulator_record(cluster: SimCluster) -> tuple[set[Key], dict[Key, list[Fill]]]:
    """Every order the venues received from the funded user, and every fill they made, by (market, client id)."""
    user = cluster.config.api_key
    orders: set[tuple[ExchangeName, str]] = set()
    fills: dict[tuple[ExchangeName, str], list[Fill]] = defaultdict(list)
    for venue in cluster.venues.values():
        venue.drain_private_events()
        for market, event in venue.private_events:
            if event.user != user or event.client_id is None:
                continue
            # Gate.io carries the client id in ``text`` with its mandatory "t-" prefix.
            cid = event.client_id.removeprefix("t-") if market.venue == "gateio" else event.client_id
            if isinstance(event, OrderEvent):
                orders.add((market, cid))
            elif isinstance(event, Fill):
                fills[(market, cid)].append(event)
    return orders, fills


def test_sigkill_at_random_points_loses_and_doubles_nothing(tmp_path: Path) -> None:
    trading = write_config(tmp_path, "trade.toml", "10")
    settle_only = write_config(tmp_path, "settle.toml", "100000")  # reconciles at start-up, never trades
    manager = ConfigurationManager(trading, environ={})
    manager.load_configuration(dry_run=True)
    journal_path = tmp_path / "journal-sim.sqlite3"  # dry runs on --sim-urls journal beside the configured path
    urls = tmp_path / "sim.json"
    log = tmp_path / "engine.log"
    rng = random.Random(SEED)
    cluster = dry_run_cluster(manager.config, seed=SEED % 1000, random_per_minute=400)
    kills = 0

    async def scenario() -> None:
        nonlocal kills
        async with cluster:
            cluster.endpoints().write(urls)
            for _ in range(MAX_ROUNDS):
                before = intent_count(journal_path)
                child = await start_engine(trading, urls, log)
                async with killed_on_failure(child):
                    wanted = before + rng.randint(4, 36)
                    deadline = asyncio.get_running_loop().time() + ROUND_TIMEOUT_S
                    while intent_count(journal_path) < wanted and child.returncode is None:
                        assert asyncio.get_running_loop().time() < deadline, log.read_text()[-3000:]
                        await asyncio.sleep(0.003)
                    await asyncio.sleep(rng.uniform(0, 0.04))
                    assert child.returncode is None, f"engine exited with {child.returncode}: {log.read_text()[-3000:]}"
                    child.send_signal(signal.SIGKILL)
                    assert await child.wait() == -signal.SIGKILL
                kills += 1
                if executions(journal_path) >= TARGET_EXECUTIONS:
                    break
            final = await start_engine(settle_only, urls, log, duration="1")
            async with killed_on_failure(final):
                code = await asyncio.wait_for(final.wait(), ROUND_TIMEOUT_S)
            text = log.read_text()
            summary = text[text.rfind("arb run summary"):]
            # A kill between an execution's legs, or in its recovery, leaves a residual the next start
            # flags for an operator: when that start is this one, it exits 1 and says so, as it must.
            assert "all OK" in summary and code == (1 if "flagged this run" in summary else 0), text[-3000:]

    asyncio.run(scenario())
    orders, sim_fills = simulator_record(cluster)

    with Journal(journal_path) as journal:
        assert journal.open_intents() == []
        intents = {(ExchangeName(e), cid) for _, e, cid in rows(journal_path, "exchange, client_order_id")}
        # Write-ahead: the venues never saw an order the journal does not know.
        assert orders <= intents and orders
        recorded: dict[tuple[ExchangeName, str], list[tuple[D, D, D]]] = defaultdict(list)
        for record in journal.fills():
            fill = record.fill
            assert fill.client_order_id is not None
            key = (record.exchange, fill.client_order_id)
            recorded[key].append((fill.quantity, fill.price * fill.quantity, fill.fee))
        instruments = {i.exchange: i for i in cluster.instruments if i.symbol == "BTC/USDT"}
        assert set(recorded) == set(sim_fills), "every filled order is recorded, and nothing else"
        for key, made in sim_fills.items():
            instrument = instruments[key[0]]
            quantity = sum((instrument.lots_to_size(f.size_lots) for f in made), D(0))
            notional = sum(
                (instrument.ticks_to_price(f.price_ticks) * instrument.lots_to_size(f.size_lots) for f in made), D(0)
            )
            fee = sum((from_atoms(f.fee_atoms) for f in made), D(0))
            got = recorded[key]
            # Exactly once: the recorded quantity, value and fee are the venue's, not a multiple of them.
            assert sum((q for q, _, _ in got), D(0)) == quantity, key
            quantum = instrument.tick_size * instrument.lot_size
            assert (sum((n for _, n, _ in got), D(0)) / quantum).to_integral_value() * quantum == notional, key
            assert sum((f for _, _, f in got), D(0)) == fee, key
        # Flat or flagged: every opportunity's legs net to zero base, or it awaits an operator.
        for opp in {opp for opp, _, _ in rows(journal_path, "exchange, client_order_id")}:
            net = sum(
                (r.fill.quantity if r.fill.side is OrderSide.BUY else -r.fill.quantity for r in journal.fills(opp)),
                D(0),
            )
            flagged = any(step == "manual_approval" for step, _ in journal.recovery_steps(opp))
            assert net == 0 or flagged, opp
        settled = sum(1 for r in journal.fills() if r.source == "reconcile")
    assert kills >= 5 and executions(journal_path) >= TARGET_EXECUTIONS * 0.8
    print(f"kills {kills}, executions {executions(journal_path)}, orders {len(orders)}, filled orders "
          f"{len(sim_fills)}, fills {sum(len(v) for v in sim_fills.values())}, recorded by reconciliation {settled}")


def rows(journal: Path, columns: str) -> list[tuple[str, str, str]]:
    """(opportunity id, *columns) of every intent."""
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(f"SELECT opportunity_id, {columns} FROM intents")]
    finally:
        db.close()


def executions(journal: Path) -> int:
    """Opportunities the engine started to execute (each journals its intents first)."""
    if not journal.exists():
        return 0
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        (count,) = db.execute("SELECT count(DISTINCT opportunity_id) FROM intents").fetchone()
        return int(count)
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
