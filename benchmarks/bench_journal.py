"""Journal write latency: record_intent + record_ack, one committed transaction each.

``synchronous=FULL`` (the default: fsync on every commit, survives power loss) against
``NORMAL`` (sync at checkpoints only, survives a killed process). The numbers depend on
the disk: on tmpfs the fsync is nearly free, on a real SSD it dominates.

Groups ``journal order cycle (memory|file)``: one IOC order's whole journal life under
``synchronous=NORMAL``: its intent, the venue's final answer (filled) and its fill, as
three calls (``intent+ack+fill``, the baseline) or with the answer and the fill in one
``record_result`` (``intent+result``, what ``arb.orders`` does). Both find the intent and
decide its close from the journal's in-memory index of open intents. Before that index
every record read the rows again (5 SELECTs per order): the same ``intent+ack+fill`` took
about 1.6x as long in memory and 1.3x on a file.

Groups ``journal execution (memory|file)``: one execution's writes as the executor makes
them, both intents in one ``record_intents`` and each order's answer with its fill in one
``record_result``, against the same SQL statements with prebuilt parameters sent straight to
``sqlite3`` (``bare statements``): the floor of those writes, so the difference is the
journal's own Python.

Groups ``journal intents before sending (FULL|NORMAL)``: what the order path waits for, both
intents of an execution made durable by a commit or by an append to the intent log.

Group ``journal client-id hashes merge``: folding the 4,096 client-id hashes journaled since the
last merge into the sorted array of a journal holding a million intents, as the trade loop does
at an idle moment (``_KeyHashes.merge``), against ``np.union1d`` over the same arrays (how it
was merged before: a sort of the whole array again).
"""

from __future__ import annotations

import itertools
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pytest

from arb.exchanges.models import Fill, OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb import journal as journal_module
from arb.journal import AUTOCHECKPOINT_PAGES, MERGE_KEY_HASHES, Journal
from arb.types import ExchangeName, OrderSide

ROUNDS = 300


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_intent_and_ack_round_trip(benchmark: Any, tmp_path: Path, synchronous: Literal["FULL", "NORMAL"]) -> None:
    """One intent and its ack, two commits."""
    benchmark.group = "journal.record_intent+record_ack"
    journal = Journal(tmp_path / "bench.sqlite3", synchronous=synchronous)
    counter = itertools.count()
    exchange = ExchangeName.GATEIO

    def setup() -> tuple[tuple[OrderRequest, OrderState], dict[str, Any]]:
        coid = f"c{next(counter)}"
        request = OrderRequest(
            symbol="BTC/USDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal("0.0123"),
            price=Decimal("60000.1"),
            client_order_id=coid,
        )
        state = OrderState(
            symbol="BTC/USDT",
            order_id=f"v{coid}",
            client_order_id=coid,
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            status=OrderStatus.NEW,
            quantity=Decimal("0.0123"),
            price=Decimal("60000.1"),
        )
        return (request, state), {}

    def run(request: OrderRequest, state: OrderState) -> None:
        journal.record_intent("opp", "buy", request, exchange)
        journal.record_ack(exchange, request.client_order_id, state)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    intents = journal.open_intents()
    journal.close()
    assert len(intents) == ROUNDS + 5 and all(i.order_id == f"v{i.client_order_id}" for i in intents)


def _order(index: int) -> tuple[OrderRequest, OrderState, Fill]:
    """An IOC buy, the venue's final answer to it (filled), and its one fill."""
    coid = f"c{index}"
    quantity, price = Decimal("0.0123"), Decimal("60000.1")
    request = OrderRequest(
        symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=quantity, price=price,
        client_order_id=coid, time_in_force=TimeInForce.IOC,
    )
    state = OrderState(
        symbol="BTC/USDT", order_id=f"v{coid}", client_order_id=coid, side=OrderSide.BUY, type=OrderType.LIMIT,
        status=OrderStatus.FILLED, quantity=quantity, price=price, filled_quantity=quantity, average_price=price,
    )
    fill = Fill(
        symbol="BTC/USDT", order_id=f"v{coid}", client_order_id=coid, trade_id=f"order:{coid}", side=OrderSide.BUY,
        price=price, quantity=quantity, fee=Decimal("0.738"), fee_asset="USDT", is_maker=False, timestamp_ms=1,
    )
    return request, state, fill


CYCLE_ROUNDS = 2000


@pytest.mark.parametrize("where", ["memory", "file"])
def test_order_cycle(benchmark: Any, tmp_path: Path, where: str) -> None:
    """One order's intent, its final ack (filled) and its fill: three calls, three commits.

    ``synchronous=NORMAL`` as the engine runs it; ``memory`` is the backtest's ``:memory:``
    journal, ``file`` a WAL file in ``tmp_path``. Every intent is closed afterwards.
    """
    benchmark.group = f"journal order cycle ({where})"
    benchmark.name = "intent+ack+fill"
    journal = Journal(":memory:" if where == "memory" else tmp_path / "bench.sqlite3", synchronous="NORMAL")
    counter = itertools.count()
    exchange = ExchangeName.GATEIO

    def setup() -> tuple[tuple[OrderRequest, OrderState, Fill], dict[str, Any]]:
        return _order(next(counter)), {}

    def run(request: OrderRequest, state: OrderState, fill: Fill) -> None:
        journal.record_intent("opp", "buy", request, exchange)
        journal.record_ack(exchange, request.client_order_id, state)
        journal.record_fill(exchange, fill, client_order_id=request.client_order_id)

    benchmark.pedantic(run, setup=setup, rounds=CYCLE_ROUNDS, iterations=1, warmup_rounds=20)
    assert journal.open_intents() == [] and len(journal.fills()) == CYCLE_ROUNDS + 20
    journal.close()


@pytest.mark.parametrize("where", ["memory", "file"])
def test_order_cycle_one_result(benchmark: Any, tmp_path: Path, where: str) -> None:
    """The same order with its ack and fill in one ``record_result``: two calls, two commits."""
    benchmark.group = f"journal order cycle ({where})"
    benchmark.name = "intent+result"
    journal = Journal(":memory:" if where == "memory" else tmp_path / "bench.sqlite3", synchronous="NORMAL")
    counter = itertools.count()
    exchange = ExchangeName.GATEIO

    def setup() -> tuple[tuple[OrderRequest, OrderState, Fill], dict[str, Any]]:
        return _order(next(counter)), {}

    def run(request: OrderRequest, state: OrderState, fill: Fill) -> None:
        journal.record_intent("opp", "buy", request, exchange)
        journal.record_result(exchange, request.client_order_id, state, [fill])

    benchmark.pedantic(run, setup=setup, rounds=CYCLE_ROUNDS, iterations=1, warmup_rounds=20)
    assert journal.open_intents() == [] and len(journal.fills()) == CYCLE_ROUNDS + 20
    journal.close()


EXECUTION_ROUNDS = 1000
_EVENT = (
    "INSERT INTO order_events (intent_id, kind, status, order_id, filled_quantity, closes, detail, at_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_FILL = (
    "INSERT OR IGNORE INTO fills (intent_id, exchange, symbol, trade_id, order_id, client_order_id, side, price, "
    "quantity, fee, fee_asset, is_maker, timestamp_ms, source, recorded_at_ms) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INTENT = (
    "INSERT INTO intents (opportunity_id, leg, exchange, client_order_id, symbol, request, created_at_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _execution(index: int) -> list[tuple[str, ExchangeName, OrderRequest, OrderState, Fill]]:
    """The two orders of one execution (a buy and a sell, both filled) with their answers and fills."""
    legs = []
    for n, (leg, exchange) in enumerate((("buy", ExchangeName.MEXC), ("sell", ExchangeName.GATEIO))):
        request, state, fill = _order(2 * index + n)
        legs.append((leg, exchange, request, state, fill))
    return legs


@pytest.mark.parametrize("where", ["memory", "file"])
def test_execution_writes(benchmark: Any, tmp_path: Path, where: str) -> None:
    """Both intents, then each order's result: three commits."""
    benchmark.group = f"journal execution ({where})"
    benchmark.name = "record_intents+2 record_result"
    journal = Journal(":memory:" if where == "memory" else tmp_path / "bench.sqlite3", synchronous="NORMAL")
    counter = itertools.count()

    def setup() -> tuple[tuple[list[tuple[str, ExchangeName, OrderRequest, OrderState, Fill]]], dict[str, Any]]:
        return (_execution(next(counter)),), {}

    def run(legs: list[tuple[str, ExchangeName, OrderRequest, OrderState, Fill]]) -> None:
        journal.record_intents("opp", [(leg, exchange, request) for leg, exchange, request, _, _ in legs])
        for _, exchange, request, state, fill in legs:
            journal.record_result(exchange, request.client_order_id, state, (fill,))

    benchmark.pedantic(run, setup=setup, rounds=EXECUTION_ROUNDS, iterations=1, warmup_rounds=20)
    assert journal.open_intents() == [] and len(journal.fills()) == 2 * (EXECUTION_ROUNDS + 20)
    journal.close()


@pytest.mark.parametrize("where", ["memory", "file"])
def test_execution_bare_statements(benchmark: Any, tmp_path: Path, where: str) -> None:
    """The same rows from prebuilt parameters: the statements alone."""
    benchmark.group = f"journal execution ({where})"
    benchmark.name = "bare statements"
    path = ":memory:" if where == "memory" else str(tmp_path / "bench.sqlite3")
    journal = Journal(path, synchronous="NORMAL")  # creates the schema (in memory: on its connection only)
    db = journal._db if where == "memory" else sqlite3.connect(path, isolation_level=None)
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON", f"wal_autocheckpoint={AUTOCHECKPOINT_PAGES}"):
        db.execute(f"PRAGMA {pragma}")
    execute = db.cursor().execute
    counter = itertools.count()
    now_ms = 1_700_000_000_000

    def setup() -> tuple[tuple[list[tuple[tuple[object, ...], ...]]], dict[str, Any]]:
        rows = []
        for leg, exchange, request, state, fill in _execution(next(counter)):
            coid, market = request.client_order_id, exchange.value
            detail = {"average_price": state.average_price, "fee": state.fee, "fee_asset": state.fee_asset}
            rows.append((
                ("opp", leg, market, coid, request.symbol, msgspec.json.encode(request).decode(), now_ms),
                ("ack", state.status.value, state.order_id, str(state.filled_quantity), 0,
                 msgspec.json.encode(detail).decode(), now_ms),
                (market, fill.symbol, fill.trade_id, fill.order_id, coid, fill.side.value, str(fill.price),
                 str(fill.quantity), str(fill.fee), fill.fee_asset, 0, fill.timestamp_ms, "venue", now_ms),
                ("closed", "filled", None, str(fill.quantity), 1, "{}", now_ms),
            ))
        return (rows,), {}

    def run(rows: list[tuple[tuple[object, ...], ...]]) -> None:
        execute("BEGIN IMMEDIATE")
        ids = [execute(_INTENT, intent).lastrowid for intent, _, _, _ in rows]
        execute("COMMIT")
        for intent_id, (_, ack, fill, closed) in zip(ids, rows):
            execute("BEGIN IMMEDIATE")
            execute(_EVENT, (intent_id, *ack))
            execute(_FILL, (intent_id, *fill))
            execute(_EVENT, (intent_id, *closed))
            execute("COMMIT")

    benchmark.pedantic(run, setup=setup, rounds=EXECUTION_ROUNDS, iterations=1, warmup_rounds=20)
    (fills,) = db.execute("SELECT count(*) FROM fills").fetchone()
    assert fills == 2 * (EXECUTION_ROUNDS + 20) and journal.open_intents() == []
    if db is not journal._db:
        db.close()
    journal.close()


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
@pytest.mark.parametrize("deferred", [False, True], ids=["commit", "intent log"])
def test_intents_before_sending(
    benchmark: Any, tmp_path: Path, synchronous: Literal["FULL", "NORMAL"], deferred: bool
) -> None:
    """What the order path waits for: both intents of an execution made durable, by a database
    commit (the baseline) or by one append to the intent log (``deferred=True``, what the executor
    does). The intent log's own commit to the database comes after the orders are sent; here it
    runs in ``setup``, outside the timed body."""
    benchmark.group = f"journal intents before sending ({synchronous})"
    benchmark.name = "intent log" if deferred else "commit"
    journal = Journal(tmp_path / "bench.sqlite3", synchronous=synchronous)
    counter = itertools.count()

    def setup() -> tuple[tuple[list[tuple[str, ExchangeName, OrderRequest]]], dict[str, Any]]:
        journal.flush_intents()
        return ([(leg, exchange, request) for leg, exchange, request, _, _ in _execution(next(counter))],), {}

    def run(orders: list[tuple[str, ExchangeName, OrderRequest]]) -> None:
        journal.record_intents("opp", orders, deferred=deferred)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=20)
    assert len(journal.open_intents()) == 2 * (ROUNDS + 20)
    journal.close()


MERGE_HELD = 1_000_000  # client-id hashes a journal holds when the merge runs


@pytest.fixture(scope="module")
def held_keys() -> list[tuple[str, str]]:
    return [("gateio", f"opp{i}-b") for i in range(MERGE_HELD)]


def test_key_hashes_merge(benchmark: Any, held_keys: list[tuple[str, str]]) -> None:
    """``_KeyHashes.merge``: the new hashes inserted at their places."""
    benchmark.group = "journal client-id hashes merge"

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        hashes = journal_module._KeyHashes(held_keys)
        for n in range(MERGE_KEY_HASHES):
            hashes.add(("mexc", f"new{n}-s"))
        return (hashes,), {}

    def merge(hashes: Any) -> None:
        hashes.merge()

    benchmark.pedantic(merge, setup=setup, rounds=7, iterations=1)
    hashes = setup()[0][0]
    hashes.merge()
    merged = np.frombuffer(hashes._sorted, dtype=np.int64)
    assert len(merged) == MERGE_HELD + MERGE_KEY_HASHES and bool(np.all(merged[:-1] <= merged[1:]))


def test_key_hashes_union1d_baseline(benchmark: Any, held_keys: list[tuple[str, str]]) -> None:
    """Baseline: ``np.union1d`` of the held array and the new hashes (a sort of it all)."""
    benchmark.group = "journal client-id hashes merge"
    held = np.sort(np.fromiter((hash(key) for key in held_keys), dtype=np.int64))
    recent = np.fromiter((hash(("mexc", f"new{n}-s")) for n in range(MERGE_KEY_HASHES)), dtype=np.int64)
    merged = benchmark.pedantic(np.union1d, args=(held, recent), rounds=7, iterations=1)
    assert len(merged) == MERGE_HELD + MERGE_KEY_HASHES
