"""Append-only order journal on SQLite: the intent before every order, every outcome after.

Write-ahead: ``record_intent`` commits before the order is sent, so after a crash every
order that may exist at a venue has a row. Every later fact (ack, fill, cancel, reject,
unknown outcome, recovery step) is appended in its own transaction, committed before the
call returns. Rows are never updated: an intent is open until a *closing* event is
appended, and it closes only when the venue's final status is known **and** its fills
are recorded, so a crash between "order filled" and "fills written" leaves it open for
``reconcile`` to finish.

Index: the journal keeps in memory, per open intent of this process (written by it or open
in the file when it was opened), the intent id, the requested quantity, the sum of its
recorded fills and its last final status, so the writes on the order path find the intent
and decide whether it closes without reading the database. The database stays the source
of truth: the index changes only when the transaction that wrote the rows commits, and an
intent it does not hold (closed, or written by another connection) is looked up in the
database as before. Closed intents leave the index, so it holds only the orders in flight.
Like the rest of the class, it assumes one writer: this connection.

Durability: WAL mode. ``synchronous=FULL`` (the default) fsyncs the WAL on every commit,
so a committed record survives power loss; ``NORMAL`` syncs only at checkpoints, which
survives a killed process but may lose the last commits on power loss, at a lower
commit latency (``benchmarks/bench_journal.py`` measures both). Either way a crash at any
point leaves a consistent database: a transaction is all there or not at all.

Checkpoints (copying the WAL into the database file, then syncing it) take milliseconds
of file I/O. ``start_checkpoint`` runs one on a background thread with its own connection,
so the event loop never blocks on it (measured on ext4 in ``bench_tick_to_order.py``: a
checkpoint on the loop blocked it 2.4 ms at the median). Commits running beside a
checkpoint's syncs still slow down (intent commit p99 0.2 ms without checkpoints, up to
a few ms beside one), so the engine checkpoints rarely; SQLite's own checkpoint, inside a
commit, is pushed out to ``AUTOCHECKPOINT_PAGES`` as a safety net.

Intent log: ``record_intents(..., deferred=True)`` (the executor's two legs) appends the
intents to ``<path>-intents`` (beside the file a symlink at ``path`` leads to) with one
``write`` (and an ``fdatasync`` under ``FULL``) instead of a commit, which took the order
path ~185 µs cold. The rows go into the database in the
next transaction, before anything else is written or read, or in ``flush_intents`` (the
executor calls it once both orders are out). Opening a journal first moves what a crash left
in the log into the database, so the open intents include every order that may have been
sent. The log is emptied once everything in it has been committed (``start_checkpoint``,
``checkpoint``, ``close``). Its durability is the database's: kept across a killed process,
and across power loss under ``FULL`` only. A journal in memory has no log and commits at once.
The log is locked (``flock``) while its journal is open, so a second journal opened on the
same file, in this process or another, by any name through symlinks, is refused rather than taking
the log away; a database file with several names (hard links) is refused. A log
deleted while open is created and locked again at the next checkpoint; when another file is
there by then, or another journal has written intents, the journal records no more intents. Ids are
given by the journal for both paths, never reused, even for an append that failed. A failed
append is cut back off the log; when even that fails, intents are committed to the database
at once until the log can be emptied. More than ``MAX_LOGGED_INTENTS`` waiting for a database
that does not take them refuse the next.

Run mode: a journal opened with a ``mode`` records it when none is recorded (a new file, or one
written before modes were recorded), and refuses to open for another: a live run restoring a
paper or dry run's hedges, day's PnL and open intents would take them for real, and the
reverse would mix simulated trades into a live account's record.

Money is stored as decimal strings, exactly; times are wall-clock ms.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, TypeVar, get_args

import msgspec
import numpy as np

from .errors import ArbitrageEngineError
from .exchanges.models import Fill, FundingPayment, OrderRequest, OrderState, OrderStatus
from .instruments import Instrument, InstrumentCatalog
from .types import ExchangeName, OrderSide, number_problem

log = logging.getLogger(__name__)

SCHEMA_VERSION = 8
SQLITE_HEADER = b"SQLite format 3\x00"  # how every SQLite database file begins
INTENT_LOG_SUFFIX = "-intents"  # the intent log is the database's path with this suffix
# SQLite's own checkpoint, run inside a commit once the WAL holds this many pages: a safety net
# well above the cadence of ``start_checkpoint`` (the engine's, about 4 pages per commit).
AUTOCHECKPOINT_PAGES = 8192
# Intents waiting in the log for the database past which no more are logged: the database has
# been failing to take them (normally at most one execution's two wait, for a few ms).
MAX_LOGGED_INTENTS = 64
MERGE_KEY_HASHES = 4096  # client-id key hashes held in a set before a checkpoint sorts them into the array
ZERO = Decimal(0)
# Enum members by value: a dict lookup, where calling the enum costs ~0.7 us a row on a restore's reads.
_MARKETS = {market.value: market for market in ExchangeName}
_SIDES = {side.value: side for side in OrderSide}

_SCHEMA = """
CREATE TABLE intents (
    intent_id INTEGER PRIMARY KEY,
    opportunity_id TEXT NOT NULL,
    leg TEXT NOT NULL,
    exchange TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    request TEXT NOT NULL,           -- OrderRequest as JSON, decimals as strings
    created_at_ms INTEGER NOT NULL,
    UNIQUE (exchange, client_order_id)
);
CREATE INDEX intents_opportunity ON intents (opportunity_id);
CREATE TABLE order_events (
    event_id INTEGER PRIMARY KEY,
    intent_id INTEGER NOT NULL REFERENCES intents (intent_id),
    kind TEXT NOT NULL,              -- ack, update, cancel, reject, unknown, filled, reconciled, not_found, ...
    status TEXT,                     -- OrderStatus value when the venue reported one
    order_id TEXT,
    filled_quantity TEXT,            -- the venue's cumulative filled quantity with that status
    closes INTEGER NOT NULL CHECK (closes IN (0, 1)),
    detail TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX order_events_intent ON order_events (intent_id, closes);
CREATE INDEX order_events_order_id ON order_events (order_id) WHERE order_id IS NOT NULL;
CREATE TABLE fills (
    fill_id INTEGER PRIMARY KEY,
    intent_id INTEGER REFERENCES intents (intent_id),
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    client_order_id TEXT,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    fee TEXT NOT NULL,
    fee_asset TEXT NOT NULL,
    is_maker INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    source TEXT NOT NULL,            -- venue, or reconcile (the gap between the venue's total and recorded fills)
    recorded_at_ms INTEGER NOT NULL,
    UNIQUE (exchange, symbol, trade_id)
);
CREATE INDEX fills_intent ON fills (intent_id);
CREATE TABLE recovery_steps (
    step_id INTEGER PRIMARY KEY,
    opportunity_id TEXT NOT NULL,
    step TEXT NOT NULL,
    detail TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"""
# Version 2: funding the venues settled on futures positions, each payment once.
_FUNDING_SCHEMA = """
CREATE TABLE funding_payments (
    exchange TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    amount TEXT NOT NULL,            -- in the settle asset: > 0 received, < 0 paid
    settled_at_ms INTEGER NOT NULL,  -- the venue's time of the settlement
    recorded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (exchange, payment_id)
);
CREATE INDEX funding_settled ON funding_payments (settled_at_ms);
"""
# Version 3: hedges taken out of the hedge book because their venue no longer held them, so that a
# restore does not bring them back (``HedgeBook.restore``).
_HEDGE_DROP_SCHEMA = """
CREATE TABLE hedge_drops (
    drop_id INTEGER PRIMARY KEY,
    symbol TEXT NOT NULL,              -- the pair, unified spot symbol
    spot TEXT NOT NULL,
    futures TEXT NOT NULL,
    after_intent_id INTEGER NOT NULL,  -- the pair's hedge executions up to this intent are gone
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"""
# Version 4: the start's reads of recovery steps (one opportunity's, and the approval flags) go
# by index rather than reading every step a long run recorded.
_RECOVERY_INDEX_SCHEMA = """
CREATE INDEX recovery_steps_opportunity ON recovery_steps (opportunity_id);
CREATE INDEX recovery_steps_approval ON recovery_steps (step_id) WHERE step IN ('manual_approval', 'acknowledged');
"""
# Version 5: the operator's kill switch is kept, so that a restart (a crash, a reboot, a redeploy)
# does not release it. Files of version 4 may hold the table already (it was once part of that
# version): both kinds become version 5 with it.
_KILL_SWITCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS kill_switch (
    change_id INTEGER PRIMARY KEY,
    engaged INTEGER NOT NULL CHECK (engaged IN (0, 1)),
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"""
# Version 6: how long after its intent each market's orders may still be taken by the venue, as
# the runs that sent them had it, so that a restart waits that long whatever its own settings.
_ORDER_WINDOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS order_windows (
    exchange TEXT PRIMARY KEY,
    window_ms INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
"""
# Version 7: the intents column ``contract_size``, the contract size (base units per contract) a
# futures order's quantity and fills are counted in, as the venue had it when the order was sent,
# so that a later change of the venue's contract size does not change what the journaled contracts
# were. NULL where none was given (a spot order may leave it out: its unit is the base) and in the
# intents of older versions, which are read at the catalog's contract size (``base_per_unit``).
# Added by ``_migrate`` where the table lacks it: SQLite has no ADD COLUMN IF NOT EXISTS.
_CONTRACT_SIZE_COLUMN = "ALTER TABLE intents ADD COLUMN contract_size TEXT"
# Version 8: the mode of the runs that write the journal (``JournalMode``), one row, so that a run of
# another mode does not continue it. Empty in a file upgraded from an older version.
_RUN_MODE_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_mode (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    mode TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"""
# What brings a journal of each older version to SCHEMA_VERSION (0: a new file).
_UPGRADES = {
    0: _SCHEMA + _FUNDING_SCHEMA + _HEDGE_DROP_SCHEMA + _RECOVERY_INDEX_SCHEMA + _KILL_SWITCH_SCHEMA
    + _ORDER_WINDOW_SCHEMA + _RUN_MODE_SCHEMA,
    1: _FUNDING_SCHEMA + _HEDGE_DROP_SCHEMA + _RECOVERY_INDEX_SCHEMA + _KILL_SWITCH_SCHEMA + _ORDER_WINDOW_SCHEMA
    + _RUN_MODE_SCHEMA,
    2: _HEDGE_DROP_SCHEMA + _RECOVERY_INDEX_SCHEMA + _KILL_SWITCH_SCHEMA + _ORDER_WINDOW_SCHEMA + _RUN_MODE_SCHEMA,
    3: _RECOVERY_INDEX_SCHEMA + _KILL_SWITCH_SCHEMA + _ORDER_WINDOW_SCHEMA + _RUN_MODE_SCHEMA,
    4: _KILL_SWITCH_SCHEMA + _ORDER_WINDOW_SCHEMA + _RUN_MODE_SCHEMA,
    5: _ORDER_WINDOW_SCHEMA + _RUN_MODE_SCHEMA,
    6: _RUN_MODE_SCHEMA,
    7: _RUN_MODE_SCHEMA,
}
JournalMode = Literal["live", "paper", "dry run"]
"""The kind of run that writes a journal: live orders, paper fills, or simulated venues."""
_JOURNAL_MODES: tuple[str, ...] = get_args(JournalMode)

_MARKET_VALUES = frozenset(market.value for market in ExchangeName)
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26  # primary result codes of a damaged file
_FINAL_STATUSES = tuple(status.value for status in OrderStatus if status.is_final)
_FINAL_STATUS_SET = frozenset(_FINAL_STATUSES)
_FILLED = OrderStatus.FILLED.value
_REJECTED = OrderStatus.REJECTED.value
_NO_DETAIL = "{}"

_INSERT_NUMBERED_INTENT = (
    "INSERT INTO intents (intent_id, opportunity_id, leg, exchange, client_order_id, symbol, request, created_at_ms, "
    "contract_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INTENT_KEY_EXISTS = "SELECT 1 FROM intents WHERE exchange = ? AND client_order_id = ?"
# One intents row as the log holds it: (intent_id, opportunity_id, leg, exchange, client_order_id, symbol,
# request JSON, created_at_ms, contract_size); one line of the log is a JSON array of them. A log
# written before version 7 has rows without the contract size.
_LoggedIntent = tuple[int, str, str, str, str, str, str, int, str | None]
_decode_log_line = msgspec.json.Decoder(list[_LoggedIntent]).decode
_decode_log_line_v6 = msgspec.json.Decoder(list[tuple[int, str, str, str, str, str, str, int]]).decode
IntentOrder = tuple[str, ExchangeName, OrderRequest] | tuple[str, ExchangeName, OrderRequest, Decimal]
"""An order whose intent is recorded: (leg, market, request), and on a futures market the contract
size (base units per contract) the request's quantity is counted in; a spot quantity is in base."""
_INSERT_EVENT = (
    "INSERT INTO order_events (intent_id, kind, status, order_id, filled_quantity, closes, detail, at_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_FILL = (
    "INSERT OR IGNORE INTO fills (intent_id, exchange, symbol, trade_id, order_id, client_order_id, side, "
    "price, quantity, fee, fee_asset, is_maker, timestamp_ms, source, recorded_at_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# An intent with no closing outcome yet (``intents`` aliased ``i``).
_IS_OPEN = "NOT EXISTS (SELECT 1 FROM order_events e WHERE e.intent_id = i.intent_id AND e.closes = 1)"
_OPEN_INTENTS = (
    f"SELECT intent_id, opportunity_id, leg, exchange, request, created_at_ms, contract_size FROM intents i "
    f"WHERE {_IS_OPEN} ORDER BY intent_id"
)
_OPEN_INTENTS_OF = f"SELECT intent_id FROM intents i WHERE opportunity_id = ? AND {_IS_OPEN} ORDER BY intent_id"
_LAST_FINAL = (
    "SELECT event_id, status, filled_quantity FROM order_events WHERE intent_id = ? AND status IN "
    f"({', '.join('?' * len(_FINAL_STATUSES))}) ORDER BY event_id DESC LIMIT 1"
)


class _OpenIntent:
    """What closing an open intent depends on, mirrored from its rows (see the module doc, Index)."""

    __slots__ = ("intent_id", "key", "quantity", "filled", "final", "closed")

    def __init__(
        self,
        intent_id: int,
        key: tuple[str, str],
        quantity: Decimal,
        filled: Decimal,
        final: tuple[str, Decimal] | None,
        closed: bool = False,
    ) -> None:
        self.intent_id = intent_id
        self.key = key  # (market, client order id)
        self.quantity = quantity  # requested
        self.filled = filled  # sum of the recorded fills
        self.final = final  # (status, venue filled quantity) of the newest event with a final status
        self.closed = closed

    def copy(self) -> _OpenIntent:
        return _OpenIntent(self.intent_id, self.key, self.quantity, self.filled, self.final, self.closed)

    @staticmethod
    def inserted(row: _LoggedIntent, quantity: Decimal) -> _OpenIntent:
        """The entry of an intents row just inserted: nothing filled, no answer yet."""
        return _OpenIntent(row[0], (row[3], row[4]), quantity, ZERO, None)


class _KeyHashes:
    """Hashes of the journaled (market, client order id) keys, so that a reused client id is refused
    without a database read on the order path.

    The keys the file held when it was opened sit in a sorted array (8 bytes each), later ones in
    a set that ``merge`` (called at idle moments) moves into the array. A hash it holds says only
    that the key may be journaled (the database then decides); one it lacks says the key is not.
    The array is sorted and merged with numpy but searched with ``bisect``: on the order path,
    where the lookup runs cold, numpy's ``searchsorted`` took ~17 us a call in the engine.
    """

    __slots__ = ("_sorted", "_recent")

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        self._sorted = array.array("q", np.sort(np.fromiter((hash(key) for key in keys), dtype=np.int64)).tobytes())
        self._recent: set[int] = set()

    def may_hold(self, key: tuple[str, str]) -> bool:
        h = hash(key)
        if h in self._recent:
            return True
        hashes = self._sorted
        i = bisect.bisect_left(hashes, h)
        return i < len(hashes) and hashes[i] == h

    def add(self, key: tuple[str, str]) -> None:
        self._recent.add(hash(key))

    def merge(self) -> None:
        if len(self._recent) >= MERGE_KEY_HASHES:
            # Inserted at their places: one pass over the array, where np.union1d sorted it all again
            # (0.7 s on the trade loop at a million intents). A hash held twice does no harm.
            recent = np.sort(np.fromiter(self._recent, dtype=np.int64, count=len(self._recent)))
            held = np.frombuffer(self._sorted, dtype=np.int64)
            merged = np.insert(held, np.searchsorted(held, recent), recent)
            self._sorted = array.array("q", merged.tobytes())
            self._recent.clear()


class _Transaction:
    """A journal's write transaction: ``BEGIN IMMEDIATE`` on entry; on exit ``COMMIT`` and publish the
    index changes, or ``ROLLBACK`` and drop them when the body (or the commit) raised.

    One reusable object per journal (every write enters it), cheaper than a generator context manager.
    """

    __slots__ = ("_journal",)

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def __enter__(self) -> None:
        journal = self._journal
        try:
            journal._write("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            journal._write_failed(exc)
            raise
        if journal._logged:
            try:
                journal._insert_logged()
            except BaseException as exc:
                journal._write_failed(exc)
                journal._roll_back()
                raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        journal = self._journal
        if exc_type is not None:
            journal._write_failed(exc)
            journal._roll_back()
            return
        try:
            journal._write("COMMIT")
        except BaseException as failure:
            journal._write_failed(failure)
            journal._roll_back()
            raise
        journal.uncheckpointed += 1
        if journal._inserting:
            del journal._logged[: journal._inserting]
            journal._inserting = 0
        if journal._staged:
            journal._publish()


def intent_log_of(journal_path: str | os.PathLike[str]) -> str:
    """The intent log of the journal at ``journal_path``: beside the database file the path leads to,
    so that every name of it through symlinks has the one log, and its lock."""
    return os.path.realpath(journal_path) + INTENT_LOG_SUFFIX


def hard_links_problem(journal_path: str | os.PathLike[str]) -> str | None:
    """Why the journal file at ``journal_path`` is refused for its other names (hard links), or None when
    it has one. Raises ``OSError`` when the file cannot be looked at (not made yet)."""
    links = os.stat(journal_path).st_nlink
    if links <= 1:
        return None
    return (f"its file has {links} names (hard links); remove the others (find -samefile lists them), "
            "or name it through a symlink")


def not_a_database_problem(journal_path: str | os.PathLike[str]) -> str | None:
    """Why the file at ``journal_path`` cannot be a journal: it holds something other than an SQLite
    database (an empty file is a new one); None when it can. Raises ``OSError`` when the file cannot
    be read (not made yet)."""
    with open(journal_path, "rb") as fh:
        head = fh.read(len(SQLITE_HEADER))
    if not head or head == SQLITE_HEADER:
        return None
    return "is not an SQLite database, so not a journal; name the journal's file, or one not made yet"


def intent_log_in_use(journal_path: str | os.PathLike[str]) -> bool:
    """Whether an open journal (in any process) holds the intent log of ``journal_path``.

    Raises JournalError when the log cannot be looked at (its directory is a file, not readable...).
    """
    log_path = intent_log_of(journal_path)
    try:
        fd = os.open(log_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise JournalError(f"journal {os.fspath(journal_path)}: cannot open its intent log {log_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the lock taken, if any
    return False


class JournalError(ArbitrageEngineError):
    """The journal cannot be opened or a record contradicts it (unknown intent, duplicate client id...)."""


class ReusedClientIdError(JournalError):
    """A record refused for its content: its client order id is journaled already on that market."""


class IntentLogDamage(ValueError):
    """A whole line of an intent log that does not read as intents (``line``, from 1): not a torn
    append, but a lost page, e.g. after power loss under ``synchronous=NORMAL``."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line


def read_intent_log(data: bytes) -> tuple[list[tuple[int, list[_LoggedIntent]]], bytes]:
    """The intents an intent log's ``data`` records, as ``(line number, intents rows)`` of each whole
    line, and its torn last record (empty unless the last append was cut short); ``IntentLogDamage``
    at the first whole line that does not read."""
    lines = data.split(b"\n")
    torn = lines.pop()
    read = []
    for number, line in enumerate(lines, 1):
        try:
            rows = _log_line_rows(line)
            for row in rows:
                _check_logged_row(row)
        except (msgspec.DecodeError, ValueError) as exc:
            raise IntentLogDamage(number, str(exc)) from exc
        read.append((number, rows))
    return read, torn


def _log_line_rows(line: bytes) -> list[_LoggedIntent]:
    """The intents rows of one intent log line, of this version or of a version before 7 (no contract size)."""
    try:
        return _decode_log_line(line)
    except msgspec.DecodeError:
        try:
            older = _decode_log_line_v6(line)
        except msgspec.DecodeError:
            pass
        else:
            return [(*row, None) for row in older]
        raise


class UnreadableValue(ValueError):
    """A value stored in the journal that cannot be read back; the message names its column and the value."""


_Converted = TypeVar("_Converted")


def converted_rows(
    path: str,
    table: str,
    key: tuple[int, ...],
    rows: Iterable[tuple[Any, ...]],
    convert: Callable[[tuple[Any, ...]], _Converted],
    error: Callable[[str], Exception],
) -> Iterator[_Converted]:
    """Each of ``table``'s ``rows`` converted; at one with a value that cannot be (``UnreadableValue``),
    ``error`` of a message naming the journal at ``path``, the table, the row (its columns at ``key``)
    and the column is raised: a clear refusal of a row edited by hand or damaged on disk."""
    for row in rows:
        try:
            yield convert(row)
        except UnreadableValue as exc:
            if isinstance(rows, sqlite3.Cursor):
                # Its statement, left mid-read, would keep the tables locked (a checkpoint, closing the
                # journal, fails) for as long as the error raised here is held.
                rows.close()
            raise error(f"journal {path}: {table} row {' '.join(str(row[i]) for i in key)}: {exc}") from None


def stored_decimal(value: Decimal | str, column: str) -> Decimal:
    """The amount stored as ``value`` in ``column``; ``UnreadableValue`` naming both when it is none."""
    try:
        number = Decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        raise UnreadableValue(f"{column} {value!r}: not a decimal number") from None
    # "NaN", "Infinity": Decimal reads them, but they are no amount; nor is 1e400000000, whose arithmetic
    # overflows and whose plain text runs to hundreds of megabytes.
    problem = number_problem(number)
    if problem:
        raise UnreadableValue(f"{column} {value!r}: {problem}")
    return number


def stored_contract_size(value: Decimal | str | None) -> Decimal | None:
    """The contract size an intents row stores as ``value`` (None: none stored); ``UnreadableValue``
    unless it is a positive amount."""
    if value is None:
        return None
    size = stored_decimal(value, "contract_size")
    if size <= ZERO:
        raise UnreadableValue(f"contract_size {value!r}: not positive")
    return size


def base_per_unit(journaled: Decimal | None, instrument: Instrument) -> Decimal:
    """Base units per unit of a journaled quantity of ``instrument``: the contract size journaled
    with its order, or where none was (spot; a futures order journaled before version 7, or a fill
    of no known intent) the instrument's: 1 on spot, the catalog's current contract size on futures."""
    return instrument.contract_size if journaled is None else journaled


def stored_int(value: object, column: str) -> int:
    """The whole number stored as ``value`` in ``column`` (an INTEGER column hands back an int; text put
    there by hand stays text); ``UnreadableValue`` naming both when it is none."""
    if type(value) is not int:
        raise UnreadableValue(f"{column} {value!r}: not a whole number")
    return value


@contextmanager
def sqlite_errors_named(path: str) -> Iterator[None]:
    """Raise SQLite's errors inside as ``JournalError`` naming the journal at ``path``, for a clear
    refusal rather than a bare traceback; a damaged file (a bad page reads as "database disk image is
    malformed") with what to do about it, other errors (a full disk, a lock) as they are."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        advice = ""
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            advice = (": restore it from a backup, or rebuild it with sqlite3's .recover (the orders it "
                      "holds may exist at the venues)")
        raise JournalError(f"journal {path}: {exc}{advice}") from exc


def flags_awaiting_approval(db: sqlite3.Connection, path: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(opportunity id, symbol of its first order, detail)`` of every opportunity flagged for manual
    approval and not acknowledged since in the journal at ``path`` (``db``, read-only or not), oldest
    flag first; ``detail["residual"]`` is a Decimal (0 when the flag recorded none). A flag that
    cannot be read (its residual no amount) refuses the journal, naming its row."""
    flagged: dict[str, tuple[str, dict[str, Any]]] = {}
    rows = db.execute(
        "SELECT r.step_id, r.opportunity_id, r.step, r.detail, (SELECT i.symbol FROM intents i WHERE "
        "i.opportunity_id = r.opportunity_id ORDER BY i.intent_id LIMIT 1) FROM recovery_steps r "
        "WHERE r.step IN ('manual_approval', 'acknowledged') ORDER BY r.step_id"
    )
    for opp, detail, symbol in converted_rows(path, "recovery_steps", (0,), rows, _approval_step, _unreadable):
        flagged.pop(opp, None)
        if detail is not None:  # flagged, not acknowledged
            flagged[opp] = (symbol or "", detail)
    return [(opp, symbol, detail) for opp, (symbol, detail) in flagged.items()]


def _unreadable(problem: str) -> JournalError:
    return JournalError(
        f"{problem}; repair that row or restore the journal from a backup (the venues' histories have its "
        "orders, fills and funding)"
    )


class IntentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An order intent with what the journal knows of its outcome."""

    intent_id: int
    opportunity_id: str
    leg: str
    exchange: ExchangeName
    request: OrderRequest
    created_at_ms: int
    order_id: str | None
    filled_quantity: Decimal  # sum of the recorded fills
    # The contract size journaled with a futures order (base units per contract); None when none was
    # (a spot order, a futures order journaled before version 7): see ``base_per_unit``.
    contract_size: Decimal | None = None

    @property
    def client_order_id(self) -> str:
        """The client order id the order was (or would have been) sent with."""
        return self.request.client_order_id


class HedgeDrop(msgspec.Struct, frozen=True, kw_only=True):
    """A pair's hedges taken out of the hedge book: every hedge execution of the pair up to
    ``after_intent_id`` is gone at the venue (closed by hand, liquidated)."""

    symbol: str
    spot: ExchangeName
    futures: ExchangeName
    after_intent_id: int
    reason: str
    at_ms: int


class FillRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded fill with the opportunity and leg it belongs to (None for a fill of no known intent)."""

    exchange: ExchangeName
    opportunity_id: str | None
    leg: str | None
    fill: Fill
    source: str
    intent_id: int | None = None  # the order the fill belongs to
    recorded_at_ms: int = 0  # when the journal recorded it (wall clock)
    # The contract size journaled with the fill's futures order (base units per contract); None when
    # none was (spot, a fill of no known intent, an order journaled before version 7): ``base_per_unit``.
    contract_size: Decimal | None = None


class OpportunityPnl(msgspec.Struct, frozen=True, kw_only=True):
    """Cash flow of one opportunity's fills, in the quote currency, exactly.

    ``realized_pnl`` = sell notional - buy notional - fees paid in the quote currency; it is
    the realized PnL when ``residual_quantity`` is zero. Fees in other assets are listed apart.
    """

    opportunity_id: str
    bought_quantity: Decimal
    sold_quantity: Decimal
    buy_notional: Decimal
    sell_notional: Decimal
    quote_fees: Decimal
    other_fees: dict[str, Decimal]
    realized_pnl: Decimal
    residual_quantity: Decimal  # bought - sold, base units


class ReconcileSummary(msgspec.Struct, kw_only=True):
    """What reconciling the open intents against the venues found."""

    checked: int = 0
    filled: int = 0
    partially_filled: int = 0  # final with part of the quantity filled
    canceled: int = 0  # final with nothing filled: canceled, expired or rejected
    not_found: int = 0  # the venue never received the order
    still_open: int = 0  # resting or partially filled at the venue: left open for recovery
    errors: int = 0  # the venue could not be asked: left open
    fills_added: int = 0  # gaps between the venue's filled quantity and the recorded fills


OrderResolver = Callable[[IntentRecord], Awaitable[OrderState | None]]
"""``(an open intent) -> its order's state, or None when the venue says it has no such order``; raises
when the venue cannot say (the intent is then left open)."""


class Journal:
    """The SQLite order journal at ``path``; one connection, used from one thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        mode: JournalMode | None = None,
    ) -> None:
        """``mode``: the kind of run opening it, recorded when the journal records none yet and else
        checked (``JournalError`` when another mode wrote it); None (tools): neither."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous={synchronous!r}: expected 'FULL' or 'NORMAL'")
        self.path = os.fspath(path)
        self._now_ms = wall_clock_ms
        self.uncheckpointed = 0  # commits since the last explicit ``checkpoint``
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_wanted = threading.Event()
        self._checkpointer_stop = False
        self.checkpoint_errors = 0
        self._order_windows: dict[ExchangeName, int] | None = None  # as kept, read at the first record
        self.write_failures = 0  # writes the database did not take (``on_write_failure`` hears of each)
        # Called with the reason when a write fails: the engine stops new entries then (its journal
        # breaker), since an order it sent could no longer be accounted after a crash.
        self.on_write_failure: Callable[[str], None] | None = None
        self._open: dict[tuple[str, str], _OpenIntent] = {}
        self._open_ids: dict[int, _OpenIntent] = {}
        self._staged: dict[int, _OpenIntent] = {}  # index entries changed by the running transaction
        self._transaction = _Transaction(self)
        self._sync_log = synchronous == "FULL"
        self._log_fd: int | None = None
        self._log_size = 0  # bytes in the intent log
        self._logged: list[tuple[_LoggedIntent, Decimal]] = []  # in the log, not yet in the database; quantity
        self._inserting = 0  # logged rows the running transaction inserts
        self._next_intent_id = 1
        self._log_damaged = False  # a failed append may have left part of a record: appends stop
        # Client ids of a failed append that may have left its record in the log: a crash would recover
        # them, so no other intent takes them until the log is emptied.
        self._maybe_logged: set[tuple[str, str]] = set()
        self._log_lost: str | None = None  # why no more intents are recorded: the log was moved away
        self._closed = False
        self._log_made = False  # this opening made the intent log (a failed one removes it again)
        in_memory = self.path in ("", ":memory:")
        self.intent_log_path = None if in_memory else intent_log_of(self.path)
        try:
            self._connect(synchronous, mode)
        except BaseException:
            self._release()
            raise

    def _connect(self, synchronous: str, mode: JournalMode | None) -> None:
        if self.intent_log_path is not None:
            # First: a second opener is refused before it touches anything.
            self._log_made = not os.path.exists(self.intent_log_path)
            self._log_fd = self._open_intent_log(self.intent_log_path)
            # A new database is the owner's alone (orders, fills, PnL); SQLite gives its WAL and
            # shared-memory files the database file's permissions. One that exists is left as it is.
            try:
                # By its real path: a symlink to a file not made yet (an empty volume) would read as existing.
                os.close(os.open(os.path.realpath(self.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise JournalError(f"journal {self.path}: cannot create: {exc}") from exc
            self._refuse_hard_links()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            # Writes go through one cursor (none of them reads rows back), sparing a cursor per statement.
            self._write = self._db.cursor().execute
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            self._db.execute("PRAGMA foreign_keys=ON")
            created = self._migrate()
            self._check_writable()
            if mode is not None:
                self._claim_mode(mode, created)  # before anything of another mode's is read or moved
            if self._log_fd is not None and self.intent_log_path is not None:
                self._recover_intent_log(self.intent_log_path, self._log_fd)
                self._recover_log_of_link()
            self._load_index()
            self._next_intent_id = self._last_intent_id() + 1
            self._keys = _KeyHashes(self._db.execute("SELECT exchange, client_order_id FROM intents"))
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: cannot open: {exc}") from exc

    def _check_writable(self) -> None:
        """Raise ``JournalError`` when the database cannot be written: SQLite opens such a file read-only
        and says so only at the first write, which for an engine comes after its first order."""
        self._write("BEGIN IMMEDIATE")
        try:
            self._write(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: not writable: {exc}") from exc
        finally:
            self._write("ROLLBACK")

    def _release(self) -> None:
        """Close what a failed opening had opened."""
        db: sqlite3.Connection | None = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._log_fd is not None:
            if self._log_made and self.intent_log_path is not None and os.fstat(self._log_fd).st_size == 0:
                # Removed while still locked: a journal that cannot be opened leaves no file beside it.
                with suppress(OSError):
                    os.unlink(self.intent_log_path)
            os.close(self._log_fd)
            self._log_fd = None

    def _open_intent_log(self, log_path: str) -> int:
        """Open (or create) the intent log and lock it: one open journal per file, across processes too."""
        created = not os.path.exists(log_path)
        try:
            fd = os.open(log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot open its intent log {log_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise JournalError(
                f"journal {self.path}: its intent log {log_path} is locked by another open journal "
                "(is another engine running with the same journal_path?)"
            ) from exc
        if created and self._sync_log:
            try:  # the new file's directory entry, so that the log itself survives power loss
                directory = os.open(os.path.dirname(os.path.abspath(log_path)), os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            except OSError as exc:
                os.close(fd)
                raise JournalError(f"journal {self.path}: cannot sync the directory of {log_path}: {exc}") from exc
        return fd

    def _refuse_hard_links(self) -> None:
        """Raise ``JournalError`` when the database file has other names (hard links): the lock on its
        intent log, and SQLite's write-ahead log, go by the name, so each name would be a journal apart
        over the one file (two engines trading on it, or its WAL split between them)."""
        try:
            problem = hard_links_problem(self.path)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot look at it: {exc}") from exc
        if problem is not None:
            raise JournalError(f"journal {self.path}: {problem}")

    def _recover_log_of_link(self) -> None:
        """Move into the database, then remove, an intent log kept under the name of a symlink to the
        database (as earlier versions did), which would otherwise never be read again."""
        earlier, log_path = self.path + INTENT_LOG_SUFFIX, self.intent_log_path
        if log_path is None or earlier == log_path or not os.path.isfile(earlier) or os.path.samefile(earlier, log_path):
            return
        fd = self._open_intent_log(earlier)  # refused while a journal opened by that name holds it
        try:
            self._recover_intent_log(earlier, fd)
            os.unlink(earlier)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot remove the intent log {earlier}: {exc}") from exc
        finally:
            os.close(fd)

    def _migrate(self) -> bool:
        """Bring the schema to ``SCHEMA_VERSION``; whether the file was new."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return False
        upgrade = _UPGRADES.get(version)
        if upgrade is None:
            raise JournalError(
                f"journal {self.path}: schema version {version}, this arb reads versions up to {SCHEMA_VERSION}"
            )
        with self._transaction:
            for statement in upgrade.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            if not any(column[1] == "contract_size" for column in self._db.execute("PRAGMA table_info(intents)")):
                self._db.execute(_CONTRACT_SIZE_COLUMN)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if version:
            log.info("journal %s: schema upgraded from version %d to %d", self.path, version, SCHEMA_VERSION)
        return not version

    def _claim_mode(self, mode: JournalMode, created: bool) -> None:
        """Record ``mode`` as the journal's when it has none; raise ``JournalError`` when another wrote it."""
        recorded = self.mode
        if recorded == mode:
            return
        if recorded is not None:
            raise JournalError(
                f"journal {self.path}: written in {recorded} mode, refused for a run in {mode} mode: its hedges, "
                f"day's PnL and open orders are not this run's (give the run in {mode} mode a journal of its own "
                "in engine.journal_path)"
            )
        with self._transaction:
            self._write("INSERT INTO run_mode (only, mode, at_ms) VALUES (1, ?, ?)", (mode, self._now_ms()))
        if not created:
            log.warning("journal %s: no run mode recorded (written before arb recorded it); taken as written in "
                        "%s mode from now on", self.path, mode)

    @property
    def mode(self) -> JournalMode | None:
        """The kind of run that writes this journal; None when none is recorded."""
        row = self._db.execute("SELECT mode FROM run_mode").fetchone()
        if row is None:
            return None
        if row[0] not in _JOURNAL_MODES:
            raise _unreadable(f"journal {self.path}: run_mode.mode {row[0]!r} is none of {', '.join(_JOURNAL_MODES)}")
        mode: JournalMode = row[0]
        return mode

    def _recover_intent_log(self, log_path: str, fd: int) -> None:
        """Move into the database the intents a crash left only in the log, then empty it."""
        try:
            with open(log_path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot read its intent log {log_path}: {exc}") from exc
        try:
            lines, torn = read_intent_log(data)
        except IntentLogDamage as exc:
            # Refused before anything of it is committed and the log emptied: the line stays to repair.
            raise JournalError(
                f"journal {self.path}: intent log {log_path} line {exc.line} is damaged ({exc}); the "
                "orders it recorded may exist: check the venues' recent orders, then repair or remove "
                "the line"
            ) from exc
        if torn:
            # Orders are sent only after their line is written whole: these never went out.
            log.warning(
                "journal %s: intent log %s ends in a torn record (%d bytes), ignored", self.path, log_path, len(torn)
            )
        recovered = 0
        with self._transaction:
            for number, rows in lines:
                for row in rows:
                    found = self._db.execute(
                        "SELECT exchange, client_order_id FROM intents WHERE intent_id = ?", (row[0],)
                    ).fetchone()
                    if found is None:
                        try:
                            self._write(_INSERT_NUMBERED_INTENT, row)
                        except sqlite3.IntegrityError as exc:
                            raise JournalError(
                                f"journal {self.path}: intent log {log_path} line {number}: {row[3]} client order "
                                f"id {row[4]!r} is journaled under another intent"
                            ) from exc
                        recovered += 1
                    elif found != (row[3], row[4]):
                        raise JournalError(
                            f"journal {self.path}: intent log {log_path} line {number}: intent {row[0]} is "
                            f"{found[0]} {found[1]!r} in the database, {row[3]} {row[4]!r} in the log"
                        )
        if recovered:
            log.warning("journal %s: %d intents recovered from the intent log %s", self.path, recovered, log_path)
        try:
            os.ftruncate(fd, 0)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot empty its intent log {log_path}: {exc}") from exc

    def _insert_logged(self) -> None:
        """Insert the logged intents into the database (the running transaction), and index them."""
        write, staged = self._write, self._staged
        for row, quantity in self._logged:
            try:
                write(_INSERT_NUMBERED_INTENT, row)
            except sqlite3.Error as exc:
                raise JournalError(
                    f"journal {self.path}: intent {row[0]} ({row[3]} {row[4]!r}) from the intent log: {exc}"
                ) from exc
            staged[row[0]] = _OpenIntent.inserted(row, quantity)
        self._inserting = len(self._logged)

    def flush_intents(self) -> None:
        """Commit the intents waiting in the log to the database now (no-op when none wait)."""
        if self._logged and not self._db.in_transaction:
            with self._transaction:
                pass

    def _tidy_intent_log(self) -> None:
        """At a checkpoint: the logged intents into the database, the log emptied (or opened again
        when it was moved away), recent key hashes sorted."""
        self.flush_intents()
        self._empty_intent_log()
        self._reopen_moved_log()
        self._keys.merge()

    def _reopen_moved_log(self) -> None:
        """Open the intent log again when its file was deleted while the journal is open.

        The lock went with the old file, so a second journal could open the path unnoticed. Once
        the database holds everything logged, a log that is gone is created and locked again at
        its path. When another file is there (another journal made it, and may have logged orders
        in it), or the database holds intents this journal did not write, no more intents are
        recorded: two engines on one journal must not trade.
        """
        fd, path = self._log_fd, self.intent_log_path
        if fd is None or path is None or self._logged:
            return
        try:
            held = os.fstat(fd)
            on_disk = os.stat(path)
        except FileNotFoundError:
            on_disk = None
        except OSError as exc:
            log.warning("journal %s: cannot check its intent log %s: %s", self.path, path, exc)
            return
        if on_disk is not None and (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino):
            return
        os.close(fd)
        self._log_fd = None
        self._log_size = 0
        self._log_damaged = False
        self._maybe_logged.clear()
        if on_disk is not None:
            self._log_lost = (
                f"journal {self.path}: its intent log {path} was replaced while open, so another journal has "
                "opened this one and may have logged orders there; stop every engine on this journal, then "
                "start one, which recovers them"
            )
        else:
            log.error("journal %s: its intent log %s was deleted while open; creating it again", self.path, path)
            try:
                self._log_fd = self._open_intent_log(path)
            except JournalError as exc:
                self._log_lost = str(exc)
            else:
                last = self._last_intent_id()
                if last >= self._next_intent_id:
                    self._log_lost = (
                        f"journal {self.path}: intents up to {last} are in the database but this journal "
                        f"numbered only up to {self._next_intent_id - 1}: another journal has written to it"
                    )
        if self._log_lost is not None:
            log.error("%s; no more intents are recorded", self._log_lost)
            # No order can be recorded, so none may go out: what a write the database refused trips.
            self._report_write_failure(self._log_lost)

    def _empty_intent_log(self) -> None:
        """Truncate the intent log once the database holds everything in it."""
        if self._log_fd is not None and (self._log_size or self._log_damaged) and not self._logged:
            try:
                os.ftruncate(self._log_fd, 0)
            except OSError as exc:  # what it holds is all in the database: reopening skips it
                log.warning("journal %s: cannot empty the intent log: %s", self.path, exc)
                return
            self._log_size = 0
            self._log_damaged = False
            self._maybe_logged.clear()

    def _last_intent_id(self) -> int:
        """The highest intent id in the database (0 when it holds none)."""
        (last,) = self._db.execute("SELECT max(intent_id) FROM intents").fetchone()
        return int(last or 0)

    def _load_index(self) -> None:
        for intent in self.open_intents():
            entry = self._stored(intent.intent_id)
            self._open[entry.key] = entry
            self._open_ids[entry.intent_id] = entry

    def _write_failed(self, exc: BaseException | None) -> None:
        """A write the database or the intent log did not take (an I/O or SQLite error, also one this
        class wrapped in a ``JournalError``; not a refusal of a record's content): counted, and passed
        to ``on_write_failure``."""
        if isinstance(exc, ReusedClientIdError):  # a refusal of the record's content: the journal works
            return
        cause = exc.__cause__ if isinstance(exc, JournalError) else exc
        if not isinstance(cause, (sqlite3.Error, OSError)):
            return
        self._report_write_failure(f"journal {self.path}: {exc}")

    def _report_write_failure(self, message: str) -> None:
        """Count a write the journal could not make and pass ``message`` to ``on_write_failure``."""
        self.write_failures += 1
        if self.on_write_failure is not None:
            try:
                self.on_write_failure(message)
            except Exception:
                log.exception("journal %s: write failure handler raised", self.path)

    def _roll_back(self) -> None:
        self._staged.clear()
        self._inserting = 0
        if self._db.in_transaction:  # a failed COMMIT may have rolled back already
            self._write("ROLLBACK")

    def _publish(self) -> None:
        """Move the committed transaction's index changes into the index."""
        for intent_id, entry in self._staged.items():
            if entry.closed:
                self._open.pop(entry.key, None)
                self._open_ids.pop(intent_id, None)
            else:
                self._open[entry.key] = entry
                self._open_ids[intent_id] = entry
        self._staged.clear()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file now, on this thread (PASSIVE: it never waits for a reader).

        The engine uses ``start_checkpoint`` instead, which does the same off the event loop.
        """
        self._tidy_intent_log()
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.uncheckpointed = 0

    def start_checkpoint(self) -> None:
        """Start a PASSIVE checkpoint on the journal's checkpoint thread and return at once.

        The thread has its own connection; SQLite lets it copy the WAL while this connection
        keeps committing. A request made while one runs is served when it ends. Intents waiting in
        the intent log are committed first; when the database refuses them, that is counted in
        ``checkpoint_errors`` and logged, not raised.
        """
        if self.path in ("", ":memory:"):  # no file, and another connection would open another database
            self.checkpoint()
            return
        try:
            self._tidy_intent_log()
        except (JournalError, sqlite3.Error, OSError) as exc:  # JournalError: a logged intent's row refused
            # The transaction reported it (``on_write_failure``); the intents stay in the log, kept
            # across a crash, and go with the next commit. Raised here, it would end the caller's loop.
            self.checkpoint_errors += 1
            log.error("journal %s: the intent log could not be moved into the database: %s", self.path, exc)
        self.uncheckpointed = 0
        if self._checkpointer is None:
            thread = threading.Thread(target=self._checkpoint_loop, name="arb journal checkpoint", daemon=True)
            self._checkpointer = thread
            thread.start()
        self._checkpoint_wanted.set()

    def _checkpoint_loop(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            while True:
                self._checkpoint_wanted.wait()
                self._checkpoint_wanted.clear()
                if self._checkpointer_stop:
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    # The next checkpoint (or SQLite's automatic one) copies what this one could not.
                    self.checkpoint_errors += 1
                    log.exception("journal %s: background checkpoint failed", self.path)
        finally:
            db.close()

    def damage_named(self) -> AbstractContextManager[None]:
        """``sqlite_errors_named`` of this journal."""
        return sqlite_errors_named(self.path)

    def close(self) -> None:
        """Stop the checkpoint thread, checkpoint the WAL into the database file and close (once).

        The files are closed (and the log's lock released) even when the last writes fail:
        intents still only in the log are recovered when the journal is opened again. A checkpoint
        that fails (a full disk) is logged, not raised: what was committed is in the WAL, which the
        next opening reads.
        """
        if self._closed:
            return
        thread = self._checkpointer
        if thread is not None:
            self._checkpointer_stop = True
            self._checkpoint_wanted.set()
            thread.join()
            self._checkpointer = None
        try:
            self.flush_intents()
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                self.checkpoint_errors += 1
                log.warning("journal %s: the WAL was not checkpointed on closing (kept for the next opening): %s",
                            self.path, exc)
        finally:
            self._closed = True
            self._db.close()
            if self._log_fd is not None:
                self._empty_intent_log()
                os.close(self._log_fd)
                self._log_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------

    def record_intent(
        self, opportunity_id: str, leg: str, request: OrderRequest, exchange: ExchangeName,
        contract_size: Decimal | None = None,
    ) -> int:
        """Record an order about to be sent; returns its intent id. Call before sending. ``contract_size``:
        base units per contract, required on a futures market (see ``IntentOrder``)."""
        order: IntentOrder = (leg, exchange, request) if contract_size is None else (leg, exchange, request, contract_size)
        (intent_id,) = self.record_intents(opportunity_id, [order])
        return intent_id

    def record_intents(
        self,
        opportunity_id: str,
        orders: Sequence[IntentOrder],
        *,
        deferred: bool = False,
    ) -> list[int]:
        """Record orders about to be sent (``IntentOrder`` each) in one transaction; their intent ids.

        One commit (one WAL sync under ``synchronous=FULL``) makes every intent durable
        together; a refused intent (a reused client id) records none of them. ``deferred``
        writes them to the intent log instead, as durable, and to the database later (see
        the module doc); on a journal in memory it commits them at once.
        """
        if self._log_lost is not None:
            raise JournalError(self._log_lost)
        if deferred and self._log_fd is not None and not self._log_damaged:
            return self._log_intents(self._log_fd, opportunity_id, orders)
        rows = self._numbered_rows(opportunity_id, orders)
        if self._maybe_logged:
            for row in rows:
                if (row[3], row[4]) in self._maybe_logged:
                    raise self._reused((row[3], row[4]), "may be in the intent log (its append failed)")
        write, staged = self._write, self._staged
        with self._transaction:
            for row, order in zip(rows, orders):
                try:
                    write(_INSERT_NUMBERED_INTENT, row)
                except sqlite3.IntegrityError as exc:
                    if "intent_id" in str(exc):  # only another connection writing intents takes our ids
                        self._next_intent_id = self._last_intent_id() + 1
                        raise JournalError(
                            f"journal {self.path}: intent id {row[0]} was taken by another writer; the journal "
                            "must have one"
                        ) from exc
                    raise self._reused((row[3], row[4])) from exc
                staged[row[0]] = _OpenIntent.inserted(row, order[2].quantity)
                self._keys.add((row[3], row[4]))
        self._next_intent_id += len(rows)
        return [row[0] for row in rows]

    def rehearse_intents(self, opportunity_id: str, orders: Sequence[IntentOrder]) -> None:
        """Encode the record ``record_intents`` would log for ``orders`` and drop it: nothing is written,
        numbered or checked. Keeps the encoding warm in the CPU's caches (``TwoLegExecutor.rehearse``)."""
        _encode_request(self._numbered_rows(opportunity_id, orders))

    def _numbered_rows(self, opportunity_id: str, orders: Sequence[IntentOrder]) -> list[_LoggedIntent]:
        """The intents rows of ``orders``, numbered from the next intent id; ValueError for a futures
        order without its contract size.

        Numbered here rather than by SQLite on both paths: an id a failed append may have left
        in the log is never given to another intent. Enum values are read as ``_value_`` on the
        order path: a plain attribute, cheaper than ``value``.
        """
        now_ms, first = self._now_ms(), self._next_intent_id
        rows: list[_LoggedIntent] = []
        for n, order in enumerate(orders):
            leg, exchange, request = order[0], order[1], order[2]
            if len(order) == 4:
                contract_size: str | None = str(order[3])
            elif exchange.is_futures:
                raise ValueError(
                    f"journal {self.path}: {exchange._value_} order {request.client_order_id!r} ({leg}): a futures "
                    "intent needs the contract size its quantity is counted in"
                )
            else:
                contract_size = None
            rows.append((
                first + n, opportunity_id, leg, exchange._value_, request.client_order_id, request.symbol,
                _encode_request(request).decode(), now_ms, contract_size,
            ))
        return rows

    def _reused(self, key: tuple[str, str], how: str = "is already journaled") -> ReusedClientIdError:
        return ReusedClientIdError(
            f"journal {self.path}: {key[0]} client order id {key[1]!r} {how}; client ids must be unique per market"
        )

    def _log_intents(self, fd: int, opportunity_id: str, orders: Sequence[IntentOrder]) -> list[int]:
        """``record_intents`` through the intent log: one append, the database after."""
        if len(self._logged) >= MAX_LOGGED_INTENTS:
            raise JournalError(
                f"journal {self.path}: {len(self._logged)} intents in the intent log are still not in the "
                "database; no more orders until it takes them"
            )
        waiting = {(row[3], row[4]) for row, _ in self._logged}  # normally none: flushed once orders are out
        keys: set[tuple[str, str]] = set()
        for order in orders:
            key = (order[1]._value_, order[2].client_order_id)
            if (
                key in keys
                or key in waiting
                or (self._keys.may_hold(key) and self._db.execute(_INTENT_KEY_EXISTS, key).fetchone())
            ):
                raise self._reused(key)
            keys.add(key)
        rows = self._numbered_rows(opportunity_id, orders)
        line = _encode_request(rows) + b"\n"
        # Advanced even if the append fails: a record that may remain in the log keeps its ids.
        self._next_intent_id += len(rows)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"wrote {written} of {len(line)} bytes")
            if self._sync_log:
                os.fdatasync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, self._log_size)  # no torn record ahead of the next one
            except OSError:
                self._log_damaged = True  # intents are committed to the database until the log is emptied
                self._maybe_logged |= keys
            self._write_failed(exc)
            raise JournalError(f"journal {self.path}: cannot write the intent log: {exc}") from exc
        self._log_size += len(line)
        self._logged.extend((row, order[2].quantity) for row, order in zip(rows, orders))
        for key in keys:
            self._keys.add(key)
        return [row[0] for row in rows]

    def record_ack(self, exchange: ExchangeName, client_order_id: str, state: OrderState) -> None:
        """Record the venue's answer to placing the order."""
        self._record_state("ack", exchange, client_order_id, state)

    def record_order_update(self, exchange: ExchangeName, client_order_id: str, state: OrderState) -> None:
        """Record an order update from the private stream or a query."""
        self._record_state("update", exchange, client_order_id, state)

    def record_cancel(self, exchange: ExchangeName, client_order_id: str, state: OrderState) -> None:
        """Record the venue's answer to canceling the order."""
        self._record_state("cancel", exchange, client_order_id, state)

    def record_result(
        self,
        exchange: ExchangeName,
        client_order_id: str,
        state: OrderState,
        fills: Sequence[Fill] = (),
        *,
        kind: Literal["ack", "update", "cancel"] = "ack",
    ) -> None:
        """Record the venue's answer to the order (as ``record_ack``, ``record_order_update`` or
        ``record_cancel`` by ``kind``) and the order's fills, in one transaction.

        The rows are those of the separate calls, in the same order (the fills as
        ``record_fill(exchange, fill, client_order_id=client_order_id)`` each); only the
        commits are fewer. Crash safety: the answer and its fills commit together or not at
        all, so after a crash the file holds either both, or neither (the intent then stays
        open without that answer, as after a crash before ``record_ack`` today, and
        ``reconcile`` asks the venue). The state the separate calls also allow, the answer
        without its fills, can no longer occur. An unknown intent raises ``JournalError``
        and writes nothing.
        """
        with self._transaction:
            intent_id = self._append_state(kind, exchange, client_order_id, state)
            for fill in fills:
                if self._insert_fill(intent_id, exchange, fill, "venue"):
                    self._close_if_complete(intent_id)

    def record_reject(self, exchange: ExchangeName, client_order_id: str, reason: str) -> None:
        """Record that the venue refused the order (nothing filled): closes the intent."""
        with self._transaction:
            intent_id = self._intent_id(exchange, client_order_id)
            self._append(intent_id, "reject", _REJECTED, None, ZERO, True, _encode({"reason": reason}))

    def record_unknown(self, exchange: ExchangeName, client_order_id: str, reason: str) -> None:
        """Record that sending failed with an unknown outcome; the intent stays open for reconciliation."""
        with self._transaction:
            intent_id = self._intent_id(exchange, client_order_id)
            self._append(intent_id, "unknown", None, None, None, False, _encode({"reason": reason}))

    def record_fill(self, exchange: ExchangeName, fill: Fill, *, client_order_id: str | None = None) -> bool:
        """Record a fill once: False when this venue trade id is already journaled.

        The intent is found by client order id (``fill.client_order_id`` or the argument)
        or by the venue order id of an earlier ack. A fill of no known intent is still kept.
        """
        with self._transaction:
            intent_id = self._find_intent(exchange, client_order_id or fill.client_order_id, fill.order_id)
            added = self._insert_fill(intent_id, exchange, fill, "venue")
            if added and intent_id is not None:
                self._close_if_complete(intent_id)
        if added and intent_id is None:
            log.warning(
                "journal: fill %s on %s %s (order %s) matches no journaled intent",
                fill.trade_id, exchange.value, fill.symbol, fill.order_id,
            )
        return added

    def record_recovery_step(self, opportunity_id: str, step: str, detail: Mapping[str, Any] | None = None) -> int:
        """Record one recovery action (hedge, unwind, give up...) of an opportunity; returns its id.

        An ``acknowledged`` step (an operator dealt with the opportunity) also closes its intents
        still open, whose outcome no venue could tell: a restart does not ask about them again.
        """
        with self._transaction:
            step_id = self._write(
                "INSERT INTO recovery_steps (opportunity_id, step, detail, at_ms) VALUES (?, ?, ?, ?)",
                (opportunity_id, step, _encode(detail or {}), self._now_ms()),
            ).lastrowid
            if step == "acknowledged":
                rows = self._db.execute(_OPEN_INTENTS_OF, (opportunity_id,)).fetchall()
                for (intent_id,) in rows:
                    self._append(intent_id, "acknowledged", None, None, None, True, _encode({"step": step_id}))
        return step_id or 0

    def record_kill_switch(self, engaged: bool, reason: str) -> None:
        """Record that the operator engaged (or released) the kill switch, so that a restart keeps it."""
        with self._transaction:
            self._write(
                "INSERT INTO kill_switch (engaged, reason, at_ms) VALUES (?, ?, ?)", (int(engaged), reason, self._now_ms())
            )

    def kill_switch(self) -> tuple[str, int] | None:
        """``(reason, wall ms)`` of the kill switch's engagement when its last recorded change engaged
        it; None when it was released, or never engaged."""
        rows = self._db.execute(
            "SELECT change_id, engaged, reason, at_ms FROM kill_switch ORDER BY change_id DESC LIMIT 1"
        )
        return next(self._rows("kill_switch", (0,), rows, _kill_switch_change), None)

    def record_order_windows(self, windows: Mapping[ExchangeName, int]) -> None:
        """Keep, per market, the longest ``window_ms`` given: how long after its intent an order
        sent now may still be taken by the venue (its deadline, the clock's error, resends). A
        market whose longest is not exceeded is not written."""
        if self._order_windows is None:
            self._order_windows = self.order_windows()
        grown = {m: ms for m, ms in windows.items() if ms > self._order_windows.get(m, -1)}
        if not grown:
            return
        now = self._now_ms()
        with self._transaction:
            for market, window_ms in grown.items():
                self._write(
                    "INSERT INTO order_windows (exchange, window_ms, at_ms) VALUES (?, ?, ?) ON CONFLICT (exchange) "
                    "DO UPDATE SET window_ms = excluded.window_ms, at_ms = excluded.at_ms "
                    "WHERE excluded.window_ms > order_windows.window_ms",
                    (market.value, window_ms, now),
                )
        self._order_windows.update(grown)  # each larger than what was kept: what the rows now hold

    def order_windows(self) -> dict[ExchangeName, int]:
        """The longest ``record_order_windows`` kept per market, in ms (markets never recorded are absent)."""
        rows = self._db.execute("SELECT exchange, window_ms FROM order_windows")
        return {
            _market(exchange): window_ms
            for exchange, window_ms in self._rows("order_windows", (0,), rows, _order_window)
            if exchange in _MARKET_VALUES
        }

    def record_hedge_drop(self, symbol: str, spot: ExchangeName, futures: ExchangeName, reason: str) -> HedgeDrop:
        """Record that the hedges of pair ``symbol`` between ``spot`` and ``futures`` left the hedge
        book: every hedge execution journaled so far is gone at the venue."""
        self.flush_intents()
        with self._transaction:
            (after,) = self._db.execute("SELECT COALESCE(MAX(intent_id), 0) FROM intents").fetchone()
            drop = HedgeDrop(symbol=symbol, spot=spot, futures=futures, after_intent_id=after, reason=reason,
                             at_ms=self._now_ms())
            self._write(
                "INSERT INTO hedge_drops (symbol, spot, futures, after_intent_id, reason, at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (symbol, spot.value, futures.value, after, reason, drop.at_ms),
            )
        return drop

    def record_funding(self, exchange: ExchangeName, payments: Iterable[FundingPayment]) -> list[FundingPayment]:
        """Record funding ``exchange`` settled, in one transaction; the payments not recorded before
        (a payment, named by its id, is recorded once however often it is read)."""
        now_ms, added = self._now_ms(), []
        with self._transaction:
            for payment in payments:
                cursor = self._write(
                    "INSERT OR IGNORE INTO funding_payments "
                    "(exchange, payment_id, symbol, amount, settled_at_ms, recorded_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (exchange.value, payment.payment_id, payment.symbol, str(payment.amount), payment.time_ms, now_ms),
                )
                if cursor.rowcount:
                    added.append(payment)
        return added

    # -- reads --------------------------------------------------------------------------

    def funding_payments(self, since_ms: int = 0) -> list[tuple[ExchangeName, FundingPayment]]:
        """Recorded funding settled at or after ``since_ms``, by settlement time: (market, payment) each."""
        rows = self._db.execute(
            "SELECT exchange, payment_id, symbol, amount, settled_at_ms FROM funding_payments "
            "WHERE settled_at_ms >= ? ORDER BY settled_at_ms, exchange, payment_id",
            (since_ms,),
        )
        return list(self._rows("funding_payments", (0, 1), rows, _funding_payment))

    def last_funding_ms(self) -> int | None:
        """When the latest recorded funding payment was settled (ms), or None when none is recorded."""
        rows = self._db.execute(
            "SELECT exchange, payment_id, settled_at_ms FROM funding_payments ORDER BY settled_at_ms DESC LIMIT 1"
        )
        return next(self._rows("funding_payments", (0, 1), rows, _settled_at_ms), None)

    def open_intents(self) -> list[IntentRecord]:
        """Intents without a closing outcome, oldest first."""
        self.flush_intents()
        rows = self._db.execute(_OPEN_INTENTS).fetchall()
        return [self._intent(row) for row in rows]

    def knows(self, exchange: ExchangeName, client_order_id: str) -> bool:
        """Whether an intent was recorded for ``client_order_id`` on ``exchange``: the order is the engine's.
        Reads only: an intent still in the intent log, not yet in the database, is found there."""
        key = (exchange.value, client_order_id)
        if key in self._open or any((row[3], row[4]) == key for row, _ in self._logged):
            return True
        row = self._db.execute(
            "SELECT 1 FROM intents WHERE exchange = ? AND client_order_id = ? LIMIT 1", (exchange.value, client_order_id)
        ).fetchone()
        return row is not None

    def intent(self, exchange: ExchangeName, client_order_id: str) -> IntentRecord:
        """One intent by market and client order id."""
        self.flush_intents()
        row = self._db.execute(
            "SELECT intent_id, opportunity_id, leg, exchange, request, created_at_ms, contract_size FROM intents "
            "WHERE exchange = ? AND client_order_id = ?",
            (exchange.value, client_order_id),
        ).fetchone()
        if row is None:
            raise JournalError(
                f"journal {self.path}: no intent for {exchange.value} client order id {client_order_id!r}"
            )
        return self._intent(row)

    def order_legs(self) -> list[tuple[int, str, str, ExchangeName, str]]:
        """(intent id, opportunity id, leg, market, symbol) of every intent, oldest first."""
        self.flush_intents()
        rows = self._db.execute(
            "SELECT intent_id, opportunity_id, leg, exchange, symbol FROM intents ORDER BY intent_id"
        )
        return list(self._rows("intents", (0,), rows, _order_leg))

    def hedge_drops(self) -> list[HedgeDrop]:
        """Every recorded hedge drop, oldest first."""
        rows = self._db.execute(
            "SELECT drop_id, symbol, spot, futures, after_intent_id, reason, at_ms FROM hedge_drops ORDER BY drop_id"
        )
        return list(self._rows("hedge_drops", (0,), rows, _hedge_drop))

    def interrupted_opportunities(self) -> set[str]:
        """The opportunities a stop may have cut short: those with an open intent, the newest one, and
        any whose recovery started and neither recovered nor was flagged (executions run beside the
        trade loop, ``ArbitrageEngine.execute_opportunity``, can leave an older one mid-recovery)."""
        interrupted = {intent.opportunity_id for intent in self.open_intents()}
        last = self.last_opportunity_id()
        if last is not None:
            interrupted.add(last)
        rows = self._db.execute(
            "SELECT DISTINCT s.opportunity_id FROM recovery_steps s WHERE s.step = 'start' AND NOT EXISTS ("
            "SELECT 1 FROM recovery_steps t WHERE t.opportunity_id = s.opportunity_id AND t.step_id > s.step_id "
            "AND t.step IN ('recovered', 'manual_approval'))"
        )
        interrupted.update(str(opp) for (opp,) in rows)
        return interrupted

    def last_opportunity_id(self) -> str | None:
        """The opportunity of the newest intent (the one in flight if the engine stopped abruptly)."""
        self.flush_intents()
        row = self._db.execute("SELECT opportunity_id FROM intents ORDER BY intent_id DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def is_open(self, intent_id: int) -> bool:
        """Whether the intent has no closing outcome yet."""
        self.flush_intents()
        row = self._db.execute(
            "SELECT 1 FROM order_events WHERE intent_id = ? AND closes = 1 LIMIT 1", (intent_id,)
        ).fetchone()
        return row is None

    def fills(self, opportunity_id: str | None = None) -> list[FillRecord]:
        """Recorded fills in journal order, of one opportunity or all."""
        return list(self.iter_fills(opportunity_id))

    def iter_fills(
        self, opportunity_id: str | None = None, *, touching: Collection[ExchangeName] | None = None
    ) -> Iterator[FillRecord]:
        """``fills``, each read from the database as it is taken: a replay of the whole journal holds
        one at a time, not a list of millions. ``touching``: only the fills of opportunities with
        an order on one of those markets (selected by the database, the others never decoded).
        No write may run on the journal until it ends."""
        self.flush_intents()
        sql = (
            "SELECT f.exchange, i.opportunity_id, i.leg, f.symbol, f.order_id, f.client_order_id, f.trade_id, "
            "f.side, f.price, f.quantity, f.fee, f.fee_asset, f.is_maker, f.timestamp_ms, f.source, "
            "f.intent_id, f.recorded_at_ms, f.fill_id, i.contract_size FROM fills f "
            "LEFT JOIN intents i ON i.intent_id = f.intent_id"
        )
        args: tuple[str, ...] = ()
        if opportunity_id is not None:
            sql += " WHERE i.opportunity_id = ?"
            args = (opportunity_id,)
        elif touching is not None:
            markets = sorted(m.value for m in touching)
            sql += (" WHERE i.opportunity_id IN (SELECT opportunity_id FROM intents WHERE exchange IN "
                    f"({', '.join('?' * len(markets))}))")
            args = tuple(markets)
        return self._rows("fills", (17,), self._db.execute(sql + " ORDER BY f.fill_id", args), _fill_record)

    def opportunity_pnl(
        self, opportunity_id: str, *, quote_asset: str = "USDT",
        catalogs: Mapping[ExchangeName, InstrumentCatalog] | None = None,
    ) -> OpportunityPnl:
        """Cash flow of one opportunity's fills, quantities in base units (see ``OpportunityPnl``).

        Futures fills are in contracts, at the contract size journaled with their orders; ``catalogs``
        give it where none was (``base_per_unit``), and without them such a fill raises JournalError.
        """
        bought = sold = buy_notional = sell_notional = quote_fees = ZERO
        other: dict[str, Decimal] = {}
        for record in self.fills(opportunity_id):
            fill = record.fill
            base = fill.quantity
            if record.exchange.is_futures:
                if record.contract_size is not None:
                    base = fill.quantity * record.contract_size
                elif catalogs is None or record.exchange not in catalogs:
                    raise JournalError(
                        f"journal {self.path}: opportunity {opportunity_id} has a {record.exchange.value} fill in "
                        "contracts journaled without their contract size: pass the catalogs that give it"
                    )
                else:
                    base = fill.quantity * catalogs[record.exchange].get(fill.symbol).contract_size
            notional = fill.price * base
            if fill.side is OrderSide.BUY:
                bought += base
                buy_notional += notional
            else:
                sold += base
                sell_notional += notional
            if fill.fee_asset == quote_asset:
                quote_fees += fill.fee
            elif fill.fee:
                other[fill.fee_asset] = other.get(fill.fee_asset, ZERO) + fill.fee
        return OpportunityPnl(
            opportunity_id=opportunity_id,
            bought_quantity=bought,
            sold_quantity=sold,
            buy_notional=buy_notional,
            sell_notional=sell_notional,
            quote_fees=quote_fees,
            other_fees=other,
            realized_pnl=sell_notional - buy_notional - quote_fees,
            residual_quantity=bought - sold,
        )

    def awaiting_approval(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``flags_awaiting_approval`` of this journal."""
        return flags_awaiting_approval(self._db, self.path)

    def acknowledged(self) -> set[str]:
        """Opportunities whose flag an operator acknowledged (``approvals --acknowledge``) and that were
        not flagged again since: their residual was dealt with outside the engine."""
        last: dict[str, str] = {}
        for opp, step in self._db.execute(
            "SELECT opportunity_id, step FROM recovery_steps WHERE step IN ('manual_approval', 'acknowledged') "
            "ORDER BY step_id"
        ):
            last[opp] = step
        return {opp for opp, step in last.items() if step == "acknowledged"}

    def recovery_steps(self, opportunity_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The recovery steps of one opportunity as (step, detail), in order."""
        rows = self._db.execute(
            "SELECT step_id, step, detail FROM recovery_steps WHERE opportunity_id = ? ORDER BY step_id",
            (opportunity_id,),
        )
        return list(self._rows("recovery_steps", (0,), rows, _recovery_step))

    # -- reconciliation -----------------------------------------------------------------

    async def reconcile(
        self, resolve: OrderResolver,
        reconciled: Callable[[str, list[tuple[IntentRecord, str | None]]], None] | None = None,
    ) -> ReconcileSummary:
        """Ask the venues about every open intent, record what they say, log a summary.

        An opportunity at a time: ``reconciled`` gets each opportunity's id and its intents left
        open, each with the query's error where the venue did not say (None: open at the venue), as
        soon as all of its intents were asked about, before the next opportunity's are. A stop in
        between leaves no opportunity reconciled (its intents closed, so no longer found open by the
        next start) and not handed on.
        Safe to run again: a venue total already matched by recorded fills adds nothing.
        """
        summary = ReconcileSummary()
        by_opportunity: dict[str, list[IntentRecord]] = {}
        for intent in self.open_intents():
            by_opportunity.setdefault(intent.opportunity_id, []).append(intent)
        for opportunity_id, intents in by_opportunity.items():
            left_open: list[tuple[IntentRecord, str | None]] = []
            for intent in intents:
                summary.checked += 1
                try:
                    state = await resolve(intent)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    summary.errors += 1
                    log.warning(
                        "journal reconcile: %s %s %s: venue query failed, left open: %s",
                        intent.exchange.value, intent.request.symbol, intent.client_order_id, exc,
                    )
                    with self._transaction:
                        self._append(
                            intent.intent_id, "reconcile_error", None, None, None, False, _encode({"error": str(exc)})
                        )
                    left_open.append((intent, str(exc)))
                    continue
                if not self._apply_reconciled(intent, state, summary):
                    left_open.append((intent, None))
            if reconciled is not None:
                reconciled(opportunity_id, left_open)
        log.info(
            "journal reconcile: %d open intents: %d filled, %d partially filled, %d canceled, %d not found, "
            "%d still open, %d errors; %d fills added",
            summary.checked, summary.filled, summary.partially_filled, summary.canceled, summary.not_found,
            summary.still_open, summary.errors, summary.fills_added,
        )
        return summary

    def _apply_reconciled(self, intent: IntentRecord, state: OrderState | None, summary: ReconcileSummary) -> bool:
        """Record the venue's answer about ``intent``; whether it closed the intent."""
        with self._transaction:
            if state is None:
                self._append(intent.intent_id, "not_found", None, None, ZERO, True, _NO_DETAIL)
                summary.not_found += 1
                return True
            gap = state.filled_quantity - intent.filled_quantity
            if gap > ZERO:
                self._insert_fill(intent.intent_id, intent.exchange, self._gap_fill(intent, state, gap), "reconcile")
                summary.fills_added += 1
            self._append(
                intent.intent_id, "reconciled", state.status.value, state.order_id, state.filled_quantity, False,
                _state_detail(state),
            )
            closed = self._close_if_complete(intent.intent_id)
        if not closed:
            summary.still_open += 1
        elif state.filled_quantity >= state.quantity:
            summary.filled += 1
        elif state.filled_quantity > ZERO:
            summary.partially_filled += 1
        else:
            summary.canceled += 1
        return closed

    # -- internals ----------------------------------------------------------------------

    def _record_state(self, kind: str, exchange: ExchangeName, client_order_id: str, state: OrderState) -> None:
        with self._transaction:
            self._append_state(kind, exchange, client_order_id, state)

    def _append_state(self, kind: str, exchange: ExchangeName, client_order_id: str, state: OrderState) -> int:
        intent_id = self._intent_id(exchange, client_order_id)
        self._append(
            intent_id, kind, state.status.value, state.order_id, state.filled_quantity, False, _state_detail(state)
        )
        self._close_if_complete(intent_id)
        return intent_id

    def _append(
        self,
        intent_id: int,
        kind: str,
        status: str | None,
        order_id: str | None,
        filled_quantity: Decimal | None,
        closes: bool,
        detail: str,
    ) -> None:
        """Append one event; ``detail`` is its JSON text (``_encode``)."""
        self._write(
            _INSERT_EVENT,
            (
                intent_id,
                kind,
                status,
                order_id,
                None if filled_quantity is None else str(filled_quantity),
                1 if closes else 0,
                detail,
                self._now_ms(),
            ),
        )
        entry = self._working(intent_id)
        if entry is not None:
            if status in _FINAL_STATUS_SET and filled_quantity is not None:
                entry.final = (status, filled_quantity)
            if closes:
                entry.closed = True

    def _working(self, intent_id: int) -> _OpenIntent | None:
        """The running transaction's copy of the intent's index entry; None when the index does not hold it."""
        entry = self._staged.get(intent_id)
        if entry is None:
            committed = self._open_ids.get(intent_id)
            if committed is None:
                return None
            entry = self._staged[intent_id] = committed.copy()
        return entry

    def _close_if_complete(self, intent_id: int) -> bool:
        """Close the intent when the venue's final status is known and its fills are all recorded."""
        entry = self._working(intent_id) or self._stored(intent_id)
        if entry.closed:
            return True
        recorded = entry.filled
        status = _FILLED
        if recorded < entry.quantity:
            if entry.final is None or entry.final[1] > recorded:
                return False
            status = entry.final[0]
        self._append(intent_id, "closed", status, None, recorded, True, _NO_DETAIL)
        return True

    def _stored(self, intent_id: int) -> _OpenIntent:
        """What the index would hold for an intent it does not hold, read from the rows."""
        db = self._db
        exchange, client_order_id, request_json = db.execute(
            "SELECT exchange, client_order_id, request FROM intents WHERE intent_id = ?", (intent_id,)
        ).fetchone()
        key = (exchange, client_order_id)
        if db.execute("SELECT 1 FROM order_events WHERE intent_id = ? AND closes = 1", (intent_id,)).fetchone():
            return _OpenIntent(intent_id, key, ZERO, ZERO, None, closed=True)
        quantity = msgspec.json.decode(request_json, type=OrderRequest).quantity
        return _OpenIntent(intent_id, key, quantity, self._filled(intent_id), self._last_final(intent_id))

    def _last_final(self, intent_id: int) -> tuple[str, Decimal] | None:
        """(status, venue filled quantity) of the intent's newest event with a final status."""
        rows = self._db.execute(_LAST_FINAL, (intent_id, *_FINAL_STATUSES))
        return next(self._rows("order_events", (0,), rows, _final), None)

    def _gap_fill(self, intent: IntentRecord, state: OrderState, gap: Decimal) -> Fill:
        """A fill for the part the venue reports filled but no recorded fill covers.

        Its trade id carries the venue's cumulative total, so reconciling the same state
        twice adds it once. It is priced so that the intent's fills average to the venue's
        average price, and carries the fee the recorded fills do not.
        """
        rows = self._db.execute(
            "SELECT fill_id, price, quantity, fee, fee_asset FROM fills WHERE intent_id = ?", (intent.intent_id,)
        )
        notional = fees = ZERO
        for price, quantity, fee, fee_asset in self._rows("fills", (0,), rows, _fill_amounts):
            notional += price * quantity
            if fee_asset == state.fee_asset:
                fees += fee
        if state.average_price is not None and state.average_price > 0:  # some schemas read a missing one as 0
            price = (state.filled_quantity * state.average_price - notional) / gap
        else:
            price = state.price or intent.request.price or ZERO
        return Fill(
            symbol=intent.request.symbol,
            order_id=state.order_id,
            client_order_id=intent.client_order_id,
            trade_id=f"reconciled:{intent.client_order_id}:{state.filled_quantity}",
            side=intent.request.side,
            price=price,
            quantity=gap,
            fee=max(state.fee - fees, ZERO),
            fee_asset=state.fee_asset or "",
            is_maker=False,
            timestamp_ms=state.updated_at_ms,
        )

    def _filled(self, intent_id: int) -> Decimal:
        rows = self._db.execute("SELECT fill_id, quantity FROM fills WHERE intent_id = ?", (intent_id,))
        return sum(self._rows("fills", (0,), rows, _fill_quantity), ZERO)

    def _rows(
        self, table: str, key: tuple[int, ...], rows: Iterable[tuple[Any, ...]],
        convert: Callable[[tuple[Any, ...]], _Converted],
    ) -> Iterator[_Converted]:
        """``converted_rows`` of this journal: a row that cannot be read refuses the journal."""
        return converted_rows(self.path, table, key, rows, convert, _unreadable)

    def _insert_fill(self, intent_id: int | None, exchange: ExchangeName, fill: Fill, source: str) -> bool:
        """Insert the fill unless its trade id is journaled, counting it in its intent's index entry;
        whether it was inserted."""
        cursor = self._write(
            _INSERT_FILL,
            (
                intent_id,
                exchange._value_,
                fill.symbol,
                fill.trade_id,
                fill.order_id,
                fill.client_order_id,
                fill.side._value_,
                str(fill.price),
                str(fill.quantity),
                str(fill.fee),
                fill.fee_asset,
                1 if fill.is_maker else 0,
                fill.timestamp_ms,
                source,
                self._now_ms(),
            ),
        )
        if cursor.rowcount != 1:
            return False
        if intent_id is not None:
            entry = self._working(intent_id)
            if entry is not None:
                entry.filled += fill.quantity
        return True

    def _intent_id(self, exchange: ExchangeName, client_order_id: str) -> int:
        entry = self._open.get((exchange.value, client_order_id))
        if entry is not None:
            return entry.intent_id
        row = self._db.execute(
            "SELECT intent_id FROM intents WHERE exchange = ? AND client_order_id = ?",
            (exchange.value, client_order_id),
        ).fetchone()
        if row is None:
            raise JournalError(
                f"journal {self.path}: no intent for {exchange.value} client order id {client_order_id!r}; "
                "record_intent must come first"
            )
        return int(row[0])

    def _find_intent(self, exchange: ExchangeName, client_order_id: str | None, order_id: str) -> int | None:
        if client_order_id:
            entry = self._open.get((exchange.value, client_order_id))
            if entry is not None:
                return entry.intent_id
            row = self._db.execute(
                "SELECT intent_id FROM intents WHERE exchange = ? AND client_order_id = ?",
                (exchange.value, client_order_id),
            ).fetchone()
            if row is not None:
                return int(row[0])
        row = self._db.execute(
            "SELECT e.intent_id FROM order_events e JOIN intents i ON i.intent_id = e.intent_id "
            "WHERE e.order_id = ? AND i.exchange = ? LIMIT 1",
            (order_id, exchange.value),
        ).fetchone()
        return None if row is None else int(row[0])

    def _intent(self, row: tuple[Any, ...]) -> IntentRecord:
        intent_id = row[0]
        order = self._db.execute(
            "SELECT order_id FROM order_events WHERE intent_id = ? AND order_id IS NOT NULL "
            "ORDER BY event_id DESC LIMIT 1",
            (intent_id,),
        ).fetchone()
        try:
            exchange, request = _market(row[3]), msgspec.json.decode(row[4], type=OrderRequest)
            contract_size = stored_contract_size(row[6])
        except (ValueError, msgspec.DecodeError) as exc:
            raise JournalError(
                f"journal {self.path}: intent {intent_id} (opportunity {row[1]}) is unreadable: {exc}; restore the "
                "journal from a backup or repair the row (its order may exist at the venue)"
            ) from exc
        return IntentRecord(
            intent_id=intent_id,
            opportunity_id=row[1],
            leg=row[2],
            exchange=exchange,
            request=request,
            created_at_ms=row[5],
            order_id=None if order is None else order[0],
            filled_quantity=self._filled(intent_id),
            contract_size=contract_size,
        )


_encode_request = msgspec.json.Encoder().encode
_decode_detail = msgspec.json.Decoder(dict[str, Any]).decode


def _encode(detail: Mapping[str, Any]) -> str:
    return msgspec.json.encode(detail).decode()


def _state_detail(state: OrderState) -> str:
    """The detail of an event carrying a venue order state."""
    return _encode({"average_price": state.average_price, "fee": state.fee, "fee_asset": state.fee_asset})


def _check_logged_row(row: _LoggedIntent) -> None:
    """Raise ValueError unless an intent log row holds what its database row must: a known market
    and a readable request of the row's own client id and symbol."""
    _, _, _, market, client_order_id, symbol, request_json, _, contract_size = row
    if market not in _MARKET_VALUES:
        raise ValueError(f"intent {row[0]}: unknown market {market!r}")
    try:
        request = msgspec.json.decode(request_json, type=OrderRequest)
    except msgspec.DecodeError as exc:
        raise ValueError(f"intent {row[0]}: unreadable request: {exc}") from None
    if (request.client_order_id, request.symbol) != (client_order_id, symbol):
        raise ValueError(f"intent {row[0]}: its request is for {request.client_order_id!r} {request.symbol}, "
                         f"the row for {client_order_id!r} {symbol}")
    stored_contract_size(contract_size)


def _market(value: str, column: str = "exchange") -> ExchangeName:
    """The market journaled as ``value`` in ``column``; ``UnreadableValue`` naming both when it is none."""
    market = _MARKETS.get(value)
    if market is None:
        raise UnreadableValue(f"{column} {value!r}: not a market")
    return market


def _fill_record(row: tuple[Any, ...]) -> FillRecord:
    side = _SIDES.get(row[7])
    if side is None:
        raise UnreadableValue(f"side {row[7]!r}: not buy or sell")
    return FillRecord(
        exchange=_market(row[0]),
        opportunity_id=row[1],
        leg=row[2],
        fill=Fill(
            symbol=row[3],
            order_id=row[4],
            client_order_id=row[5],
            trade_id=row[6],
            side=side,
            price=stored_decimal(row[8], "price"),
            quantity=stored_decimal(row[9], "quantity"),
            fee=stored_decimal(row[10], "fee"),
            fee_asset=row[11],
            is_maker=bool(row[12]),
            timestamp_ms=row[13],
        ),
        source=row[14],
        intent_id=row[15],
        recorded_at_ms=row[16],
        contract_size=stored_contract_size(row[18]),
    )


def _fill_quantity(row: tuple[Any, ...]) -> Decimal:
    return stored_decimal(row[1], "quantity")


def _fill_amounts(row: tuple[Any, ...]) -> tuple[Decimal, Decimal, Decimal, str]:
    """(price, quantity, fee, fee asset) of a ``fill_id, price, quantity, fee, fee_asset`` row."""
    return stored_decimal(row[1], "price"), stored_decimal(row[2], "quantity"), stored_decimal(row[3], "fee"), row[4]


def _final(row: tuple[Any, ...]) -> tuple[str, Decimal]:
    return row[1], stored_decimal(row[2], "filled_quantity")


def _funding_payment(row: tuple[Any, ...]) -> tuple[ExchangeName, FundingPayment]:
    amount, time_ms = stored_decimal(row[3], "amount"), stored_int(row[4], "settled_at_ms")
    return _market(row[0]), FundingPayment(payment_id=row[1], symbol=row[2], amount=amount, time_ms=time_ms)


def _settled_at_ms(row: tuple[Any, ...]) -> int:
    return stored_int(row[2], "settled_at_ms")


def _kill_switch_change(row: tuple[Any, ...]) -> tuple[str, int] | None:
    """``(reason, wall ms)`` of a change that engaged the switch; None for a release."""
    _, engaged, reason, at_ms = row
    return (str(reason), stored_int(at_ms, "at_ms")) if engaged else None


def _order_window(row: tuple[Any, ...]) -> tuple[str, int]:
    exchange, window_ms = row
    return exchange, stored_int(window_ms, "window_ms")


def _step_detail(text: str) -> dict[str, Any]:
    """A recovery step's detail, as ``_encode`` wrote it."""
    try:
        return _decode_detail(text)
    except (msgspec.DecodeError, TypeError) as exc:  # DecodeError: not JSON (cut short), or not an object
        raise UnreadableValue(f"detail: not a JSON object: {exc}") from None


def _recovery_step(row: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    return row[1], _step_detail(row[2])


def _approval_step(row: tuple[Any, ...]) -> tuple[str, dict[str, Any] | None, str | None]:
    """(opportunity id, detail of a flag or None for an acknowledgement, symbol of its first order);
    a flag's ``residual`` read as a Decimal (0 when it has none)."""
    _, opportunity_id, step, detail, symbol = row
    if step != "manual_approval":
        return opportunity_id, None, symbol
    flag = _step_detail(detail)
    residual = flag.get("residual", ZERO)
    # Written as decimal text; a JSON number put there by hand is read by its text, anything else refused.
    if isinstance(residual, bool) or not isinstance(residual, (str, int, float, Decimal)):
        raise UnreadableValue(f"detail.residual {residual!r}: not a decimal number")
    flag["residual"] = stored_decimal(str(residual), "detail.residual")
    return opportunity_id, flag, symbol


def _order_leg(row: tuple[Any, ...]) -> tuple[int, str, str, ExchangeName, str]:
    intent_id, opportunity_id, leg, exchange, symbol = row
    return intent_id, opportunity_id, leg, _market(exchange), symbol


def _hedge_drop(row: tuple[Any, ...]) -> HedgeDrop:
    _, symbol, spot, futures, after, reason, at_ms = row
    return HedgeDrop(symbol=symbol, spot=_market(spot, "spot"), futures=_market(futures, "futures"),
                     after_intent_id=stored_int(after, "after_intent_id"), reason=reason,
                     at_ms=stored_int(at_ms, "at_ms"))
