"""Journal: intents before, outcomes after, idempotent fills, reconciliation, and kill -9 safety."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arb.exchanges.models import Fill, FundingPayment, OrderRequest, OrderState, OrderStatus, OrderType
import arb.journal as journal_module
from arb.instruments import InstrumentCatalog
from arb.sim.cluster import default_instruments
from arb.journal import (
    SCHEMA_VERSION, IntentRecord, Journal, JournalError, ReusedClientIdError, not_a_database_problem,
)
from arb.types import ExchangeName, OrderSide

D = Decimal
GATE, MEXC = ExchangeName.GATEIO, ExchangeName.MEXC
WRITER = Path(__file__).with_name("journal_crash_writer.py")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.sqlite3", wall_clock_ms=lambda: 1_700_000_000_000)


def request(coid: str, quantity: str = "1", side: OrderSide = OrderSide.BUY, price: str = "100") -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=D(quantity), price=D(price), client_order_id=coid
    )


def state(coid: str, status: OrderStatus, filled: str = "0", average: str | None = None) -> OrderState:
    return OrderState(
        symbol="BTC/USDT",
        order_id=f"v-{coid}",
        client_order_id=coid,
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        status=status,
        quantity=D(1),
        price=D("100"),
        filled_quantity=D(filled),
        average_price=None if average is None else D(average),
        fee=D("0"),
        fee_asset="USDT",
    )


def fill(
    trade_id: str,
    quantity: str,
    price: str = "100",
    coid: str | None = "c1",
    order_id: str = "v-c1",
    side: OrderSide = OrderSide.BUY,
    fee: str = "0",
    fee_asset: str = "USDT",
) -> Fill:
    return Fill(
        symbol="BTC/USDT",
        order_id=order_id,
        client_order_id=coid,
        trade_id=trade_id,
        side=side,
        price=D(price),
        quantity=D(quantity),
        fee=D(fee),
        fee_asset=fee_asset,
        is_maker=False,
        timestamp_ms=5,
    )


def test_funding_payments_are_recorded_once_and_read_back_by_settlement_time(tmp_path: Path) -> None:
    from arb.types import ExchangeName

    gate = ExchangeName.GATEIO_FUTURES

    def payment(payment_id: str, amount: str, time_ms: int) -> FundingPayment:
        return FundingPayment(payment_id=payment_id, symbol="BTC/USDT:USDT", amount=Decimal(amount), time_ms=time_ms)

    first, second = payment("7", "0.0123", 2_000), payment("8", "-0.5", 1_000)
    with Journal(tmp_path / "j.sqlite3") as journal:
        assert journal.record_funding(gate, [first, second]) == [first, second]
        assert journal.record_funding(gate, [second, payment("9", "1", 3_000)]) == [payment("9", "1", 3_000)]
        # The same id on another market is another payment.
        assert journal.record_funding(ExchangeName.MEXC_FUTURES, [first]) == [first]
    with Journal(tmp_path / "j.sqlite3") as journal:  # durable
        assert journal.funding_payments() == [
            (gate, second), (gate, first), (ExchangeName.MEXC_FUTURES, first), (gate, payment("9", "1", 3_000))
        ]
        assert [p.payment_id for _, p in journal.funding_payments(since_ms=2_001)] == ["9"]


def test_a_funding_amount_that_is_no_number_names_the_journal_row(tmp_path: Path) -> None:
    """An earlier version recorded a venue's "NaN": the restart read it and stopped in a bare
    traceback that named neither the file nor the row."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_funding(ExchangeName.GATEIO_FUTURES, [
            FundingPayment(payment_id="77", symbol="BTC/USDT:USDT", amount=Decimal("0.5"), time_ms=1_000)
        ])
    db = sqlite3.connect(path)
    db.execute("UPDATE funding_payments SET amount = 'NaN' WHERE payment_id = '77'")
    db.commit()
    db.close()
    with Journal(path) as journal, pytest.raises(JournalError) as info:
        journal.funding_payments()
    assert str(info.value).startswith(f"journal {path}: funding_payments row gateio_futures 77: amount 'NaN': ")


def journal_to_damage(path: Path) -> None:
    """c1 filled 0.4 of 1 and c2 canceled having filled 0.5 of which no fill is in yet (both open), c3
    rejected, a funding payment, a hedge drop, the kill switch engaged and an order window."""
    with Journal(path) as journal:
        journal.record_intents("opp1", [("buy", GATE, request("c1")), ("sell", GATE, request("c2"))])
        journal.record_result(GATE, "c1", state("c1", OrderStatus.PARTIALLY_FILLED, "0.4"), [fill("t1", "0.4")])
        journal.record_cancel(GATE, "c2", state("c2", OrderStatus.CANCELED, "0.5"))
        journal.record_intents("opp2", [("buy", GATE, request("c3"))])
        journal.record_reject(GATE, "c3", "no")
        journal.record_funding(ExchangeName.GATEIO_FUTURES, [
            FundingPayment(payment_id="f1", symbol="BTC/USDT:USDT", amount=D("0.1"), time_ms=1_000)
        ])
        journal.record_hedge_drop("BTC/USDT", GATE, ExchangeName.GATEIO_FUTURES, "closed by hand")
        journal.record_kill_switch(True, "checked by hand")
        journal.record_order_windows({GATE: 5_000})


async def reconcile_at_venue_average(journal: Journal) -> None:
    async def resolve(intent: IntentRecord) -> OrderState:
        return state(intent.client_order_id, OrderStatus.FILLED, "1", average="100")

    await journal.reconcile(resolve)


@pytest.mark.parametrize(("damage", "read", "expected"), [
    # Reading the open intents' fills and final answers when the journal is opened.
    ("UPDATE fills SET quantity = '0.4x'", None, "fills row 1: quantity '0.4x': not a decimal number"),
    ("UPDATE order_events SET filled_quantity = '0,5' WHERE status = 'canceled'", None,
     "order_events row 2: filled_quantity '0,5': not a decimal number"),
    ("UPDATE fills SET quantity = 'Infinity'", None, "fills row 1: quantity 'Infinity': not a finite number"),
    # The start's restore and reconciliation, and the reports.
    ("UPDATE fills SET price = '6O000'", lambda j: j.fills(), "fills row 1: price '6O000': not a decimal number"),
    ("UPDATE fills SET fee = 'NaN'", lambda j: list(j.iter_fills()), "fills row 1: fee 'NaN': not a finite number"),
    ("UPDATE fills SET side = 'long'", lambda j: j.fills("opp1"), "fills row 1: side 'long': not buy or sell"),
    ("UPDATE fills SET exchange = 'gate'", lambda j: j.fills(), "fills row 1: exchange 'gate': not a market"),
    ("UPDATE fills SET price = '1e'", lambda j: asyncio.run(reconcile_at_venue_average(j)),
     "fills row 1: price '1e': not a decimal number"),
    ("UPDATE funding_payments SET amount = '1,5'", lambda j: j.funding_payments(),
     "funding_payments row gateio_futures f1: amount '1,5': not a decimal number"),
    ("UPDATE hedge_drops SET futures = 'gate_perp'", lambda j: j.hedge_drops(),
     "hedge_drops row 1: futures 'gate_perp': not a market"),
    ("UPDATE intents SET exchange = 'gate' WHERE client_order_id = 'c3'", lambda j: j.order_legs(),
     "intents row 3: exchange 'gate': not a market"),
    # Whole numbers: text put in an INTEGER column stays text.
    ("UPDATE funding_payments SET settled_at_ms = '1,000'", lambda j: j.last_funding_ms(),
     "funding_payments row gateio_futures f1: settled_at_ms '1,000': not a whole number"),
    ("UPDATE funding_payments SET settled_at_ms = 'soon'", lambda j: j.funding_payments(),
     "funding_payments row gateio_futures f1: settled_at_ms 'soon': not a whole number"),
    ("UPDATE hedge_drops SET at_ms = '12:00'", lambda j: j.hedge_drops(), "hedge_drops row 1: at_ms '12:00': not a whole number"),
    ("UPDATE kill_switch SET at_ms = 'now'", lambda j: j.kill_switch(), "kill_switch row 1: at_ms 'now': not a whole number"),
    ("UPDATE order_windows SET window_ms = '5s'", lambda j: j.order_windows(),
     "order_windows row gateio: window_ms '5s': not a whole number"),
])
def test_a_damaged_value_is_refused_naming_the_journal_table_row_and_column(
    tmp_path: Path, damage: str, read: Any, expected: str
) -> None:
    """A value edited by hand or damaged on disk: refused naming where it is, not a bare traceback
    from its conversion (``decimal.InvalidOperation`` names nothing)."""
    path = tmp_path / "j.sqlite3"
    journal_to_damage(path)
    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute(damage).rowcount == 1
    with pytest.raises(JournalError) as refused:
        with Journal(path) as journal:
            if read is not None:
                read(journal)
    assert str(refused.value).startswith(f"journal {path}: {expected}; repair that row")


@pytest.mark.parametrize("detail", ['{"reason": "r", "resid', '["reason"]', "5"])
def test_a_damaged_recovery_step_detail_is_refused_naming_its_row(tmp_path: Path, detail: str) -> None:
    """A detail cut short or edited by hand: ``approvals`` and the start's reads of the flags and of an
    interrupted execution's steps died with a bare ``msgspec.DecodeError`` naming nothing."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_recovery_step("opp1", "start")
        journal.record_recovery_step("opp1", "manual_approval", {"reason": "r", "residual": "0.5"})
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE recovery_steps SET detail = ? WHERE step = 'manual_approval'", (detail,))
    with Journal(path) as journal:
        for read in (journal.awaiting_approval, lambda: journal.recovery_steps("opp1")):
            with pytest.raises(JournalError) as refused:
                read()
            assert str(refused.value).startswith(f"journal {path}: recovery_steps row 2: detail: not a JSON object: ")


@pytest.mark.parametrize(("residual", "problem"), [
    ('"abc"', "'abc': not a decimal number"),
    ("null", "None: not a decimal number"),
    ('"NaN"', "'NaN': not a finite number"),
    ('"1e999999999"', "'1e999999999': out of range"),
    ("true", "True: not a decimal number"),
])
def test_a_flag_whose_residual_is_no_amount_is_refused_naming_its_row(
    tmp_path: Path, residual: str, problem: str
) -> None:
    """The start's restore of the flags died on it with a bare ``decimal`` traceback, and ``approvals``
    listed it as any other."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_recovery_step("opp1", "manual_approval", {"reason": "r", "residual": "0.5"})
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"""UPDATE recovery_steps SET detail = '{{"reason": "r", "residual": {residual}}}'""")
    with Journal(path) as journal, pytest.raises(JournalError) as refused:
        journal.awaiting_approval()
    assert str(refused.value).startswith(f"journal {path}: recovery_steps row 1: detail.residual {problem}")


def test_a_flags_residual_is_read_as_a_decimal(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as journal:
        journal.record_recovery_step("o1", "manual_approval", {"reason": "r", "residual": Decimal("-0.25")})
        journal.record_recovery_step("o2", "manual_approval", {"reason": "r"})
        assert [detail["residual"] for _, _, detail in journal.awaiting_approval()] == [Decimal("-0.25"), 0]


def test_a_refused_row_leaves_the_journal_able_to_close(tmp_path: Path) -> None:
    """The refused row's statement, left mid-read, kept the tables locked as long as the refusal was
    held: closing the journal (the failed start's clean-up) then failed on its checkpoint instead."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_intents("opp1", [("buy", GATE, request("c1"))])
        journal.record_result(GATE, "c1", state("c1", OrderStatus.FILLED, "1"), [fill("t1", "0.4"), fill("t2", "0.6")])
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE fills SET price = 'x' WHERE trade_id = 't1'")
    journal = Journal(path)
    with pytest.raises(JournalError, match="fills row 1: price 'x'") as refused:
        journal.fills()
    journal.close()  # ``refused`` still holds the refusal, and with it the frames that read the row
    assert not os.path.exists(f"{path}-wal")  # checkpointed and closed whole
    assert "repair that row" in str(refused.value)


def open_ids(journal: Journal) -> list[str]:
    return [intent.client_order_id for intent in journal.open_intents()]


def test_database_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        db.execute("PRAGMA user_version=99")
    with pytest.raises(JournalError, match=f"schema version 99, this arb reads versions up to {SCHEMA_VERSION}"):
        Journal(path)


def test_a_version_3_journal_gets_the_recovery_step_indexes_and_the_kill_switch_table(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    with Journal(path) as journal:
        journal.record_recovery_step("o1", "manual_approval", {"reason": "r"})
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP INDEX recovery_steps_opportunity")
        db.execute("DROP INDEX recovery_steps_approval")
        db.execute("DROP TABLE kill_switch")
        db.execute("PRAGMA user_version=3")
        db.commit()
    with Journal(path) as journal:
        assert [step for step, _ in journal.recovery_steps("o1")] == ["manual_approval"]
        assert [opp for opp, _, _ in journal.awaiting_approval()] == ["o1"]
        assert journal.kill_switch() is None
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (8,)
        one = db.execute(
            "EXPLAIN QUERY PLAN SELECT step, detail FROM recovery_steps WHERE opportunity_id = ? ORDER BY step_id", ("o1",)
        ).fetchall()
        flags = db.execute(
            "EXPLAIN QUERY PLAN SELECT opportunity_id FROM recovery_steps r "
            "WHERE r.step IN ('manual_approval', 'acknowledged') ORDER BY r.step_id"
        ).fetchall()
    assert "USING INDEX recovery_steps_opportunity" in str(one) and "USING INDEX recovery_steps_approval" in str(flags)


@pytest.mark.parametrize("had_the_table", [False, True])
def test_a_version_4_journal_gets_the_kill_switch_table_whether_or_not_it_had_one(
    tmp_path: Path, had_the_table: bool
) -> None:
    """Early version-4 files were written before the kill switch's table was part of that version:
    opened as current, the start failed on the missing table and no kill switch could be kept."""
    path = tmp_path / "v4.sqlite3"
    with Journal(path, wall_clock_ms=lambda: 7) as journal:
        journal.record_kill_switch(True, "the operator (SIGUSR1)")
    with closing(sqlite3.connect(path)) as db:
        if not had_the_table:
            db.execute("DROP TABLE kill_switch")
        db.execute("PRAGMA user_version=4")
        db.commit()
    with Journal(path, wall_clock_ms=lambda: 9) as journal:
        assert journal.kill_switch() == (("the operator (SIGUSR1)", 7) if had_the_table else None)
        journal.record_kill_switch(True, "the operator again")
        assert journal.kill_switch() == ("the operator again", 9)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_the_longest_order_window_of_each_market_is_kept_across_runs_and_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path, wall_clock_ms=lambda: 5) as journal:
        assert journal.order_windows() == {}
        journal.record_order_windows({ExchangeName.MEXC: 11_000, ExchangeName.GATEIO: 66_000})
        journal.record_order_windows({ExchangeName.MEXC: 6_000})  # a shorter one keeps the longer
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE order_windows")
        db.execute("PRAGMA user_version=5")  # as the version before wrote it
        db.commit()
    with Journal(path) as journal:
        assert journal.order_windows() == {}
        journal.record_order_windows({ExchangeName.MEXC: 11_000})
    with Journal(path) as journal:
        journal.record_order_windows({ExchangeName.MEXC: 12_000, ExchangeName.GATEIO: 1_000})
        assert journal.order_windows() == {ExchangeName.MEXC: 12_000, ExchangeName.GATEIO: 1_000}
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (8,)


def test_the_kill_switch_is_kept_as_last_changed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path, wall_clock_ms=lambda: 5) as journal:
        assert journal.kill_switch() is None
        journal.record_kill_switch(True, "the operator (SIGUSR1)")
    with Journal(path) as journal:
        assert journal.kill_switch() == ("the operator (SIGUSR1)", 5)
        journal.record_kill_switch(False, "the operator (SIGUSR2)")
    with Journal(path) as journal:
        assert journal.kill_switch() is None


def test_intent_is_open_until_the_fills_complete_it(journal: Journal) -> None:
    intent_id = journal.record_intent("opp1", "buy", request("c1"), GATE)
    assert open_ids(journal) == ["c1"]
    journal.record_ack(GATE, "c1", state("c1", OrderStatus.NEW))
    assert journal.record_fill(GATE, fill("t1", "0.4"))
    assert journal.is_open(intent_id)
    (intent,) = journal.open_intents()
    assert (intent.order_id, intent.filled_quantity) == ("v-c1", D("0.4"))
    assert (intent.opportunity_id, intent.leg) == ("opp1", "buy")
    assert journal.record_fill(GATE, fill("t2", "0.6"))
    assert open_ids(journal) == [] and not journal.is_open(intent_id)


def test_outcome_without_intent_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no intent for gateio client order id 'c9'; record_intent must come first"):
        journal.record_ack(GATE, "c9", state("c9", OrderStatus.NEW))


def test_a_journal_sqlite_can_only_read_is_refused_at_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite opens a file it cannot write (another owner's, mode 0444, a read-only mount) read-only
    and says so only at the first write: an engine would find out after its first orders."""
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    connect = sqlite3.connect

    def read_only(database: str, **kwargs: object) -> sqlite3.Connection:
        return connect(f"file:{database}?mode=ro", uri=True, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_module.sqlite3, "connect", read_only)
    with pytest.raises(JournalError, match=r"j\.sqlite3: not writable: attempt to write a readonly database"):
        Journal(path)


def test_a_file_that_is_not_a_database_is_refused_leaving_no_intent_log_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    path.write_text("notes, not a journal\n")
    with pytest.raises(JournalError, match=r"j\.sqlite3: cannot open: file is not a database"):
        Journal(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.sqlite3"]
    assert not_a_database_problem(path) == (
        "is not an SQLite database, so not a journal; name the journal's file, or one not made yet"
    )
    Journal(tmp_path / "new.sqlite3").close()
    assert not_a_database_problem(tmp_path / "new.sqlite3") is None


def test_a_failed_write_is_counted_and_reported_but_a_refused_record_is_not(journal: Journal) -> None:
    reasons: list[str] = []
    journal.on_write_failure = reasons.append
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    with pytest.raises(JournalError):
        journal.record_ack(GATE, "c9", state("c9", OrderStatus.NEW))  # a refusal: the journal works
    with pytest.raises(JournalError, match="already journaled"):
        journal.record_intent("opp2", "buy", request("c1"), GATE)  # a reused client id: refused too
    assert journal.write_failures == 0 and reasons == []
    journal._db.execute("PRAGMA query_only=ON")  # as a disk that stopped taking writes
    with pytest.raises(sqlite3.OperationalError):
        journal.record_ack(GATE, "c1", state("c1", OrderStatus.NEW))
    assert journal.write_failures == 1 and len(reasons) == 1
    assert "journal.sqlite3: attempt to write a readonly database" in reasons[0]
    journal._db.execute("PRAGMA query_only=OFF")
    journal.record_ack(GATE, "c1", state("c1", OrderStatus.NEW))
    assert journal.write_failures == 1


def test_failed_writes_on_the_order_path_are_reported_too(journal: Journal) -> None:
    """The executor's intents go to the intent log, and into the database with the next write: a
    database that stops taking them, or a log that cannot be appended to, is a failed write too."""
    reasons: list[str] = []
    journal.on_write_failure = reasons.append
    journal.record_intents("opp1", [("buy", GATE, request("c1")), ("sell", MEXC, request("c2"))], deferred=True)
    write = journal._write

    def disk_error(sql: str, *args: Any) -> Any:
        if sql.startswith("INSERT INTO intents"):
            raise sqlite3.OperationalError("disk I/O error")
        return write(sql, *args)

    journal._write = disk_error  # type: ignore[method-assign]
    with pytest.raises(JournalError, match="from the intent log: disk I/O error"):
        journal.record_ack(GATE, "c1", state("c1", OrderStatus.NEW))
    assert journal.write_failures == 1 and "disk I/O error" in reasons[0]
    journal._write = write  # type: ignore[method-assign]
    assert journal._log_fd is not None
    os.close(journal._log_fd)  # the log's descriptor gone: appends fail
    try:
        with pytest.raises(JournalError, match="cannot write the intent log"):
            journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True)
        assert journal.write_failures == 2 and "Bad file descriptor" in reasons[1]
    finally:
        journal._log_fd = os.open(os.devnull, os.O_WRONLY)  # for the fixture's close


def test_an_intent_another_writer_took_the_id_of_is_a_failed_write(tmp_path: Path) -> None:
    """Not a refusal of the record: the journal cannot store what the engine sent."""
    with Journal(tmp_path / "j.sqlite3") as journal:
        reasons: list[str] = []
        journal.on_write_failure = reasons.append
        journal.record_intents("opp1", [("buy", GATE, request("c1"))], deferred=True)
        with closing(sqlite3.connect(tmp_path / "j.sqlite3")) as other:
            other.execute(
                "INSERT INTO intents (intent_id, opportunity_id, leg, exchange, client_order_id, symbol, request, "
                "created_at_ms) VALUES (1, 'x', 'buy', 'mexc', 'x', 'BTC/USDT', '{}', 0)"
            )
            other.commit()
        with pytest.raises(JournalError, match="UNIQUE constraint failed"):
            journal.record_ack(GATE, "c1", state("c1", OrderStatus.NEW))
        assert journal.write_failures == 1 and reasons
        with closing(sqlite3.connect(tmp_path / "j.sqlite3")) as other:  # gone again: the journal can close
            other.execute("DELETE FROM intents WHERE opportunity_id = 'x'")
            other.commit()


def test_client_order_id_is_unique_per_market(journal: Journal) -> None:
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    journal.record_intent("opp1", "sell", request("c1"), MEXC)  # another market may reuse it
    with pytest.raises(JournalError, match="gateio client order id 'c1' is already journaled"):
        journal.record_intent("opp2", "buy", request("c1"), GATE)


def test_intents_of_one_execution_are_recorded_together_or_not_at_all(journal: Journal) -> None:
    ids = journal.record_intents("opp1", [("buy", GATE, request("c1")), ("sell", MEXC, request("c2"))])
    assert [journal.intent(m, c).intent_id for m, c in ((GATE, "c1"), (MEXC, "c2"))] == ids
    with pytest.raises(JournalError, match="gateio client order id 'c1' is already journaled"):
        journal.record_intents("opp2", [("sell", MEXC, request("c3")), ("buy", GATE, request("c1"))])
    assert [i.client_order_id for i in journal.open_intents()] == ["c1", "c2"]  # c3 rolled back with c1


def test_checkpoint_counts_commits_since_the_last_one(journal: Journal) -> None:
    before = journal.uncheckpointed
    journal.record_intents("opp1", [("buy", GATE, request("c1")), ("sell", MEXC, request("c2"))])
    journal.record_ack(GATE, "c1", state("c1", OrderStatus.NEW))
    assert journal.uncheckpointed == before + 2
    journal.checkpoint()
    assert journal.uncheckpointed == 0 and len(journal.open_intents()) == 2


def test_replayed_fill_is_recorded_once(journal: Journal) -> None:
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    assert journal.record_fill(GATE, fill("t1", "0.5")) is True
    assert journal.record_fill(GATE, fill("t1", "0.5")) is False
    assert [r.fill.trade_id for r in journal.fills()] == ["t1"]
    assert journal.open_intents()[0].filled_quantity == D("0.5")


def test_fill_without_client_id_matches_the_acked_order_id(journal: Journal) -> None:
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    journal.record_ack(GATE, "c1", state("c1", OrderStatus.NEW))
    journal.record_fill(GATE, fill("t1", "1", coid=None, order_id="v-c1"))
    (record,) = journal.fills("opp1")
    assert (record.opportunity_id, record.leg, record.source) == ("opp1", "buy", "venue")
    assert open_ids(journal) == []


def test_fill_of_no_intent_is_kept(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    assert journal.record_fill(MEXC, fill("t1", "1", coid="other", order_id="v-other"))
    (record,) = journal.fills()
    assert record.opportunity_id is None and "matches no journaled intent" in caplog.text


def test_final_status_waits_for_its_fills(journal: Journal) -> None:
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    journal.record_fill(GATE, fill("t1", "0.4"))
    # canceled after 0.6 filled, but only 0.4 of fills known yet: stays open
    journal.record_cancel(GATE, "c1", state("c1", OrderStatus.CANCELED, filled="0.6"))
    assert open_ids(journal) == ["c1"]
    journal.record_fill(GATE, fill("t2", "0.2"))
    assert open_ids(journal) == []


def test_ack_with_final_status_and_no_fill_closes(journal: Journal) -> None:
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    journal.record_ack(GATE, "c1", state("c1", OrderStatus.EXPIRED))
    assert open_ids(journal) == []


def test_reject_closes_and_unknown_stays_open(journal: Journal) -> None:
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    journal.record_intent("opp1", "sell", request("c2", side=OrderSide.SELL), MEXC)
    journal.record_reject(GATE, "c1", "insufficient balance")
    journal.record_unknown(MEXC, "c2", "HTTP 504 after send")
    assert open_ids(journal) == ["c2"]


def test_reconcile_with_a_fake_resolver(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    for coid in ("lost", "filled", "partial", "resting", "unreachable"):
        journal.record_intent("opp1", coid, request(coid), GATE)
    journal.record_fill(GATE, fill("p1", "0.3", coid="partial", order_id="v-partial"))
    journal.record_fill(GATE, fill("f1", "0.5", coid="filled", order_id="v-filled"))
    venue = {
        "lost": None,
        "filled": state("filled", OrderStatus.FILLED, filled="1", average="101"),
        "partial": state("partial", OrderStatus.CANCELED, filled="0.3", average="100"),
        "resting": state("resting", OrderStatus.NEW),
    }
    asked: list[tuple[ExchangeName, str, str]] = []

    async def resolve(intent: IntentRecord) -> OrderState | None:
        client_order_id = intent.client_order_id
        asked.append((intent.exchange, intent.request.symbol, client_order_id))
        if client_order_id == "unreachable":
            raise ConnectionError("gateio: connection refused")
        return venue[client_order_id]

    summary = asyncio.run(journal.reconcile(resolve))
    assert asked[0] == (GATE, "BTC/USDT", "lost") and len(asked) == 5
    assert (summary.checked, summary.filled, summary.partially_filled, summary.canceled) == (5, 1, 1, 0)
    assert (summary.not_found, summary.still_open, summary.errors, summary.fills_added) == (1, 1, 1, 1)
    assert open_ids(journal) == ["resting", "unreachable"]
    expected = "5 open intents: 1 filled, 1 partially filled, 0 canceled, 1 not found, 1 still open, 1 errors"
    assert expected in caplog.text
    # the gap fill makes the recorded fills average to the venue's price: 0.5 @ 100 + 0.5 @ 102
    gap = [r.fill for r in journal.fills() if r.source == "reconcile"]
    assert [(f.quantity, f.price, f.trade_id) for f in gap] == [(D("0.5"), D("102"), "reconciled:filled:1")]

    again = asyncio.run(journal.reconcile(resolve))
    assert (again.checked, again.still_open, again.errors, again.fills_added) == (2, 1, 1, 0)
    assert len(journal.fills()) == 3


def test_reconcile_hands_on_each_opportunity_before_asking_about_the_next(journal: Journal) -> None:
    """Handed on only once every intent was asked about, an opportunity reconciled before a stop
    was lost: its intents closed, the next start no longer saw it."""
    journal.record_intent("older", "o-b", request("o-b"), GATE)
    journal.record_intent("newer", "n-b", request("n-b"), GATE)
    journal.record_intent("older", "o-s", request("o-s", side=OrderSide.SELL), GATE)  # a recovery order, later
    journal.record_intent("newer", "n-s", request("n-s", side=OrderSide.SELL), GATE)
    events: list[str] = []

    async def resolve(intent: IntentRecord) -> OrderState | None:
        events.append(intent.client_order_id)
        return state("n-s", OrderStatus.NEW) if intent.client_order_id == "n-s" else None

    def reconciled(opportunity_id: str, left_open: list[tuple[IntentRecord, str | None]]) -> None:
        events.append(f"{opportunity_id} left {[(i.client_order_id, why) for i, why in left_open]}")

    asyncio.run(journal.reconcile(resolve, reconciled))
    assert events == ["o-b", "o-s", "older left []", "n-b", "n-s", "newer left [('n-s', None)]"]


def test_a_reconciled_fill_with_a_zero_average_is_priced_at_the_order(journal: Journal) -> None:
    """A venue answer that reads a missing average price as 0 would price the gap fill at 0 (or
    below, with fills recorded): it is priced at the order's price instead."""
    journal.record_intent("opp1", "zero", request("zero", price="100.5"), GATE)

    async def resolve(intent: IntentRecord) -> OrderState | None:
        return state("zero", OrderStatus.FILLED, filled="1", average="0")

    assert asyncio.run(journal.reconcile(resolve)).fills_added == 1
    (record,) = journal.fills()
    assert (record.fill.quantity, record.fill.price) == (D("1"), D("100"))  # the venue's order price


def test_opportunity_pnl_is_exact(journal: Journal) -> None:
    journal.record_intent("opp1", "buy", request("c1", quantity="0.3"), MEXC)
    journal.record_intent("opp1", "sell", request("c2", quantity="0.3", side=OrderSide.SELL, price="101.1"), GATE)
    journal.record_fill(MEXC, fill("t1", "0.1", "100.1", fee="0.01001"))
    journal.record_fill(MEXC, fill("t2", "0.2", "100.2", fee="0.0002", fee_asset="BTC"))
    journal.record_fill(GATE, fill("t3", "0.25", "101.1", coid="c2", order_id="v-c2", side=OrderSide.SELL, fee="0.01"))
    pnl = journal.opportunity_pnl("opp1")
    assert (pnl.buy_notional, pnl.sell_notional) == (D("30.05"), D("25.275"))
    assert pnl.quote_fees == D("0.02001") and pnl.other_fees == {"BTC": D("0.0002")}
    assert pnl.realized_pnl == D("25.275") - D("30.05") - D("0.02001")
    assert pnl.residual_quantity == D("0.05")


def test_opportunity_pnl_counts_futures_fills_in_base_units(journal: Journal) -> None:
    """A hedge: 0.01 BTC bought on Gate.io spot, 100 contracts of 0.0001 BTC sold on its perpetual."""
    perp = ExchangeName.GATEIO_FUTURES
    contract = msgspec.structs.replace(
        next(i for i in default_instruments(("BTC",)) if i.exchange is perp), contract_size=D("0.0001")
    )
    short = msgspec.structs.replace(request("c2", quantity="100", side=OrderSide.SELL), symbol=contract.symbol)
    journal.record_intent("h1", "buy", request("c1", quantity="0.01"), GATE)
    journal.record_intent("h1", "sell", short, perp, contract.contract_size)
    journal.record_fill(GATE, fill("t1", "0.01", "100000"))
    journal.record_fill(perp, msgspec.structs.replace(
        fill("t2", "100", "100100", coid="c2", order_id="v-c2", side=OrderSide.SELL), symbol=contract.symbol
    ))
    # At the contract size journaled with the order, not at the one the venue has since moved to.
    resized = {perp: InstrumentCatalog(perp, [msgspec.structs.replace(contract, contract_size=D("0.001"))])}
    for catalogs in (None, resized):
        pnl = journal.opportunity_pnl("h1", catalogs=catalogs)
        assert (pnl.bought_quantity, pnl.sold_quantity, pnl.residual_quantity) == (D("0.01"), D("0.0100"), 0)
        assert (pnl.buy_notional, pnl.sell_notional, pnl.realized_pnl) == (D(1000), D(1001), D(1))
    journal._db.execute("UPDATE intents SET contract_size = NULL")  # as journaled before version 7
    with pytest.raises(JournalError, match="h1 has a gateio_futures fill in contracts journaled without"):
        journal.opportunity_pnl("h1")
    pnl = journal.opportunity_pnl("h1", catalogs={perp: InstrumentCatalog(perp, [contract])})
    assert (pnl.sold_quantity, pnl.sell_notional) == (D("0.0100"), D(1001))


def test_a_futures_intent_is_journaled_with_its_contract_size(journal: Journal) -> None:
    """A futures quantity is in contracts: without the size it was ordered at, a later change of the
    venue's contract size would change what every journaled fill of it was."""
    perp = ExchangeName.GATEIO_FUTURES
    short = msgspec.structs.replace(request("c1", quantity="5000", side=OrderSide.SELL), symbol="BTC/USDT:USDT")
    with pytest.raises(ValueError, match="gateio_futures order 'c1' \\(sell\\): a futures intent needs the contract size"):
        journal.record_intents("h1", [("sell", perp, short)])
    assert journal.open_intents() == []
    journal.record_intents("h1", [("buy", GATE, request("c0", quantity="0.5")), ("sell", perp, short, D("0.0001"))])
    journal.record_fill(perp, msgspec.structs.replace(
        fill("t1", "5000", "60300.1", coid="c1", order_id="v-c1", side=OrderSide.SELL), symbol="BTC/USDT:USDT"
    ))
    assert [(i.client_order_id, i.contract_size) for i in journal.open_intents()] == [("c0", None)]
    assert journal.intent(perp, "c1").contract_size == D("0.0001")
    assert [(r.fill.trade_id, r.contract_size) for r in journal.fills("h1")] == [("t1", D("0.0001"))]


def test_a_journal_records_the_mode_of_the_run_that_created_it_and_refuses_runs_of_another(tmp_path: Path) -> None:
    """A live run whose journal_path named a paper or dry run's journal restored its hedges, day's
    PnL and open intents as if real (and the reverse mixed simulated trades into a live record)."""
    paper, live = tmp_path / "paper.sqlite3", tmp_path / "live.sqlite3"
    with Journal(paper, mode="paper") as journal:
        assert journal.mode == "paper"
        journal.record_intent("o1", "buy", request("o1-b"), GATE)
    with Journal(live, mode="live"):
        pass
    for path, written, run in ((paper, "paper", "live"), (live, "live", "paper"), (live, "live", "dry run")):
        with pytest.raises(JournalError, match=f"journal {path}: written in {written} mode, refused for a run in {run} mode"):
            Journal(path, mode=run)  # type: ignore[arg-type]
    with Journal(paper, mode="paper") as journal:  # the refused opening let go of the file
        assert [i.client_order_id for i in journal.open_intents()] == ["o1-b"]
    with Journal(live) as journal:  # a tool: neither recorded nor checked
        assert journal.mode == "live"


def test_a_journal_written_before_modes_were_recorded_is_taken_as_the_mode_of_the_run_opening_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path):
        pass
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE run_mode")
        db.execute("PRAGMA user_version=7")
    with caplog.at_level(logging.WARNING, logger="arb.journal"), Journal(path, mode="live") as journal:
        assert journal.mode == "live"
    assert f"journal {path}: no run mode recorded (written before arb recorded it); taken as written in live mode" in caplog.text
    with pytest.raises(JournalError, match="written in live mode, refused for a run in paper mode"):
        Journal(path, mode="paper")


def test_a_version_6_journal_gets_the_contract_size_column_its_rows_without_one(tmp_path: Path) -> None:
    path = tmp_path / "v6.sqlite3"
    perp = ExchangeName.GATEIO_FUTURES
    short = msgspec.structs.replace(request("c1", quantity="20", side=OrderSide.SELL), symbol="BTC/USDT:USDT")
    with Journal(path) as journal:
        journal.record_intent("h1", "sell", short, perp, D("0.0001"))
    with closing(sqlite3.connect(path)) as db:
        db.execute("ALTER TABLE intents DROP COLUMN contract_size")
        db.execute("PRAGMA user_version=6")
        db.commit()
    with Journal(path) as journal:
        assert journal.intent(perp, "c1").contract_size is None  # read at the catalog's contract size
        journal.record_intent("h2", "sell", msgspec.structs.replace(short, client_order_id="c2"), perp, D("0.001"))
        assert journal.intent(perp, "c2").contract_size == D("0.001")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (8,)


def test_an_unreadable_contract_size_is_named(journal: Journal) -> None:
    short = msgspec.structs.replace(request("c1", quantity="20", side=OrderSide.SELL), symbol="BTC/USDT:USDT")
    journal.record_intent("h1", "sell", short, ExchangeName.GATEIO_FUTURES, D("0.0001"))
    journal._db.execute("UPDATE intents SET contract_size = '0'")
    with pytest.raises(JournalError, match="intent 1 \\(opportunity h1\\) is unreadable: contract_size '0': not positive"):
        journal.open_intents()


def test_recovery_steps(journal: Journal) -> None:
    journal.record_recovery_step("opp1", "hedge", {"exchange": "gateio", "quantity": "0.5"})
    journal.record_recovery_step("opp1", "done")
    assert journal.recovery_steps("opp1") == [("hedge", {"exchange": "gateio", "quantity": "0.5"}), ("done", {})]


def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as first:
        first.record_intent("opp1", "buy", request("c1"), GATE)
    with Journal(path) as second:
        assert open_ids(second) == ["c1"]


def _reported(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    lines = text.split("\n")
    return lines[:-1]  # the part after the last newline is empty, or a torn line


@pytest.mark.parametrize("mode", ["committed", "deferred"])
def test_kill_9_at_random_points_loses_and_doubles_nothing(tmp_path: Path, mode: str) -> None:
    db, report = tmp_path / "crash.sqlite3", tmp_path / "committed.txt"
    env = dict(os.environ)
    rng = random.Random(20240601)
    kills = 0
    flags = ["--deferred"] if mode == "deferred" else []
    def written() -> int:
        return report.stat().st_size if report.exists() else 0

    for round_ in range(20):
        before = written()
        child = subprocess.Popen([sys.executable, str(WRITER), str(db), str(report), *flags], env=env)
        if round_:
            # Timed from its first commit, not from its start: on a loaded machine the interpreter's
            # start-up alone can outlast the wait, and the writers would be killed before writing.
            deadline = time.monotonic() + 10
            while child.poll() is None and written() == before and time.monotonic() < deadline:
                time.sleep(0.005)
        time.sleep(rng.uniform(0.15, 0.6))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        assert child.wait(timeout=10) in (-signal.SIGKILL, 0), "the writer failed on its own"
        if mode == "deferred" and db.exists():
            Journal(db).close()  # opening moves the intents only logged into the database
        with closing(sqlite3.connect(db)) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            if check.execute("SELECT 1 FROM sqlite_master WHERE name = 'intents'").fetchone() is None:
                assert _reported(report) == []  # killed before the schema was committed
                continue
            intents = {row[0] for row in check.execute("SELECT client_order_id FROM intents")}
            acks = {row[0] for row in check.execute(
                "SELECT i.client_order_id FROM order_events e JOIN intents i USING (intent_id) WHERE e.kind = 'ack'"
            )}
            fills = {row[0] for row in check.execute("SELECT trade_id FROM fills")}
        for line in _reported(report):
            kind, key = line.split()
            assert key in {"intent": intents, "ack": acks, "fill": fills}[kind], f"committed {line!r} was lost"
    assert kills >= 15

    subprocess.run(
        [sys.executable, str(WRITER), str(db), str(report), "--finish", *flags], env=env, check=True, timeout=30
    )
    with Journal(db) as journal:
        assert journal.open_intents() == []
        records = journal.fills()
        per_intent = Counter(r.fill.client_order_id for r in records)
    assert records and set(per_intent.values()) == {1}, "a fill was doubled"
    reported = Counter(line.split()[1] for line in _reported(report) if line.startswith("intent"))
    assert set(reported.values()) == {1}
    with closing(sqlite3.connect(db)) as check:
        intents = check.execute("SELECT count(*) FROM intents").fetchone()[0]
    assert intents == len(records) >= len(reported) > 20


def test_background_checkpoint_copies_the_wal_while_commits_go_on(tmp_path: Path) -> None:
    path = tmp_path / "bg.sqlite3"
    journal = Journal(path, synchronous="NORMAL")
    try:
        for n in range(3):
            journal.record_intent("opp", "buy", request(f"bg-{n}"), ExchangeName.MEXC)
        journal.start_checkpoint()
        assert journal.uncheckpointed == 0
        journal.record_intent("opp", "buy", request("bg-3"), ExchangeName.MEXC)  # commits while it runs
        journal.start_checkpoint()
    finally:
        journal.close()
    assert journal.checkpoint_errors == 0
    with Journal(path) as reopened:
        assert sorted(i.request.client_order_id for i in reopened.open_intents()) == [f"bg-{n}" for n in range(4)]


def test_a_checkpoint_the_database_refuses_the_logged_intents_is_logged_and_they_stay_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that stopped taking writes (a full disk) made the checkpoint raise, which ended the
    engine's trade loop, where the journal breaker alone should have stopped new entries."""
    path = tmp_path / "full.sqlite3"
    failures: list[str] = []
    journal = Journal(path, synchronous="NORMAL")
    journal.on_write_failure = failures.append
    try:
        journal._db.execute("PRAGMA busy_timeout=10")
        journal.record_intents("opp", [("buy", ExchangeName.MEXC, request("lg-1"))], deferred=True)
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN EXCLUSIVE")  # the database takes no write from the journal meanwhile
            with caplog.at_level(logging.ERROR, logger="arb.journal"):
                journal.start_checkpoint()
            other.execute("ROLLBACK")
        assert journal.checkpoint_errors == 1 and journal.uncheckpointed == 0
        assert failures and str(path) in failures[0]
        assert f"journal {path}: the intent log could not be moved into the database" in caplog.text
        journal.start_checkpoint()  # the database takes them again
        assert journal.checkpoint_errors == 1
    finally:
        journal.close()
    with Journal(path) as reopened:
        assert [i.request.client_order_id for i in reopened.open_intents()] == ["lg-1"]


def test_a_checkpoint_whose_logged_intent_the_database_refuses_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logged intent's insert failing (a disk error on its row) is raised as a ``JournalError``,
    which the checkpoint did not catch: it ended the engine's trade loop, where the journal breaker
    alone should have stopped new entries."""
    path = tmp_path / "row.sqlite3"
    failures: list[str] = []
    journal = Journal(path, synchronous="NORMAL")
    journal.on_write_failure = failures.append
    try:
        journal.record_intents("opp", [("buy", ExchangeName.MEXC, request("lg-1"))], deferred=True)
        write = journal._write
        refused: list[str] = []

        def failing_insert(sql: str, *args: Any) -> sqlite3.Cursor:
            if sql == journal_module._INSERT_NUMBERED_INTENT and not refused:
                refused.append(sql)
                raise sqlite3.OperationalError("disk I/O error")
            return write(sql, *args)

        monkeypatch.setattr(journal, "_write", failing_insert)
        journal.start_checkpoint()
        assert refused and journal.checkpoint_errors == 1
        assert len(failures) == 1 and "intent 1 (mexc 'lg-1') from the intent log: disk I/O error" in failures[0]
        journal.start_checkpoint()  # the database takes it again
        assert journal.checkpoint_errors == 1
    finally:
        journal.close()
    with Journal(path) as reopened:
        assert [i.request.client_order_id for i in reopened.open_intents()] == ["lg-1"]


def test_background_checkpoint_of_an_in_memory_journal_runs_inline() -> None:
    journal = Journal(":memory:", synchronous="NORMAL")
    journal.record_intent("opp", "buy", request("mem-1"), ExchangeName.MEXC)
    journal.start_checkpoint()
    assert journal.uncheckpointed == 0 and journal._checkpointer is None
    journal.close()


# -- the in-memory index of open intents --------------------------------------------------

QUANTITIES = ["0.2", "0.3", "0.5", "1"]
FINAL = [OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED]


class StoredJournal(Journal):
    """The journal with its index switched off: every lookup and close decision reads the rows."""

    def _load_index(self) -> None:
        pass

    def _publish(self) -> None:
        self._staged.clear()


def stored_index(db: sqlite3.Connection) -> dict[tuple[str, str], tuple[int, D, D, tuple[str, D] | None]]:
    """What the index must hold, from the rows: (intent id, quantity, filled, last final status) per open intent."""
    finals = ", ".join(f"'{s.value}'" for s in OrderStatus if s.is_final)
    expected = {}
    rows = db.execute(
        "SELECT intent_id, exchange, client_order_id, request FROM intents i WHERE NOT EXISTS "
        "(SELECT 1 FROM order_events e WHERE e.intent_id = i.intent_id AND e.closes = 1)"
    ).fetchall()
    for intent_id, exchange, coid, request_json in rows:
        quantity = _stored_quantity(request_json)
        filled = sum((D(q) for (q,) in db.execute("SELECT quantity FROM fills WHERE intent_id = ?", (intent_id,))), D(0))
        final = db.execute(
            f"SELECT status, filled_quantity FROM order_events WHERE intent_id = ? AND status IN ({finals}) "
            "ORDER BY event_id DESC LIMIT 1",
            (intent_id,),
        ).fetchone()
        expected[(exchange, coid)] = (intent_id, quantity, filled, None if final is None else (final[0], D(final[1])))
    return expected


def _stored_quantity(request_json: str) -> D:
    import msgspec

    return msgspec.json.decode(request_json, type=OrderRequest).quantity


def indexed(journal: Journal) -> dict[tuple[str, str], tuple[int, D, D, tuple[str, D] | None]]:
    assert {e.intent_id: e for e in journal._open.values()} == journal._open_ids and not journal._staged
    return {key: (e.intent_id, e.quantity, e.filled, e.final) for key, e in journal._open.items()}


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with closing(sqlite3.connect(path)) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("intents", "order_events", "fills", "recovery_steps")
        }


def fixed_clock() -> int:
    """One wall clock for both twins, so their rows can be compared whole."""
    return 1_700_000_000_000


class Twins:
    """The same writes to an indexed journal and to a ``StoredJournal``; both must write the same rows."""

    def __init__(self, tmp_path: Path, rng: random.Random) -> None:
        self.rng = rng
        self.paths = (tmp_path / "indexed.sqlite3", tmp_path / "stored.sqlite3")
        self.coids: list[tuple[ExchangeName, str, D]] = []
        self.trades = 0
        self.open()

    def open(self) -> None:
        self.journal = Journal(self.paths[0], synchronous="NORMAL", wall_clock_ms=fixed_clock)
        self.stored = StoredJournal(self.paths[1], synchronous="NORMAL", wall_clock_ms=fixed_clock)

    def reopen(self) -> None:
        self.journal.close()
        self.stored.close()
        self.open()

    def both(self, method: str, *args: object, **kwargs: object) -> None:
        """``method(*args, **kwargs)`` on both journals: the same result, or the same exception type, from each."""
        outcomes: list[object] = []
        for journal in (self.journal, self.stored):
            try:
                result = getattr(journal, method)(*args, **kwargs)
                outcomes.append(asyncio.run(result) if asyncio.iscoroutine(result) else result)
            except JournalError as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]

    def state(self, market: ExchangeName, coid: str, quantity: D, status: OrderStatus) -> OrderState:
        filled = self.rng.choice([D(0), quantity / 2, quantity, D("0.1")]) if status is not OrderStatus.FILLED else quantity
        if status is OrderStatus.REJECTED:
            filled = D(0)
        return OrderState(
            symbol="BTC/USDT", order_id=f"v-{market.value}-{coid}", client_order_id=coid, side=OrderSide.BUY,
            type=OrderType.LIMIT, status=status, quantity=quantity, price=D("100"), filled_quantity=filled,
            average_price=D("100") if filled else None, fee=D("0.01"), fee_asset="USDT",
        )

    def fill(self, market: ExchangeName, coid: str | None, order_coid: str, quantity: D) -> Fill:
        trade = self.rng.randrange(self.trades + 1) if self.rng.random() < 0.1 else self.trades  # some replays
        self.trades += trade == self.trades
        return Fill(
            symbol="BTC/USDT", order_id=f"v-{market.value}-{order_coid}", client_order_id=coid, trade_id=f"t{trade}",
            side=OrderSide.BUY, price=D("100"), quantity=quantity, fee=D("0.01"), fee_asset="USDT", is_maker=False,
            timestamp_ms=5,
        )

    def step(self) -> None:
        rng = self.rng
        op = rng.choice(["intents"] * 3 + ["state"] * 4 + ["fill"] * 4 + ["result"] * 3 + ["reject", "unknown"] * 1
                        + ["reconcile", "reopen", "unknown_id"])
        if op == "intents" or not self.coids:
            orders, new = [], []
            for n in range(rng.choice([1, 2])):
                market, coid, quantity = rng.choice([GATE, MEXC]), f"c{len(self.coids)}-{n}", D(rng.choice(QUANTITIES))
                if rng.random() < 0.05 and self.coids:  # a reused client id: refused, nothing recorded
                    market, coid, _ = rng.choice(self.coids)
                else:
                    new.append((market, coid, quantity))
                orders.append(("buy", market, request(coid, str(quantity))))
            self.both("record_intents", f"opp{len(self.coids)}", orders)
            if len(new) == len(orders):
                self.coids.extend(new)
            return
        market, coid, quantity = rng.choice(self.coids)
        status = rng.choice(FINAL + [OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED])
        if op == "state":
            method = rng.choice(["record_ack", "record_order_update", "record_cancel"])
            st = self.state(market, coid, quantity, status)
            self.both(method, market, coid, st)
        elif op == "fill":
            by_order_id = rng.random() < 0.2
            f = self.fill(market, None if by_order_id else coid, coid, D(rng.choice(QUANTITIES)) / 2)
            self.both("record_fill", market, f, client_order_id=None if by_order_id else coid)
        elif op == "result":
            kind = rng.choice(["ack", "update", "cancel"])
            st = self.state(market, coid, quantity, status)
            fills = [self.fill(market, coid, coid, D(rng.choice(QUANTITIES)) / 2) for _ in range(rng.choice([0, 1, 1, 2]))]
            self.journal.record_result(market, coid, st, fills, kind=kind)  # type: ignore[arg-type]
            getattr(self.stored, {"ack": "record_ack", "update": "record_order_update", "cancel": "record_cancel"}[kind])(
                market, coid, st
            )
            for f in fills:
                self.stored.record_fill(market, f, client_order_id=coid)
        elif op == "reject":
            self.both("record_reject", market, coid, "refused")
        elif op == "unknown":
            self.both("record_unknown", market, coid, "timeout")
        elif op == "unknown_id":
            self.both("record_ack", market, "nobody", self.state(market, "nobody", quantity, status))
        elif op == "reconcile":
            answers: dict[str, OrderState | None] = {}
            for m, c, q in self.coids:
                answers[c] = None if rng.random() < 0.2 else self.state(m, c, q, rng.choice(FINAL + [OrderStatus.NEW]))
            unreachable = {c for c in answers if rng.random() < 0.15}

            async def resolve(exchange: ExchangeName, symbol: str, client_order_id: str) -> OrderState | None:
                if client_order_id in unreachable:
                    raise ConnectionError("unreachable")
                return answers[client_order_id]

            self.both("reconcile", resolve)
        else:
            self.reopen()


@pytest.mark.parametrize("seed", range(12))
def test_index_agrees_with_the_rows_after_random_writes(tmp_path: Path, seed: int) -> None:
    twins = Twins(tmp_path, random.Random(seed))
    for _ in range(120):
        twins.step()
        with closing(sqlite3.connect(twins.paths[0])) as db:
            assert indexed(twins.journal) == stored_index(db)
    twins.journal.close()
    twins.stored.close()
    assert dump(twins.paths[0]) == dump(twins.paths[1])
    reopened = Journal(twins.paths[0])
    with closing(sqlite3.connect(twins.paths[0])) as db:
        assert indexed(reopened) == stored_index(db)
    reopened.close()


def test_reopened_journal_closes_what_it_loaded(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as first:
        first.record_intents("opp1", [("buy", GATE, request("c1")), ("sell", MEXC, request("c2"))])
        first.record_fill(GATE, fill("t1", "0.4"))
        first.record_cancel(GATE, "c1", state("c1", OrderStatus.CANCELED, filled="0.6"))
        first.record_result(MEXC, "c2", state("c2", OrderStatus.CANCELED))
        assert open_ids(first) == ["c1"]
    with Journal(path) as second:
        assert indexed(second) == {("gateio", "c1"): (1, D(1), D("0.4"), ("canceled", D("0.6")))}
        second.record_fill(GATE, fill("t2", "0.2"))
        assert open_ids(second) == [] and indexed(second) == {}
        events = [(e[0], e[1]) for e in sqlite3.connect(path).execute(
            "SELECT kind, status FROM order_events WHERE intent_id = 1 ORDER BY event_id")]
    assert events == [("cancel", "canceled"), ("closed", "canceled")]


def test_result_is_written_in_one_transaction_or_not_at_all(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal.record_intent("opp1", "buy", request("c1"), GATE)
    before = journal.uncheckpointed
    journal.record_result(GATE, "c1", state("c1", OrderStatus.FILLED, filled="1", average="100"), [fill("t1", "1")])
    assert journal.uncheckpointed == before + 1 and open_ids(journal) == []
    assert [r.fill.trade_id for r in journal.fills()] == ["t1"]

    journal.record_intent("opp2", "buy", request("c2"), GATE)

    def broken(*args: object) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(journal, "_insert_fill", broken)
    with pytest.raises(sqlite3.OperationalError):
        journal.record_result(GATE, "c2", state("c2", OrderStatus.FILLED, filled="1"), [fill("t2", "1", coid="c2")])
    monkeypatch.undo()
    (intent,) = journal.open_intents()
    assert (intent.client_order_id, intent.order_id, intent.filled_quantity) == ("c2", None, D(0))  # no ack either
    assert indexed(journal) == {("gateio", "c2"): (2, D(1), D(0), None)}
    journal.record_result(GATE, "c2", state("c2", OrderStatus.FILLED, filled="1"), [fill("t2", "1", coid="c2")])
    assert open_ids(journal) == [] and indexed(journal) == {}


def test_result_of_an_unknown_intent_writes_nothing(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no intent for gateio client order id 'c9'"):
        journal.record_result(GATE, "c9", state("c9", OrderStatus.FILLED, filled="1"), [fill("t1", "1", coid="c9")])
    assert journal.fills() == []


def test_result_through_the_index_writes_the_rows_of_the_separate_calls(tmp_path: Path) -> None:
    """``record_result`` on an indexed intent writes the rows of the separate calls, and leaves the same index."""
    clocks = [iter(range(1_700_000_000_000, 1_800_000_000_000)) for _ in range(2)]  # one tick per row, alike
    fast = Journal(tmp_path / "fast.sqlite3", wall_clock_ms=lambda: next(clocks[0]))
    slow = StoredJournal(tmp_path / "slow.sqlite3", wall_clock_ms=lambda: next(clocks[1]))
    cases = [  # filled at once, partly then canceled, final before its fill, still resting, a replayed trade id
        (state("c1", OrderStatus.FILLED, "1", "100"), [fill("t1", "1", coid="c1")]),
        (state("c2", OrderStatus.CANCELED, "0.4", "100"), [fill("t2", "0.4", coid="c2", order_id="v-c2")]),
        (state("c3", OrderStatus.FILLED, "1", "100"), []),
        (state("c4", OrderStatus.PARTIALLY_FILLED, "0.5", "100"), [fill("t4", "0.5", coid="c4", order_id="v-c4")]),
        (state("c5", OrderStatus.EXPIRED, "0.5", "100"), [fill("t4", "0.5", coid="c5", order_id="v-c5")]),
        (state("c3", OrderStatus.FILLED, "1", "100"), [fill("t3", "1", coid="c3", order_id="v-c3")]),
    ]
    for journal in (fast, slow):
        journal.record_intents("opp", [("buy", GATE, request(f"c{n}")) for n in range(1, 6)])
    for order_state, fills in cases:
        coid = order_state.client_order_id or ""
        fast.record_result(GATE, coid, order_state, fills)
        slow.record_ack(GATE, coid, order_state)
        for f in fills:
            slow.record_fill(GATE, f, client_order_id=coid)
    assert open_ids(fast) == open_ids(slow) == ["c4", "c5"]
    assert indexed(fast) == stored_index(fast._db)
    fast.close()
    slow.close()
    assert dump(tmp_path / "fast.sqlite3") == dump(tmp_path / "slow.sqlite3")


# -- the intent log (record_intents(..., deferred=True)) -------------------------------------

LEGS = [("buy", GATE, request("c1")), ("sell", MEXC, request("c2", side=OrderSide.SELL))]
CRASH_AFTER = """
import os, sys
from decimal import Decimal
from arb.exchanges.models import OrderRequest, OrderType
from arb.journal import Journal
from arb.types import ExchangeName, OrderSide
journal = Journal(sys.argv[1])
request = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=Decimal("0.5"),
                       price=Decimal("100"), client_order_id="k1")
ids = journal.record_intents("opp-k", [("buy", ExchangeName.GATEIO, request)], deferred=True)
if sys.argv[2] == "flushed":
    journal.flush_intents()
print(ids[0], flush=True)
os._exit(0)  # no close: the process ends as if killed
"""


def database_keys(path: Path) -> list[tuple[int, str, str]]:
    """(intent id, market, client id) of every intents row, read by another connection."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT intent_id, exchange, client_order_id FROM intents ORDER BY intent_id").fetchall()


def test_deferred_intents_are_logged_then_committed_before_any_read_or_write(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as journal:
        ids = journal.record_intents("opp1", LEGS, deferred=True)
        assert ids == [1, 2]
        assert database_keys(path) == [] and log.stat().st_size > 0
        assert [(i.intent_id, i.client_order_id) for i in journal.open_intents()] == [(1, "c1"), (2, "c2")]
        assert database_keys(path) == [(1, "gateio", "c1"), (2, "mexc", "c2")]

        journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True)
        journal.record_ack(GATE, "c3", state("c3", OrderStatus.NEW))  # a write commits them with it
        assert journal.intent(GATE, "c3").order_id == "v-c3"
        journal.record_intents("opp3", [("buy", GATE, request("c4"))], deferred=True)
        assert journal.record_intent("opp4", "buy", request("c5"), GATE) == 5  # numbered after the logged one
        assert [row[0] for row in database_keys(path)] == [1, 2, 3, 4, 5]
        assert log.stat().st_size > 0
        journal.start_checkpoint()  # everything logged is committed: the log is emptied
        assert log.stat().st_size == 0
        journal.record_intents("opp5", [("buy", GATE, request("c6"))], deferred=True)
        journal.flush_intents()
        assert database_keys(path)[-1] == (6, "gateio", "c6")
    assert log.stat().st_size == 0  # emptied on close


def test_deferred_intents_refuse_a_reused_client_id_and_log_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as journal:
        journal.record_intent("opp0", "buy", request("c0"), GATE)  # in the database
        journal.record_intents("opp1", LEGS, deferred=True)  # in the log only
        size = log.stat().st_size
        for legs in (
            [("buy", GATE, request("c0"))],
            [("buy", MEXC, request("c9")), ("sell", MEXC, request("c2"))],
            [("buy", GATE, request("c7")), ("sell", GATE, request("c7"))],
        ):
            with pytest.raises(JournalError, match="client order id '.*' is already journaled"):
                journal.record_intents("opp2", legs, deferred=True)
        assert log.stat().st_size == size
        assert [i.client_order_id for i in journal.open_intents()] == ["c0", "c1", "c2"]
        assert journal.record_intents("opp3", [("buy", GATE, request("c7"))], deferred=True) == [4]


def test_rehearsed_intents_are_neither_logged_nor_numbered(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
        size = log.stat().st_size
        for _ in range(3):
            journal.rehearse_intents("opp1", LEGS)  # ids already journaled: a rehearsal checks nothing
            journal.rehearse_intents("opp2", [("buy", GATE, request("c3"))])
        assert log.stat().st_size == size
        assert [i.client_order_id for i in journal.open_intents()] == ["c1", "c2"]
        assert journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True) == [3]


def test_a_journal_in_memory_commits_deferred_intents_at_once() -> None:
    with Journal(":memory:") as journal:
        assert journal.intent_log_path is None
        assert journal.record_intents("opp1", LEGS, deferred=True) == [1, 2]
        assert journal.uncheckpointed >= 1 and len(journal.open_intents()) == 2


@pytest.mark.parametrize("crash", ["logged", "flushed"])
def test_intents_a_crash_left_in_the_log_are_open_after_reopening_once(tmp_path: Path, crash: str) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_intent("opp0", "buy", request("c0"), GATE)
    child = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER, str(path), crash],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
    )
    assert Path(f"{path}-intents").stat().st_size > 0
    expected = [(1, "gateio", "c0")] + ([(2, "gateio", "k1")] if crash == "flushed" else [])
    assert database_keys(path) == expected
    with Journal(path) as journal:
        (open_k1,) = [i for i in journal.open_intents() if i.client_order_id == "k1"]
        assert open_k1.intent_id == int(child.stdout) == 2
        assert open_k1.request.quantity == D("0.5") and open_k1.opportunity_id == "opp-k"
        assert journal.record_intents("opp1", [("buy", GATE, request("c1"))], deferred=True) == [3]
    assert database_keys(path) == [(1, "gateio", "c0"), (2, "gateio", "k1"), (3, "gateio", "c1")]


def test_a_torn_last_record_is_ignored_and_a_bad_line_or_a_conflict_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    Journal(path).close()
    whole = b'[[1,"opp1","buy","gateio","c1","BTC/USDT",' + msgspec_request("c1") + b",5]]\n"
    log.write_bytes(whole + whole[:30])
    with Journal(path) as journal:
        assert [i.client_order_id for i in journal.open_intents()] == ["c1"]
    assert "torn record (30 bytes), ignored" in caplog.text

    log.write_bytes(b"not json\n")
    with pytest.raises(JournalError, match=r"intent log .*-intents line 1 is damaged .*repair or remove the line"):
        Journal(path)
    log.write_bytes(whole.replace(b'"c1"', b'"c9"').replace(b'\\"c1\\"', b'\\"c9\\"'))  # intent 1 is c1 in the database
    with pytest.raises(JournalError, match=r"intent 1 is gateio 'c1' in the database, gateio 'c9' in the log"):
        Journal(path)


def test_a_log_of_the_version_before_the_contract_size_is_recovered_beside_one_with_it(tmp_path: Path) -> None:
    """A crash under the version before left rows without a contract size in the log: recovered as
    intents without one, beside this version's rows with theirs."""
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    perp = msgspec.json.encode(msgspec.structs.replace(request("c2"), symbol="BTC/USDT:USDT"))
    Path(f"{path}-intents").write_bytes(
        b'[[1,"opp1","buy","gateio","c1","BTC/USDT",' + msgspec_request("c1") + b",5]]\n"
        + b'[[2,"opp1","sell","gateio_futures","c2","BTC/USDT:USDT",' + msgspec.json.encode(perp.decode())
        + b',5,"0.0001"]]\n'
    )
    with Journal(path) as journal:
        assert [(i.client_order_id, i.contract_size) for i in journal.open_intents()] == [("c1", None), ("c2", D("0.0001"))]


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ((b'quantity\\":\\"1\\"', b'quantity\\":\\"1O\\"'), "intent 2: unreadable request"),  # a flipped digit
        ((b'"gateio","c2"', b'"gateio_spot","c2"'), "intent 2: unknown market 'gateio_spot'"),
        ((b'"gateio","c2"', b'"gateio","c3"'), "its request is for 'c2' BTC/USDT, the row for 'c3' BTC/USDT"),
    ],
)
def test_a_log_line_whose_rows_do_not_read_is_refused_before_anything_of_it_is_committed(
    tmp_path: Path, damage: tuple[bytes, bytes], said: str
) -> None:
    """Only the line's JSON was checked: its rows went into the database and the log was emptied,
    then every start, export and approval died reading the row (a bare msgspec or ValueError
    naming neither the file nor the intent), and the line to repair was gone."""
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as journal:
        journal.record_intents("opp1", [("buy", GATE, request("c1"))])
    line = (b'[[2,"opp2","buy","gateio","c2","BTC/USDT",' + msgspec_request("c2") + b",5]]\n")
    assert damage[0] in line
    log.write_bytes(line.replace(*damage))
    with pytest.raises(JournalError, match="line 1 is damaged") as refused:
        Journal(path)
    assert said in str(refused.value)
    assert log.read_bytes() == line.replace(*damage)  # kept, to repair
    assert database_keys(path) == [(1, "gateio", "c1")]
    log.write_bytes(line)
    with Journal(path) as journal:
        assert [i.client_order_id for i in journal.open_intents()] == ["c1", "c2"]


def test_a_damaged_row_or_page_is_refused_naming_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_intents("opp1", [("buy", GATE, request("c1"))])
    db = sqlite3.connect(path)
    assert db.execute("""UPDATE intents SET request = replace(request, '"100"', '"1O0"')""").rowcount == 1
    db.commit()
    db.close()
    with pytest.raises(JournalError, match=r"j.sqlite3: intent 1 \(opportunity opp1\) is unreadable"):
        Journal(path)  # its open intents are indexed at the start
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode = 11  # type: ignore[attr-defined]  # SQLITE_CORRUPT, as SQLite sets it
    with Journal(tmp_path / "k.sqlite3") as journal, pytest.raises(JournalError, match=r"k.sqlite3: database disk image is malformed: restore"):
        with journal.damage_named():
            raise corrupt
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]  # SQLITE_FULL: restoring a backup would lose intents
    with Journal(tmp_path / "k.sqlite3") as journal, pytest.raises(JournalError) as refused:
        with journal.damage_named():
            raise full
    assert str(refused.value).endswith("k.sqlite3: database or disk is full")


def msgspec_request(coid: str) -> bytes:
    """A request as the log stores it: its JSON as a JSON string."""
    return msgspec.json.encode(msgspec.json.encode(request(coid)).decode())


def test_reused_client_ids_are_refused_from_hashes_across_reopening_and_merging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "MERGE_KEY_HASHES", 2)
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
    with Journal(path) as journal:  # c1 and c2 now come from the sorted hashes read on opening
        with pytest.raises(JournalError, match="gateio client order id 'c1' is already journaled"):
            journal.record_intents("opp2", [("buy", GATE, request("c1"))], deferred=True)
        journal.record_intents("opp3", [("buy", GATE, request("c3")), ("sell", GATE, request("c4"))], deferred=True)
        journal.start_checkpoint()  # two recent hashes: merged into the sorted ones
        with pytest.raises(JournalError, match="gateio client order id 'c4' is already journaled"):
            journal.record_intents("opp4", [("buy", GATE, request("c4"))], deferred=True)
        assert journal.record_intents("opp5", [("buy", MEXC, request("c4"))], deferred=True) == [5]


KEYS = st.tuples(st.sampled_from(["gateio", "mexc"]), st.text(max_size=4))


@given(st.lists(KEYS, unique=True, max_size=30), st.integers(0, 30), st.lists(KEYS, max_size=10), st.integers(1, 4))
def test_key_hashes_hold_exactly_the_keys_given_and_added_across_merges(
    keys: list[tuple[str, str]], opened_with: int, probes: list[tuple[str, str]], merge_at: int
) -> None:
    hashes = journal_module._KeyHashes(keys[:opened_with])
    held = {hash(key) for key in keys[:opened_with]}
    before = journal_module.MERGE_KEY_HASHES
    journal_module.MERGE_KEY_HASHES = merge_at
    try:
        for key in keys[opened_with:]:
            hashes.add(key)
            held.add(hash(key))
            hashes.merge()
            assert all(hashes.may_hold(k) == (hash(k) in held) for k in [*keys, *probes])
    finally:
        journal_module.MERGE_KEY_HASHES = before
    assert all(hashes.may_hold(k) == (hash(k) in held) for k in [*keys, *probes])


def test_a_hash_that_matches_a_new_client_id_is_settled_by_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(tmp_path / "j.sqlite3") as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
        monkeypatch.setattr(journal_module._KeyHashes, "may_hold", lambda self, key: True)
        assert journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True) == [3]
        journal.flush_intents()
        with pytest.raises(JournalError, match="gateio client order id 'c3' is already journaled"):
            journal.record_intents("opp3", [("buy", GATE, request("c3"))], deferred=True)


def test_logged_intents_stay_guarded_when_the_transaction_that_inserts_them_rolls_back(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
        with pytest.raises(JournalError, match="no intent for gateio client order id 'nope'"):
            journal.record_ack(GATE, "nope", state("nope", OrderStatus.NEW))  # inserts c1 and c2, rolls back
        with pytest.raises(JournalError, match="gateio client order id 'c1' is already journaled"):
            journal.record_intents("opp2", [("buy", GATE, request("c1"))], deferred=True)
        assert [i.client_order_id for i in journal.open_intents()] == ["c1", "c2"]


def test_a_second_open_journal_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
        with pytest.raises(JournalError, match="intent log .* is locked by another open journal"):
            Journal(path)
        assert Path(f"{path}-intents").stat().st_size > 0  # the refused opener did not take the log
    with Journal(path) as journal:
        assert len(journal.open_intents()) == 2


def test_a_journal_path_that_links_to_a_file_not_made_yet_creates_it_there(tmp_path: Path) -> None:
    """A symlink to a database on an empty volume: creating the file by the link's name failed as
    existing, and the journal was refused as not found."""
    (tmp_path / "volume").mkdir()
    target = tmp_path / "volume" / "j.sqlite3"
    link = tmp_path / "j.sqlite3"
    link.symlink_to(target)
    with Journal(link) as journal:
        journal.record_intents("opp1", LEGS)
    assert target.is_file() and [row[2] for row in database_keys(target)] == ["c1", "c2"]


def test_a_second_journal_opened_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """The log was named after the path as given: through a symlink a second engine opened the journal
    beside the first, and ``approvals`` took it for stopped."""
    path, link = tmp_path / "j.sqlite3", tmp_path / "link.sqlite3"
    link.symlink_to(path)
    with Journal(path):
        assert journal_module.intent_log_in_use(link)
        with pytest.raises(JournalError, match="intent log .* is locked by another open journal"):
            Journal(link)
    with Journal(link) as journal:
        assert journal.intent_log_path == f"{path}-intents"
        assert journal_module.intent_log_in_use(path)
    assert not Path(f"{link}-intents").exists()


def test_a_journal_whose_file_has_several_names_is_refused(tmp_path: Path) -> None:
    """Each hard link had its own intent log and lock: two engines could trade on one journal."""
    path, other = tmp_path / "j.sqlite3", tmp_path / "copy.sqlite3"
    Journal(path).close()
    os.link(path, other)
    for name in (path, other):
        with pytest.raises(JournalError) as refused:
            Journal(name)
        assert str(refused.value).startswith(f"journal {name}: its file has 2 names (hard links); remove the others")
    other.unlink()
    Journal(path).close()


def test_an_intent_log_an_earlier_version_kept_under_a_symlinks_name_is_recovered(tmp_path: Path) -> None:
    path, link = tmp_path / "j.sqlite3", tmp_path / "link.sqlite3"
    link.symlink_to(path)
    result = subprocess.run([sys.executable, "-c", CRASH_AFTER, str(path), "logged"], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "1"
    Path(f"{path}-intents").rename(f"{link}-intents")  # where a crash of an earlier version left it
    with Journal(link) as journal:
        assert [i.client_order_id for i in journal.open_intents()] == ["k1"]
    assert not Path(f"{link}-intents").exists()


def test_an_intent_log_deleted_while_open_is_taken_back_at_the_next_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
        log.unlink()  # by hand: the lock goes with the deleted file
        journal.start_checkpoint()
        assert log.exists()
        with pytest.raises(JournalError, match="is locked by another open journal"):
            Journal(path)  # locked again
        journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True)
        assert log.stat().st_size > 0  # logged in the new file
    assert [row[2] for row in database_keys(path)] == ["c1", "c2", "c3"]


def test_an_intent_log_taken_by_a_second_journal_stops_the_first_from_recording(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    failures: list[str] = []
    with Journal(path) as first:
        first.on_write_failure = failures.append  # the journal-writes breaker: no order can be recorded now
        first.record_intents("opp1", LEGS, deferred=True)
        first.flush_intents()
        log.unlink()
        with Journal(path) as second:  # nothing held the path: a second engine could open it
            first.checkpoint()
            assert "no more intents are recorded" in caplog.text
            assert len(failures) == first.write_failures == 1 and "was replaced while open" in failures[0]
            refusals = []
            for _ in range(2):
                with pytest.raises(JournalError, match="was replaced while open, so another journal") as info:
                    first.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True)
                refusals.append(info.value)
            assert refusals[0] is not refusals[1]  # a fresh error each time: no traceback piling up
            with pytest.raises(JournalError, match="stop every engine on this journal, then start one"):
                first.record_intent("opp2", "buy", request("c3"), GATE)
            second.record_intents("opp3", [("buy", GATE, request("c4"))], deferred=True)
    assert [row[2] for row in database_keys(path)] == ["c1", "c2", "c4"]


@pytest.mark.parametrize(
    ("log_removed_again", "refusal"),
    [
        (False, "was replaced while open"),  # the second's close emptied its log but left the file
        (True, "intents up to 2 are in the database but this journal numbered only up to 1"),
    ],
)
def test_a_journal_another_one_wrote_to_and_closed_records_no_more_intents(
    tmp_path: Path, log_removed_again: bool, refusal: str
) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as first:
        first.record_intents("opp1", [("buy", GATE, request("c1"))], deferred=True)
        first.flush_intents()
        log.unlink()
        with Journal(path) as second:
            second.record_intents("opp2", [("buy", GATE, request("b1"))], deferred=True)
        if log_removed_again:
            log.unlink()
        first.checkpoint()
        with pytest.raises(JournalError, match=refusal):
            first.record_intents("opp3", [("buy", GATE, request("c2"))], deferred=True)
    assert [row[:3] for row in database_keys(path)] == [(1, "gateio", "c1"), (2, "gateio", "b1")]


def test_a_foreign_file_in_place_of_the_intent_log_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as journal:
        log.unlink()
        log.write_bytes(b"not an intent log\n")
        journal.checkpoint()
        with pytest.raises(JournalError, match="was replaced while open"):
            journal.record_intents("opp1", LEGS, deferred=True)
    assert log.read_bytes() == b"not an intent log\n" and database_keys(path) == []


def test_a_failed_append_sends_nothing_and_gives_no_id_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.sqlite3"
    log = Path(f"{path}-intents")
    with Journal(path) as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
        real_write = os.write

        def half_write(fd: int, data: bytes) -> int:
            real_write(fd, data[:10])
            raise OSError(5, "injected EIO")

        def no_truncate(fd: int, length: int) -> None:
            raise OSError(5, "injected EIO")

        monkeypatch.setattr(journal_module.os, "write", half_write)
        monkeypatch.setattr(journal_module.os, "ftruncate", no_truncate)
        with pytest.raises(JournalError, match="cannot write the intent log: .*injected EIO"):
            journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True)
        monkeypatch.undo()
        # The log may end in part of a record now: intents are committed to the database until it is emptied.
        assert journal.record_intents("opp3", [("buy", GATE, request("c4"))], deferred=True) == [4]
        assert database_keys(path)[-1] == (4, "gateio", "c4")
        journal.start_checkpoint()
        assert log.stat().st_size == 0
        assert journal.record_intents("opp4", [("buy", GATE, request("c5"))], deferred=True) == [5]
        assert database_keys(path)[-1] == (4, "gateio", "c4")  # logged again
    assert [row[2] for row in database_keys(path)] == ["c1", "c2", "c4", "c5"]


def test_client_ids_a_failed_append_may_have_left_in_the_log_are_not_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line written whole whose sync failed stays in the log when it cannot be cut back, and a
    crash recovers it: its client ids committed for another intent made the journal refuse to open."""
    path = tmp_path / "j.sqlite3"
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    with Journal(path, synchronous="FULL") as journal:
        def fail(*args: object) -> None:
            raise OSError(5, "injected EIO")

        monkeypatch.setattr(journal_module.os, "fdatasync", fail)
        monkeypatch.setattr(journal_module.os, "ftruncate", fail)
        with pytest.raises(JournalError, match="cannot write the intent log: .*injected EIO"):
            journal.record_intents("opp1", LEGS, deferred=True)
        monkeypatch.undo()
        for deferred in (True, False):
            with pytest.raises(ReusedClientIdError, match="gateio client order id .c1. may be in the intent log"):
                journal.record_intents("opp1", LEGS, deferred=deferred)
        assert journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True) == [3]
        for suffix in ("", "-wal", "-intents"):  # a crash now
            shutil.copy(f"{path}{suffix}", crashed / f"j.sqlite3{suffix}")
        journal.start_checkpoint()
        assert Path(f"{path}-intents").stat().st_size == 0  # the line is gone: its client ids are free
        assert journal.record_intents("opp1", LEGS, deferred=True) == [4, 5]
    with Journal(crashed / "j.sqlite3") as recovered:
        assert sorted((i.intent_id, i.client_order_id) for i in recovered.open_intents()) == [
            (1, "c1"), (2, "c2"), (3, "c3")
        ]


def test_no_more_intents_are_logged_while_the_database_does_not_take_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "MAX_LOGGED_INTENTS", 2)
    with Journal(tmp_path / "j.sqlite3") as journal:
        journal.record_intents("opp1", LEGS, deferred=True)
        with pytest.raises(JournalError, match="2 intents in the intent log are still not in the database"):
            journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True)
        journal.flush_intents()
        assert journal.record_intents("opp2", [("buy", GATE, request("c3"))], deferred=True) == [3]


def test_a_failed_close_still_releases_the_files_and_reopening_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    journal.record_intents("opp1", LEGS, deferred=True)

    def failing_insert() -> None:
        raise JournalError("injected: disk I/O error")

    monkeypatch.setattr(journal, "_insert_logged", failing_insert)
    with pytest.raises(JournalError, match="injected"):
        journal.close()
    journal.close()  # closed already: nothing to do
    assert not journal_module.intent_log_in_use(path)
    with Journal(path) as reopened:
        assert [i.client_order_id for i in reopened.open_intents()] == ["c1", "c2"]


class _CheckpointRefused:
    """A journal's connection on a full disk: every statement runs but the closing checkpoint."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "PRAGMA wal_checkpoint(TRUNCATE)":
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_checkpoint_that_fails_on_closing_is_logged_and_the_journal_still_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On a full disk the closing checkpoint raised: a failed start's clean-up replaced the clear
    journal error with a bare sqlite3 one. What was committed is in the WAL."""
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    journal.record_intents("opp1", LEGS, deferred=True)
    monkeypatch.setattr(journal, "_db", _CheckpointRefused(journal._db))
    with caplog.at_level(logging.WARNING, logger="arb.journal"):
        journal.close()
    assert f"journal {path}: the WAL was not checkpointed on closing" in caplog.text
    assert journal.checkpoint_errors == 1 and not journal_module.intent_log_in_use(path)
    with Journal(path) as reopened:
        assert [i.client_order_id for i in reopened.open_intents()] == ["c1", "c2"]


@pytest.mark.parametrize(
    ("name", "reason"), [("file/j.sqlite3", "Not a directory"), ("j" * 250 + ".sqlite3", "File name too long")]
)
def test_an_intent_log_that_cannot_be_looked_at_is_a_journal_error_naming_the_path(
    tmp_path: Path, name: str, reason: str
) -> None:
    """Only a missing log means "not in use"; any other failure to open it is the journal path's problem."""
    (tmp_path / "file").write_text("")
    path = tmp_path / name
    with pytest.raises(JournalError) as info:
        journal_module.intent_log_in_use(path)
    assert str(info.value).startswith(f"journal {path}: cannot open its intent log {path}-intents: ")
    assert reason in str(info.value)


def test_an_intent_id_taken_by_another_writer_is_reported_as_such_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_intent("opp1", "buy", request("c1"), GATE)
        with closing(sqlite3.connect(path)) as other:
            other.execute(
                "INSERT INTO intents (intent_id, opportunity_id, leg, exchange, client_order_id, symbol, request, "
                "created_at_ms) VALUES (2, 'x', 'buy', 'gateio', 'foreign', 'BTC/USDT', '{}', 0)"
            )
            other.commit()
        with pytest.raises(JournalError, match="intent id 2 was taken by another writer"):
            journal.record_intent("opp2", "buy", request("c2"), GATE)
        assert journal.record_intent("opp2", "buy", request("c2"), GATE) == 3


def test_a_new_journal_and_its_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """Orders, fills and PnL: the database, its WAL and shared-memory files and the intent log are
    created 0600 whatever the umask."""
    old = os.umask(0o022)
    try:
        journal = Journal(tmp_path / "j.sqlite3")
        journal.record_recovery_step("o1", "start", {})
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        journal.close()
    finally:
        os.umask(old)
    assert set(modes) >= {"j.sqlite3", "j.sqlite3-wal", "j.sqlite3-shm", "j.sqlite3-intents"}
    assert set(modes.values()) == {0o600}, modes
