"""arb.export and ``python -m arb export``: the journal's records as CSV, exact, read-only, filtered by day."""

from __future__ import annotations

import csv
import io
import sqlite3
from contextlib import closing
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest

from arb.cli import main
from arb.exchanges.models import Fill, FundingPayment, OrderRequest, OrderState, OrderStatus, OrderType
from arb.export import ExportError, export_journal, parse_day
from arb.journal import SCHEMA_VERSION, Journal
from arb.types import ExchangeName, OrderSide

GATE, MEXC, PERP = ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES
DAY1 = parse_day("2026-11-24")
DAY2 = DAY1 + 86_400_000


def request(symbol: str, side: OrderSide, quantity: str, price: str, cid: str) -> OrderRequest:
    return OrderRequest(
        symbol=symbol, side=side, type=OrderType.LIMIT, quantity=D(quantity), price=D(price), client_order_id=cid
    )


def state(req: OrderRequest, filled: str, status: OrderStatus = OrderStatus.FILLED) -> OrderState:
    return OrderState(
        symbol=req.symbol, order_id=f"v-{req.client_order_id}", client_order_id=req.client_order_id, side=req.side,
        type=req.type, status=status, quantity=req.quantity, price=req.price, filled_quantity=D(filled),
    )


def fill(req: OrderRequest, quantity: str, price: str, fee: str, asset: str, trade: str, at_ms: int) -> Fill:
    return Fill(
        symbol=req.symbol, order_id=f"v-{req.client_order_id}", client_order_id=req.client_order_id, trade_id=trade,
        side=req.side, price=D(price), quantity=D(quantity), fee=D(fee), fee_asset=asset, is_maker=False,
        timestamp_ms=at_ms,
    )


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """Two executions on two days, an order still open, an orphan fill and three funding payments."""
    path = tmp_path / "journal.sqlite3"
    now = [DAY1 + 3_600_000]
    with Journal(path, synchronous="NORMAL", wall_clock_ms=lambda: now[0]) as journal:
        buy = request("BTC/USDT", OrderSide.BUY, "0.01000", "60000.10", "o1-b")
        sell = request("BTC/USDT", OrderSide.SELL, "0.01000", "60012.5", "o1-s")
        journal.record_intents("o1", [("buy", GATE, buy), ("sell", MEXC, sell)])
        journal.record_result(GATE, "o1-b", state(buy, "0.01000"), [
            fill(buy, "0.004", "60000.00", "0.000000008", "BTC", "t1", DAY1 + 3_599_990),  # str(): 8E-9
            fill(buy, "0.006", "60000.10", "0.000012", "BTC", "t2", DAY1 + 3_599_991),
        ])
        journal.record_result(MEXC, "o1-s", state(sell, "0.01000"), [
            fill(sell, "0.01000", "60012.5", "0.6001250", "USDT", "t3", DAY1 + 3_599_992),
        ])
        now[0] = DAY2 + 60_000
        spot = request("BTC/USDT", OrderSide.BUY, "0.002", "61000", "o2-b")
        perp = msgspec.structs.replace(  # reduce-only, as a hedge close's futures leg is sent
            request("BTC/USDT:USDT", OrderSide.SELL, "20", "61500.5", "o2-s"), reduce_only=True
        )
        journal.record_intents("o2", [("buy", GATE, spot), ("sell", PERP, perp, D("0.0001"))])
        journal.record_result(PERP, "o2-s", state(perp, "20"), [
            fill(perp, "20", "61500.5", "0.0615005", "USDT", "t4", DAY2 + 59_000),
        ])
        journal.record_fill(MEXC, Fill(  # a fill of no journaled order (no client id the journal knows)
            symbol="BTC/USDT", order_id="manual-1", client_order_id=None, trade_id="t9", side=OrderSide.SELL,
            price=D("60100"), quantity=D("0.001"), fee=D("0"), fee_asset="USDT", is_maker=True,
            timestamp_ms=DAY2 + 59_500,
        ))
        journal.record_funding(PERP, [
            FundingPayment(payment_id="f1", symbol="BTC/USDT:USDT", amount=D("0.00123000"), time_ms=DAY1),
            FundingPayment(payment_id="f2", symbol="BTC/USDT:USDT", amount=D("-0.0004"), time_ms=DAY2 - 1),
            FundingPayment(payment_id="f3", symbol="BTC/USDT:USDT", amount=D("0.01"), time_ms=DAY2),
        ])
    return path


def rows(path: Path, kind: str, **window: int) -> list[dict[str, str]]:
    out = io.StringIO()
    count = export_journal(path, kind, out, **window)
    found = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(found)
    return found


def test_fills_are_exported_exactly_with_their_execution_and_times(journal_path: Path) -> None:
    fills = rows(journal_path, "fills")
    assert [(f["trade_id"], f["market"], f["price"], f["quantity"], f["fee"], f["fee_asset"]) for f in fills] == [
        ("t1", "gateio", "60000.00", "0.004", "0.000000008", "BTC"),
        ("t2", "gateio", "60000.10", "0.006", "0.000012", "BTC"),
        ("t3", "mexc", "60012.5", "0.01000", "0.6001250", "USDT"),
        ("t4", "gateio_futures", "61500.5", "20", "0.0615005", "USDT"),
        ("t9", "mexc", "60100", "0.001", "0", "USDT"),
    ]
    assert fills[0]["recorded_at"] == "2026-11-24T01:00:00.000Z"
    assert fills[0]["venue_time"] == "2026-11-24T00:59:59.990Z"
    assert (fills[2]["opportunity_id"], fills[2]["leg"], fills[2]["side"], fills[2]["source"]) == (
        "o1", "sell", "sell", "venue"
    )
    assert (fills[4]["opportunity_id"], fills[4]["leg"], fills[4]["client_order_id"], fills[4]["is_maker"]) == (
        "", "", "", "yes"
    )


def test_orders_carry_their_request_last_status_and_recorded_fills(journal_path: Path) -> None:
    orders = {o["client_order_id"]: o for o in rows(journal_path, "orders")}
    assert list(orders) == ["o1-b", "o1-s", "o2-b", "o2-s"]
    first = orders["o1-b"]
    assert (first["intent_id"], first["market"], first["side"], first["type"], first["time_in_force"]) == (
        "1", "gateio", "buy", "limit", "gtc"
    )
    assert (first["quantity"], first["price"], first["order_id"], first["status"], first["closed"]) == (
        "0.01000", "60000.10", "v-o1-b", "filled", "yes"
    )
    assert (first["venue_filled_quantity"], first["fills_quantity"]) == ("0.01000", "0.010")
    still_open = orders["o2-b"]  # sent, no answer recorded
    assert (still_open["status"], still_open["closed"], still_open["order_id"], still_open["fills_quantity"]) == (
        "", "no", "", "0"
    )
    assert orders["o2-s"]["created_at"] == "2026-11-25T00:01:00.000Z"
    assert (first["reduce_only"], orders["o2-s"]["reduce_only"]) == ("no", "yes")


def test_quantities_are_exported_with_the_contract_size_they_are_counted_in_and_in_base(journal_path: Path) -> None:
    """A futures quantity is in contracts, its price per base unit: written alone, price x quantity of
    20 contracts of 0.0001 BTC read as 10,000 times the order's notional."""
    fills = {f["trade_id"]: f for f in rows(journal_path, "fills")}
    assert [(f["quantity"], f["contract_size"], f["base_quantity"]) for f in fills.values()] == [
        ("0.004", "1", "0.004"), ("0.006", "1", "0.006"), ("0.01000", "1", "0.01000"), ("20", "0.0001", "0.0020"),
        ("0.001", "1", "0.001"),  # a fill of no journaled order, on spot
    ]
    orders = {o["client_order_id"]: o for o in rows(journal_path, "orders")}
    assert [(o["quantity"], o["contract_size"], o["base_quantity"]) for o in orders.values()] == [
        ("0.01000", "1", "0.01000"), ("0.01000", "1", "0.01000"), ("0.002", "1", "0.002"), ("20", "0.0001", "0.0020"),
    ]


def test_a_futures_quantity_journaled_without_its_contract_size_is_exported_without_a_base_quantity(
    journal_path: Path,
) -> None:
    """A journal of version 6 has no contract sizes: the venue's size at the time is not known here."""
    with closing(sqlite3.connect(journal_path)) as db, db:
        db.execute("ALTER TABLE intents DROP COLUMN contract_size")
        db.execute("PRAGMA user_version=6")
    fills = {f["trade_id"]: f for f in rows(journal_path, "fills")}
    assert [(fills[t]["contract_size"], fills[t]["base_quantity"]) for t in ("t1", "t4")] == [("1", "0.004"), ("", "")]
    orders = {o["client_order_id"]: o for o in rows(journal_path, "orders")}
    assert [(orders[c]["contract_size"], orders[c]["base_quantity"]) for c in ("o1-b", "o2-s")] == [
        ("1", "0.01000"), ("", "")
    ]


def test_each_kind_is_filtered_by_utc_day_inclusively(journal_path: Path) -> None:
    assert [f["payment_id"] for f in rows(journal_path, "funding")] == ["f1", "f2", "f3"]
    day1 = {"since_ms": DAY1, "until_ms": DAY2}
    assert [f["payment_id"] for f in rows(journal_path, "funding", **day1)] == ["f1", "f2"]
    assert [f["payment_id"] for f in rows(journal_path, "funding", since_ms=DAY2)] == ["f3"]
    assert [f["amount"] for f in rows(journal_path, "funding", **day1)] == ["0.00123000", "-0.0004"]
    assert [f["trade_id"] for f in rows(journal_path, "fills", **day1)] == ["t1", "t2", "t3"]
    assert [o["client_order_id"] for o in rows(journal_path, "orders", since_ms=DAY2)] == ["o2-b", "o2-s"]


def test_an_export_reads_beside_an_open_journal_and_warns_of_intents_still_in_its_log(
    journal_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = journal_path.read_bytes()
    with Journal(journal_path, synchronous="NORMAL") as journal:  # holds the lock, as a running engine does
        req = request("BTC/USDT", OrderSide.BUY, "0.001", "60000", "o3-b")
        journal.record_intents("o3", [("buy", GATE, req)], deferred=True)  # in the intent log only
        with caplog.at_level("WARNING", logger="arb.export"):
            orders = rows(journal_path, "orders")
        assert "o3-b" not in {o["client_order_id"] for o in orders} and len(orders) == 4
        assert "its intent log holds 1 intents not yet in the database" in caplog.text
        assert "not in this export" in caplog.text
        # In the database now, and still in the log until a checkpoint: a running engine's usual state,
        # of which every export warned.
        journal.flush_intents()
        assert Path(f"{journal_path}-intents").stat().st_size
        caplog.clear()
        with caplog.at_level("WARNING", logger="arb.export"):
            assert len(rows(journal_path, "orders")) == 5
        assert caplog.text == ""
    assert len(rows(journal_path, "orders")) == 5
    assert before != journal_path.read_bytes()  # (the journal itself wrote; the export never does)


def test_what_cannot_be_exported_is_named(tmp_path: Path, journal_path: Path) -> None:
    with pytest.raises(ExportError, match="no such file"):
        export_journal(tmp_path / "missing.sqlite3", "fills", io.StringIO())
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some words " * 20)
    with pytest.raises(ExportError, match="notes.txt: not an SQLite database"):
        export_journal(text, "fills", io.StringIO())
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ExportError, match="other.sqlite3: not an arb journal"):
        export_journal(other, "fills", io.StringIO())
    db = sqlite3.connect(journal_path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(ExportError, match=f"schema version 99, this arb reads versions up to {SCHEMA_VERSION}"):
        export_journal(journal_path, "orders", io.StringIO())


def test_a_journal_whose_shared_memory_file_cannot_be_opened_is_not_called_damaged(
    tmp_path: Path, journal_path: Path
) -> None:
    """In a read-only directory SQLite cannot create the ``-shm`` file a WAL journal is read through:
    the export said "not an SQLite database" of a valid journal, with nothing to do about it."""
    Path(f"{journal_path}-shm").unlink(missing_ok=True)
    Path(f"{journal_path}-shm").symlink_to(tmp_path / "no such directory" / "shm")  # as unopenable, even for root
    with pytest.raises(ExportError) as info:
        export_journal(journal_path, "fills", io.StringIO())
    message = str(info.value)
    assert message.startswith(f"journal {journal_path}: cannot open it (unable to open database file)")
    assert f"{journal_path}-shm" in message and "copy the journal with its -wal file" in message
    assert "not an SQLite database" not in message


class _FailingReads:
    """A journal connection whose reads fail with ``failure``, as on a failing or full disk."""

    def __init__(self, db: sqlite3.Connection, failure: sqlite3.Error) -> None:
        self._db, self._failure = db, failure

    def execute(self, *args: object) -> sqlite3.Cursor:
        raise self._failure

    def close(self) -> None:
        self._db.close()


@pytest.mark.parametrize(("code", "error", "said"), [
    (13, "database or disk is full", "cannot be read here (database or disk is full): the disk looks full"),
    (10, "disk I/O error", "cannot be read here (disk I/O error)"),
])
def test_a_journal_the_disk_fails_to_read_is_not_called_damaged(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, error: str, said: str
) -> None:
    """On a full disk (SQLite creates the -shm file a WAL journal is read through) the export and
    `approvals` said "not an SQLite database" of a healthy journal."""
    failure = sqlite3.OperationalError(error)
    failure.sqlite_errorcode = code  # type: ignore[attr-defined]  # as SQLite sets it
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *args, **kwargs: _FailingReads(connect(*args, **kwargs), failure))
    with pytest.raises(ExportError) as info:
        export_journal(journal_path, "fills", io.StringIO())
    assert str(info.value).startswith(f"journal {journal_path}: {said}")
    assert "not an SQLite database" not in str(info.value)


@pytest.mark.parametrize(("kind", "damage", "expected"), [
    ("fills", "UPDATE fills SET price = 'abc' WHERE trade_id = 't2'", "fills row 2: price 'abc': not a decimal number"),
    ("fills", "UPDATE fills SET recorded_at_ms = 100000000000000000 WHERE trade_id = 't3'",
     "fills row 3: recorded_at_ms 100000000000000000: not a time in ms since 1970"),
    ("fills", "UPDATE fills SET timestamp_ms = 'noon' WHERE trade_id = 't1'",
     "fills row 1: timestamp_ms 'noon': not a time in ms since 1970"),
    ("funding", "UPDATE funding_payments SET amount = '1,5' WHERE payment_id = 'f2'",
     "funding_payments row gateio_futures f2: amount '1,5': not a decimal number"),
    ("orders", "UPDATE intents SET request = '{\"side\": 5}' WHERE client_order_id = 'o1-s'",
     "intents row 2: request: not an order request: "),
    ("orders", "UPDATE intents SET request = 'not json' WHERE client_order_id = 'o1-b'",
     "intents row 1: request: not an order request: "),
    ("orders", "UPDATE order_events SET filled_quantity = 'lots' WHERE filled_quantity IS NOT NULL",
     "intents row 1: order_events.filled_quantity 'lots': not a decimal number"),
    ("orders", "UPDATE fills SET quantity = '2O' WHERE trade_id = 't4'",
     "fills row 4: quantity '2O': not a decimal number"),
    ("fills", "UPDATE fills SET price = 'NaN' WHERE trade_id = 't2'", "fills row 2: price 'NaN': not a finite number"),
    ("fills", "UPDATE fills SET fee = '-Infinity' WHERE trade_id = 't3'",
     "fills row 3: fee '-Infinity': not a finite number"),
    ("funding", "UPDATE funding_payments SET amount = 'sNaN' WHERE payment_id = 'f1'",
     "funding_payments row gateio_futures f1: amount 'sNaN': not a finite number"),
    ("orders", "UPDATE fills SET quantity = 'Inf' WHERE trade_id = 't4'",
     "fills row 4: quantity 'Inf': not a finite number"),
    # An amount whose arithmetic overflows: a bare decimal.Overflow; its plain text fills hundreds of megabytes.
    ("orders", "UPDATE fills SET quantity = '1e400000000' WHERE trade_id = 't4'",
     "fills row 4: quantity '1e400000000': out of range: at most 30 digits before or after the point"),
    ("fills", "UPDATE fills SET price = '1E+1000' WHERE trade_id = 't2'", "fills row 2: price '1E+1000': out of range"),
    # Fills of one order (t1, t2) whose sum is not exact in 80 digits: it was rounded, unsaid.
    ("orders", f"UPDATE fills SET quantity = CASE trade_id WHEN 't1' THEN '1{'0' * 30}' ELSE '0.{'1' * 60}' END "
     "WHERE trade_id IN ('t1', 't2')",
     f"fills row 2: quantity '0.{'1' * 60}': the fills of its order do not sum exactly in 80 digits"),
    # A time no window holds: the row was left out of every export, unsaid.
    ("fills", "UPDATE fills SET recorded_at_ms = 'yesterday' WHERE trade_id = 't3'",
     "fills row 3: recorded_at_ms 'yesterday': not a time in ms since 1970"),
    ("funding", "UPDATE funding_payments SET settled_at_ms = -5 WHERE payment_id = 'f2'",
     "funding_payments row gateio_futures f2: settled_at_ms -5: not a time in ms since 1970"),
    ("orders", f"UPDATE intents SET created_at_ms = {2**62} WHERE client_order_id = 'o1-s'",
     f"intents row 2: created_at_ms {2**62}: not a time in ms since 1970"),
    ("fills", "UPDATE intents SET contract_size = '1e-4x' WHERE client_order_id = 'o2-s'",
     "fills row 4: contract_size '1e-4x': not a decimal number"),
    ("orders", "UPDATE intents SET contract_size = '-0.0001' WHERE client_order_id = 'o2-s'",
     "intents row 4: contract_size '-0.0001': not positive"),
])
def test_a_damaged_value_is_named_by_table_row_and_column(
    journal_path: Path, kind: str, damage: str, expected: str
) -> None:
    """A row edited by hand or cut short by a failing disk: said where, not a traceback from the conversion."""
    with closing(sqlite3.connect(journal_path)) as db, db:
        db.execute(damage)
    with pytest.raises(ExportError) as info:
        export_journal(journal_path, kind, io.StringIO())
    assert str(info.value).startswith(f"journal {journal_path}: {expected}")


def test_python_m_arb_export_of_a_damaged_journal_fails_and_leaves_no_file(
    tmp_path: Path, journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with closing(sqlite3.connect(journal_path)) as db, db:
        db.execute("UPDATE fills SET fee = 'abc' WHERE trade_id = 't9'")  # the last row: the others are written
    out = tmp_path / "fills.csv"
    assert main(["export", "fills", "--journal", str(journal_path), "--out", str(out)]) == 1
    assert f"arb: journal {journal_path}: fills row 5: fee 'abc': not a decimal number" in capsys.readouterr().err
    assert not out.exists()


def test_a_version_1_journal_has_no_funding_to_export(journal_path: Path) -> None:
    db = sqlite3.connect(journal_path)
    db.execute("DROP TABLE funding_payments")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    assert rows(journal_path, "funding") == []
    assert len(rows(journal_path, "fills")) == 5


def test_python_m_arb_export(tmp_path: Path, journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fills.csv"
    assert main(["export", "fills", "--journal", str(journal_path), "--out", str(out), "--to", "2026-11-24"]) == 0
    assert [r["trade_id"] for r in csv.DictReader(out.open())] == ["t1", "t2", "t3"]
    assert "arb export: 3 fills rows from" in capsys.readouterr().err
    assert main(["export", "fills", "--journal", str(journal_path), "--out", str(out)]) == 2  # never overwritten
    assert "File exists" in capsys.readouterr().err
    assert [r["trade_id"] for r in csv.DictReader(out.open())] == ["t1", "t2", "t3"]
    assert main(["export", "funding", "--journal", str(journal_path), "--from", "2026-11-25", "--to", "2026-11-24"]) == 2
    assert "--to must not be before --from" in capsys.readouterr().err
    config = tmp_path / "arb.toml"
    config.write_text(f'[engine]\njournal_path = "{journal_path}"\n')
    assert main(["export", "funding", "--config", str(config)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "settled_at,market,symbol,amount,payment_id,recorded_at" and len(printed) == 4
    assert main(["export", "orders", "--journal", str(tmp_path / "none.sqlite3"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "export: no journal at" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()  # no partial file left behind
