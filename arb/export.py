"""CSV exports of the order journal: its fills, settled funding and orders, as recorded.

For the operator's books and for checking the engine against the venues' own statements.
The journal is opened read-only (SQLite's ``mode=ro``): an export runs beside an engine that is
writing it (a WAL reader never blocks the writer) and changes nothing. Money is written as the
journal stores it, exact decimal text; times as ISO 8601 UTC with milliseconds. Quantities are in the
market's order unit, as the journal stores them: base on spot, contracts on futures, priced per base
unit; ``contract_size`` (base units per unit, as journaled with the order) and ``base_quantity`` say
what they are in base, left empty for a futures order journaled without its contract size (before
journal version 7, or a fill of no known order). Intents a crash
left only in the intent log (``<journal>-intents``) reach the database at the next start; an
export warns of those the log holds and the database does not.
"""

from __future__ import annotations

import csv
import datetime
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Any, NoReturn, TextIO, TypeVar

import msgspec

from .errors import ArbitrageEngineError
from .exchanges.models import OrderRequest
from .journal import (
    SCHEMA_VERSION,
    IntentLogDamage,
    UnreadableValue,
    converted_rows,
    intent_log_of,
    read_intent_log,
    stored_contract_size,
    stored_decimal,
)
from .risk import MS_PER_DAY
from .types import ExchangeName

log = logging.getLogger(__name__)

KINDS = ("fills", "funding", "orders")

FILL_COLUMNS = (
    "recorded_at", "market", "symbol", "side", "price", "quantity", "contract_size", "base_quantity", "fee",
    "fee_asset", "is_maker", "venue_time", "trade_id", "order_id", "client_order_id", "opportunity_id", "leg",
    "source",
)
FUNDING_COLUMNS = ("settled_at", "market", "symbol", "amount", "payment_id", "recorded_at")
ORDER_COLUMNS = (
    "created_at", "intent_id", "opportunity_id", "leg", "market", "symbol", "client_order_id", "side", "type",
    "time_in_force", "reduce_only", "quantity", "contract_size", "base_quantity", "price", "order_id", "status",
    "closed", "venue_filled_quantity", "fills_quantity",
)

# ``{contract_size}``: the intents column, or NULL in a journal before version 7, which has none.
_FILLS = """
SELECT f.recorded_at_ms, f.exchange, f.symbol, f.side, f.price, f.quantity, f.fee, f.fee_asset, f.is_maker,
       f.timestamp_ms, f.trade_id, f.order_id, f.client_order_id, i.opportunity_id, i.leg, f.source, f.fill_id,
       {contract_size}
FROM fills f LEFT JOIN intents i ON i.intent_id = f.intent_id
WHERE f.recorded_at_ms >= ? AND f.recorded_at_ms < ? ORDER BY f.fill_id
"""
_FUNDING = """
SELECT settled_at_ms, exchange, symbol, amount, payment_id, recorded_at_ms FROM funding_payments
WHERE settled_at_ms >= ? AND settled_at_ms < ? ORDER BY settled_at_ms, exchange, payment_id
"""
# The last status and order id any event reported, whether one closed it, and the last filled quantity the
# venue reported (the closing event records the journal's own sum of fills instead).
_ORDERS = """
SELECT i.created_at_ms, i.intent_id, i.opportunity_id, i.leg, i.exchange, i.symbol, i.client_order_id, i.request,
       (SELECT order_id FROM order_events e WHERE e.intent_id = i.intent_id AND e.order_id IS NOT NULL
        ORDER BY e.event_id DESC LIMIT 1),
       (SELECT status FROM order_events e WHERE e.intent_id = i.intent_id AND e.status IS NOT NULL
        ORDER BY e.event_id DESC LIMIT 1),
       EXISTS (SELECT 1 FROM order_events e WHERE e.intent_id = i.intent_id AND e.closes = 1),
       (SELECT filled_quantity FROM order_events e WHERE e.intent_id = i.intent_id
        AND e.filled_quantity IS NOT NULL AND e.kind <> 'closed' ORDER BY e.event_id DESC LIMIT 1),
       {contract_size}
FROM intents i WHERE i.created_at_ms >= ? AND i.created_at_ms < ? ORDER BY i.intent_id
"""
# The fills of the orders an export lists (summed exactly in Python: SQLite would sum the text as floats).
_FILL_QUANTITIES = """
SELECT f.fill_id, f.intent_id, f.quantity FROM fills f JOIN intents i ON i.intent_id = f.intent_id
WHERE i.created_at_ms >= ? AND i.created_at_ms < ?
"""
# A row whose time is no whole number of ms in [0, 2**62) is in no window (SQLite orders text above every
# number): it is looked for first and refused by name, instead of being left out unsaid.
_END_MS = 2**62
_UNTIMED = "SELECT {column}, {key} FROM {table} WHERE typeof({column}) <> 'integer' OR {column} NOT BETWEEN 0 AND ?"
# Amounts within ``number_problem``'s range sum exactly in these digits, or raise: one written with more
# digits than any venue writes is refused, not rounded.
_SUM = Context(prec=80, traps=[InvalidOperation, Inexact, Overflow])
_decode_request = msgspec.json.Decoder(OrderRequest).decode
_SPOT_MARKETS = frozenset(market.value for market in ExchangeName if not market.is_futures)
_Converted = TypeVar("_Converted")


class ExportError(ArbitrageEngineError):
    """The journal cannot be exported: missing, not a journal, of a newer version, or a value in it unreadable."""


def parse_day(text: str) -> int:
    """Wall-clock ms of 00:00 UTC of ``YYYY-MM-DD``; ``ValueError`` naming the text otherwise."""
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a day as YYYY-MM-DD, got {text!r}") from None
    return (day - datetime.date(1970, 1, 1)).days * MS_PER_DAY


def export_journal(
    path: str | os.PathLike[str], kind: str, out: TextIO, *, since_ms: int = 0, until_ms: int | None = None
) -> int:
    """Write the journal's ``kind`` (``fills``, ``funding`` or ``orders``) recorded in
    ``[since_ms, until_ms)`` to ``out`` as CSV with a header; returns the rows written."""
    if kind not in KINDS:
        raise ValueError(f"export: kind {kind!r}: expected one of {', '.join(KINDS)}")
    where = os.fspath(path)
    window = (since_ms, until_ms if until_ms is not None else _END_MS)
    db = _open_read_only(where)
    try:
        version = _schema_version(db, where)
        writer = csv.writer(out, lineterminator="\n")
        contract_size = {"contract_size": "i.contract_size" if version >= 7 else "NULL"}
        try:
            _warn_pending_intents(db, where)
            if kind == "fills":
                _refuse_untimed(db, where, "fills", "recorded_at_ms", ("fill_id",))
                fills = db.execute(_FILLS.format(**contract_size), window)
                return _write(writer, FILL_COLUMNS, _rows(where, "fills", (16,), fills, _fill_row))
            if kind == "funding":
                rows: Iterable[tuple[Any, ...]] = ()  # a version 1 journal has none
                if version >= 2:
                    _refuse_untimed(db, where, "funding_payments", "settled_at_ms", ("exchange", "payment_id"))
                    rows = db.execute(_FUNDING, window)
                return _write(writer, FUNDING_COLUMNS, _rows(where, "funding_payments", (1, 4), rows, _funding_row))
            _refuse_untimed(db, where, "intents", "created_at_ms", ("intent_id",))
            filled = _fill_quantities(db, window, where)
            rows = db.execute(_ORDERS.format(**contract_size), window)
            orders = _rows(where, "intents", (1,), rows, lambda row: _order_row(row, filled))
            return _write(writer, ORDER_COLUMNS, orders)
        except sqlite3.Error as exc:
            raise ExportError(f"journal {where}: cannot read its {kind}: {exc}") from exc
    finally:
        db.close()


def journal_version(path: str) -> int:
    """The schema version of the arb journal at ``path``, read without writing anything there;
    raises ``ExportError`` when the file is missing, is not an arb journal or is newer than this
    build reads."""
    with read_only_journal(path) as (_, version):
        return version


@contextmanager
def read_only_journal(path: str) -> Iterator[tuple[sqlite3.Connection, int]]:
    """A read-only connection to the arb journal at ``path`` and its schema version, closed on exit;
    ``ExportError`` as ``journal_version`` raises it. Nothing is written there: an older journal keeps
    its schema, its intent log what it holds."""
    db = _open_read_only(path)
    try:
        yield db, _schema_version(db, path)
    finally:
        db.close()


def _open_read_only(path: str) -> sqlite3.Connection:
    if not os.path.isfile(path):
        raise ExportError(f"journal {path}: no such file")
    try:
        return sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ExportError(f"journal {path}: cannot open it read-only: {exc}") from exc


def _uri_path(path: str) -> str:
    """``path`` for an SQLite file URI: absolute, with the characters URIs reserve escaped."""
    return os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _schema_version(db: sqlite3.Connection, path: str) -> int:
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CANTOPEN:
            # A journal in WAL mode is read through its shared-memory index beside it, which a read-only
            # directory neither holds nor lets SQLite create: not a damaged file.
            raise ExportError(
                f"journal {path}: cannot open it ({exc}): SQLite reads it only where it can open or create "
                f"{path}-shm beside it; export from a directory this user can write to, or copy the journal "
                "with its -wal file into one and export the copy"
            ) from exc
        primary = exc.sqlite_errorcode & 0xFF
        if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            raise ExportError(f"journal {path}: not an SQLite database ({exc})") from exc
        # An I/O error or a full disk (the -shm file SQLite creates beside it): the file may be sound.
        advice = ": the disk looks full; free space on it and try again" if primary == sqlite3.SQLITE_FULL else ""
        raise ExportError(f"journal {path}: cannot be read here ({exc}){advice}") from exc
    if "intents" not in tables or "fills" not in tables or version < 1:
        raise ExportError(f"journal {path}: not an arb journal (no intents and fills tables)")
    if version > SCHEMA_VERSION:
        raise ExportError(f"journal {path}: schema version {version}, this arb reads versions up to {SCHEMA_VERSION}")
    return int(version)


def _warn_pending_intents(db: sqlite3.Connection, path: str) -> None:
    """Warn of the intents the intent log holds that the database does not (yet). The log is emptied only
    at checkpoints: beside a running engine it mostly holds intents the database has already."""
    try:
        with open(intent_log_of(path), "rb") as file:
            data = file.read()
    except OSError:
        return
    try:
        lines, _ = read_intent_log(data)  # a torn last record: an append under way, its order not sent yet
    except IntentLogDamage as exc:
        log.warning(
            "journal %s: its intent log line %d is damaged (%s): the intents there may not be in this export, "
            "and the engine's next start refuses the line", path, exc.line, exc,
        )
        return
    logged = {row[0] for _, rows in lines for row in rows}
    if not logged:
        return
    stored = {intent_id for (intent_id,) in db.execute("SELECT intent_id FROM intents WHERE intent_id >= ?",
                                                       (min(logged),))}
    pending = len(logged - stored)
    if pending:
        log.warning(
            "journal %s: its intent log holds %d intents not yet in the database (the engine is running, or "
            "stopped abruptly and has not been started since); they are not in this export", path, pending,
        )


def _refuse_untimed(db: sqlite3.Connection, where: str, table: str, column: str, key: tuple[str, ...]) -> None:
    """An ExportError naming the first row of ``table`` (by its ``key`` columns) whose ``column``, the time
    an export's window is applied to, no window holds; nothing when there is none."""
    rows = db.execute(_UNTIMED.format(column=column, key=", ".join(key), table=table), (_END_MS - 1,))
    next(_rows(where, table, tuple(range(1, len(key) + 1)), rows, lambda row: _untimed(row[0], column)), None)


def _untimed(ms: object, column: str) -> NoReturn:
    """Refuse a time ``_UNTIMED`` selected: not an integer in [0, _END_MS)."""
    raise UnreadableValue(f"{column} {ms!r}: not a time in ms since 1970")


def _rows(
    where: str, table: str, key: tuple[int, ...], rows: Iterable[tuple[Any, ...]],
    convert: Callable[[tuple[Any, ...]], _Converted],
) -> Iterator[_Converted]:
    """Each of ``table``'s ``rows`` converted; one with a value that cannot be is an ExportError naming
    the journal, the table, the row (its columns at ``key``) and the column."""
    return converted_rows(where, table, key, rows, convert, ExportError)


def _write(writer: Any, columns: tuple[str, ...], rows: Iterable[list[str]]) -> int:
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def _time(ms: int | None, column: str) -> str:
    if ms is None:
        return ""
    try:
        stamp = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    except (ArithmeticError, OSError, TypeError, ValueError):  # out of the calendar's range, or not an integer
        raise UnreadableValue(f"{column} {ms!r}: not a time in ms since 1970") from None


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _amount(value: Decimal | str | None, column: str) -> str:
    """An amount as plain decimal text (``0.000000002``, never ``2E-9``); "" for none."""
    return "" if value is None else f"{stored_decimal(value, column):f}"


def _request(request_json: str) -> OrderRequest:
    try:
        return _decode_request(request_json)
    except (msgspec.DecodeError, TypeError) as exc:  # DecodeError: not JSON, or not an order request
        raise UnreadableValue(f"request: not an order request: {exc}") from None


def _in_base(market: str, quantity: Decimal, stored_size: str | None) -> list[str]:
    """The ``contract_size`` and ``base_quantity`` columns of ``quantity`` on ``market``: the contract size
    journaled with the order, 1 on spot; both empty for a futures quantity journaled without one."""
    size = stored_contract_size(stored_size)
    if size is None:
        if market not in _SPOT_MARKETS:
            return ["", ""]
        size = Decimal(1)
    try:
        base = _SUM.multiply(quantity, size)
    except ArithmeticError:
        raise UnreadableValue(
            f"contract_size {stored_size!r}: its quantity {quantity} in base does not fit {_SUM.prec} digits"
        ) from None
    return [f"{size:f}", f"{base:f}"]


def _fill_row(row: tuple[Any, ...]) -> list[str]:
    (recorded, market, symbol, side, price, quantity, fee, fee_asset, is_maker, venue_ms, trade_id, order_id,
     client_order_id, opportunity_id, leg, source, _, contract_size) = row
    return [
        _time(recorded, "recorded_at_ms"), market, symbol, side, _amount(price, "price"),
        _amount(quantity, "quantity"), *_in_base(market, stored_decimal(quantity, "quantity"), contract_size),
        _amount(fee, "fee"), fee_asset, "yes" if is_maker else "no",
        _time(venue_ms, "timestamp_ms") if venue_ms else "", trade_id, order_id, _text(client_order_id),
        _text(opportunity_id), _text(leg), source,
    ]


def _funding_row(row: tuple[Any, ...]) -> list[str]:
    settled, market, symbol, amount, payment_id, recorded = row
    return [
        _time(settled, "settled_at_ms"), market, symbol, _amount(amount, "amount"), payment_id,
        _time(recorded, "recorded_at_ms"),
    ]


def _fill_quantities(db: sqlite3.Connection, window: tuple[int, int], where: str) -> dict[int, Decimal]:
    """The recorded fill quantity per intent created in ``window``, summed exactly."""
    filled: dict[int, Decimal] = {}

    def add(row: tuple[Any, ...]) -> None:
        intent_id, quantity = row[1], stored_decimal(row[2], "quantity")
        try:
            filled[intent_id] = _SUM.add(filled.get(intent_id, Decimal(0)), quantity)
        except ArithmeticError:
            raise UnreadableValue(
                f"quantity {row[2]!r}: the fills of its order do not sum exactly in {_SUM.prec} digits"
            ) from None

    for _ in _rows(where, "fills", (0,), db.execute(_FILL_QUANTITIES, window), add):
        pass
    return filled


def _order_row(row: tuple[Any, ...], filled: dict[int, Decimal]) -> list[str]:
    (created, intent_id, opportunity_id, leg, market, symbol, client_order_id, request_json, order_id, status,
     closed, venue_filled, contract_size) = row
    request = _request(request_json)
    return [
        _time(created, "created_at_ms"), str(intent_id), opportunity_id, leg, market, symbol, client_order_id,
        request.side.value, request.type.value, request.time_in_force.value, "yes" if request.reduce_only else "no",
        _amount(request.quantity, "request.quantity"), *_in_base(market, request.quantity, contract_size),
        _amount(request.price, "request.price"),
        _text(order_id), _text(status), "yes" if closed else "no",
        _amount(venue_filled, "order_events.filled_quantity"), f"{filled.get(intent_id, Decimal(0)):f}",
    ]


__all__ = ["ExportError", "KINDS", "export_journal", "journal_version", "parse_day", "read_only_journal"]
