"""Recording raw market data: every websocket message, REST snapshot and stream drop, with its receive time.

File format, version 3 (little-endian, append-only)::

    file header  b"ARBREC", u16 version, 8-byte recording id, u32 part number,
                 i64 wall-clock ns at creation, u32 CRC32 of the 28 bytes before it
    block        b"ARBB", u32 stored length, u32 raw length, u32 record count,
                 u32 summary length, u32 CRC32 of (the 16 length/count bytes + the
                 summary), u32 CRC32 of the stored bytes, then the summary, then the
                 stored bytes: one zstd frame holding the block's records
    summary      i64 receive time of the block's last record, u32 REST responses in it,
                 u16 venue symbols, then per symbol u8 market, u16 length, the symbol:
                 the distinct (market, venue symbol) pairs of its other records
    end marker   b"ARBE", u32 0, u32 0, u32 records in the file, u32 0,
                 u32 CRC32 of the 16 bytes before it, u32 0

    record       i64 receive time (monotonic ns: the websocket session's ``recv_ns``),
                 i64 wall-clock ns, u8 market (``MARKET_CODES``), u8 ``RecordKind``,
                 u16 venue-symbol length, u32 payload length, venue symbol, payload

Every block is an independent zstd frame under its own CRC, so a file cut by a crash or
damaged on disk reads back up to the last good block (``arb.replay.reader``); the end
marker tells a closed file from a cut one. The summaries let a backtest survey a recording
(its markets, symbols, length) from the headers alone, decompressing only the blocks that
hold REST responses. Version 3 adds the ``DISCONNECT`` record kind (the layout is version
2's, which is still read): a reader that does not know it refuses the file by its version
rather than taking the records as damage. Version 1 files (blocks without a summary:
``b"ARBB"``, u32 stored length, u32 raw length, u32 record count, u32 CRC32 of the 12 bytes
before it and the stored bytes) are still read.

Hot path: the tap's handler copies the borrowed payload and appends one tuple to a deque,
nothing more. A writer thread wakes every ``block_interval_ms``, takes up to
``block_records`` records (or ``BLOCK_RAW_BYTES``) per block, encodes, compresses (zstd
releases the GIL), writes and flushes the block to the OS. So a record is in the file
within about ``block_interval_ms`` of arriving, a crashed process loses at most that much,
and ``fsync=True`` also forces every block to disk (power loss).

Rotation: with ``rotate_bytes`` and/or ``rotate_interval_s`` the recording is written as
parts ``<stem>.<part:05d>.<UTC start>Z<suffix>`` next to ``path``; a new part starts
before a block once the current one holds ``rotate_bytes``, or when the wall clock enters
a new ``rotate_interval_s`` period (aligned to the epoch: 3600 rotates on the UTC hour).
Without rotation the recording is exactly ``path``. Existing files are never overwritten.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

import msgspec
import zstandard

from arb_core.wire.common import WireError

from ..errors import ExchangeError
from ..exchanges.base import MarketDataDialect
from ..exchanges.connector import ExchangeConnector
from ..exchanges.models import FrameKind
from ..types import ExchangeName

log = logging.getLogger(__name__)

MAGIC = b"ARBREC"
VERSION = 3
FILE_HEADER = struct.Struct("<6sH8sIqI")
BLOCK_HEADER = struct.Struct("<4sIIIIII")
SUMMARY_HEAD = struct.Struct("<qIH")  # last receive ns, REST responses, venue symbols
SUMMARY_SYMBOL = struct.Struct("<BH")  # market, venue symbol length (the symbol follows)
RECORD_HEADER = struct.Struct("<qqBBHI")
BLOCK_MAGIC = b"ARBB"
END_MAGIC = b"ARBE"
BLOCK_RAW_BYTES = 4 << 20  # a block closes once its records hold this many bytes
MAX_BLOCK_BYTES = 64 << 20  # readers refuse larger blocks as damage
MAX_SYMBOL_BYTES = 64  # a longer (or non-ASCII) venue symbol is not one: the record is kept unnamed

MARKET_CODES: Mapping[ExchangeName, int] = {
    ExchangeName.MEXC: 1,
    ExchangeName.MEXC_FUTURES: 2,
    ExchangeName.GATEIO: 3,
    ExchangeName.GATEIO_FUTURES: 4,
}
"""The market byte of a record; stable across versions (new markets get new codes)."""


class RecordKind(IntEnum):
    """What a record holds."""

    WS_TEXT = 1
    WS_BINARY = 2
    REST_SNAPSHOT = 3  # a depth snapshot the book sync fetched
    REST_RESPONSE = 4  # any other REST answer (instrument lists in cryptofeed recordings)
    DISCONNECT = 5  # the market's stream dropped (no symbol, empty payload): its books resync


_WS_TEXT = int(RecordKind.WS_TEXT)
_WS_BINARY = int(RecordKind.WS_BINARY)
_REST_SNAPSHOT = int(RecordKind.REST_SNAPSHOT)
_REST_RESPONSE = int(RecordKind.REST_RESPONSE)
_DISCONNECT = int(RecordKind.DISCONNECT)
_BOOK_UPDATE = int(FrameKind.BOOK_UPDATE)

MessageHandler = Callable[[memoryview, bool, bool, int], None]
SnapshotFetcher = Callable[[str], Awaitable[bytes]]
Symbolizer = Callable[[bytes], bytes]
# (recv_ns, market code, kind, venue symbol or None to derive it, payload)
_Item = tuple[int, int, int, "bytes | None", bytes]


class _RecordingStopped(Exception):
    """A failure that ends recording, its message the recorder's ``error``."""


class RecorderStats(msgspec.Struct, frozen=True, kw_only=True):
    """What a recorder has written so far."""

    records: int
    blocks: int
    raw_bytes: int  # encoded records before compression
    stored_bytes: int  # bytes written to files (headers included)
    pending: int  # records waiting for the writer
    dropped: int  # records lost after a write error
    files: tuple[str, ...]
    error: str | None


def symbolizer(dialect: MarketDataDialect) -> Symbolizer:
    """``payload -> venue symbol`` of book updates (``b""`` for anything else), from the dialect's decoders."""
    classify, frame_symbol = dialect.classify, dialect.frame_symbol

    def symbol(payload: bytes) -> bytes:
        try:
            return frame_symbol(payload) if classify(payload) == _BOOK_UPDATE else b""
        except (WireError, ValueError, OverflowError):
            return b""

    return symbol


def _no_symbol(payload: bytes) -> bytes:
    return b""


def part_path(path: Path, part: int, wall_ns: int) -> Path:
    """The file of rotation part ``part`` of the recording named ``path``, started at ``wall_ns``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(wall_ns // 1_000_000_000))
    return path.with_name(f"{path.stem}.{part:05d}.{stamp}Z{path.suffix}")


def _part_number(path: Path, part: Path) -> int | None:
    """The rotation part number of ``part`` (``<stem>.<part>.<stamp>Z<suffix>``, ``part_path``) when
    it is a part of the recording named ``path``, else None. Numbers past 99999 have more digits."""
    name, stem, suffix = part.name, path.stem, path.suffix
    if not (name.startswith(stem + ".") and name.endswith(suffix)):
        return None
    number, dot, rest = name[len(stem) + 1 :].partition(".")
    if len(number) < 5 or not (number.isascii() and number.isdigit()) or not dot or len(rest) <= len(suffix):
        return None
    return int(number)


def rotated_name(part: Path) -> Path | None:
    """The name (``--out``) whose rotation part ``part`` is (``part_path``), or None when ``part``
    is not named as a part."""
    match = _PART_NAME.fullmatch(part.name)
    if match is None:
        return None
    stem, number, suffix = match.groups()
    name = part.with_name(stem + suffix)
    return name if _part_number(name, part) == int(number) else None


_PART_NAME = re.compile(r"(.+)\.(\d{5,})\.\d{8}T\d{6}Z(.*)", re.ASCII)


def recording_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files of the recording named ``path``: ``path`` itself if it exists, then its
    rotation parts in part order."""
    path = Path(path)
    numbered: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            number = _part_number(path, candidate)
            if number is not None:
                numbered.append((number, candidate))
    numbered.sort()
    return ([path] if path.is_file() else []) + [part for _, part in numbered]


def block_header(magic: bytes, stored: bytes, raw_len: int, count: int, summary: bytes) -> bytes:
    """A version 2 and 3 block header (``END_MAGIC`` with empty ``stored`` and ``summary``: the end marker)."""
    fields = struct.pack("<IIII", len(stored), raw_len, count, len(summary))
    return BLOCK_HEADER.pack(
        magic, len(stored), raw_len, count, len(summary), zlib.crc32(summary, zlib.crc32(fields)),
        zlib.crc32(stored) if stored else 0,
    )


def encode_summary(last_ns: int, responses: int, symbols: set[tuple[int, bytes]]) -> bytes:
    """A block summary: its last receive time, REST responses and (market code, venue symbol) pairs."""
    parts = [SUMMARY_HEAD.pack(last_ns, responses, len(symbols))]
    for code, symbol in sorted(symbols):
        parts += (SUMMARY_SYMBOL.pack(code, len(symbol)), symbol)
    return b"".join(parts)


class Recorder:
    """Writes raw market data to ``path`` (a ``MarketDataTap`` and ``DisconnectTap`` for ``start_books``).

    ``rotate_bytes``/``rotate_interval_s``: rotation (see the module docs); ``block_records``
    and ``block_interval_ms``: the flush policy; ``level``: the zstd level.
    ``wall_offset_ns``: the wall clock minus the receive clock, fixed, for records whose
    receive stamps are not this machine's monotonic clock (a synthetic recording); by default
    each block reads both clocks. The first file is created here (``FileExistsError`` if
    ``path`` exists). Stop the streams, then ``close()``: it writes what is pending and the end
    marker.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rotate_bytes: int | None = None,
        rotate_interval_s: int | None = None,
        block_records: int = 1000,
        block_interval_ms: int = 100,
        level: int = 3,
        fsync: bool = False,
        wall_offset_ns: int | None = None,
    ) -> None:
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError(f"Recorder: rotate_bytes={rotate_bytes} must be > 0")
        if rotate_interval_s is not None and rotate_interval_s <= 0:
            raise ValueError(f"Recorder: rotate_interval_s={rotate_interval_s} must be > 0")
        if block_records <= 0 or block_interval_ms <= 0:
            raise ValueError(
                f"Recorder: block_records={block_records} and block_interval_ms={block_interval_ms} must be > 0"
            )
        self.path = Path(path)
        self.rotating = rotate_bytes is not None or rotate_interval_s is not None
        self._rotate_bytes = rotate_bytes
        self._rotate_ns = rotate_interval_s * 1_000_000_000 if rotate_interval_s is not None else None
        self._block_records = block_records
        self._interval_s = block_interval_ms / 1000
        self._fsync = fsync
        self._wall_offset_ns = wall_offset_ns
        self._compressor = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._queue: deque[_Item] = deque()
        self._symbolizers: dict[int, Symbolizer] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self.recording_id = os.urandom(8)
        self._part = self._first_part()
        self._file: BinaryIO | None = None
        self._file_bytes = 0
        self._file_records = 0
        self._period: int | None = None
        self._files: list[str] = []
        self._records = self._blocks = self._raw_bytes = self._stored_bytes = self._dropped = 0
        self._error: str | None = None
        now_ns = time.time_ns()
        self._open(part_path(self.path, self._part, now_ns) if self.rotating else self.path, now_ns)
        self._thread = threading.Thread(target=self._run, name=f"recorder {self.path.name}", daemon=True)
        self._thread.start()

    # --- taps (the frame callback side) ----------------------------------------------------

    def wrap_messages(self, exchange: ExchangeName, dialect: MarketDataDialect, handler: MessageHandler) -> MessageHandler:
        """A websocket handler recording each message of ``exchange`` (a copy), then calling ``handler``."""
        code = MARKET_CODES[exchange]
        self._symbolizers[code] = symbolizer(dialect)
        append = self._queue.append

        def on_message(payload: memoryview, is_binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
            append((recv_ns, code, _WS_BINARY if is_binary else _WS_TEXT, None, bytes(payload)))
            handler(payload, is_binary, last_in_buffer, recv_ns)

        return on_message

    def wrap_snapshots(self, exchange: ExchangeName, fetch: SnapshotFetcher) -> SnapshotFetcher:
        """A snapshot fetcher recording every body ``fetch`` returns, with its venue symbol."""
        code = MARKET_CODES[exchange]
        append = self._queue.append

        async def fetch_and_record(venue_symbol: str) -> bytes:
            body = await fetch(venue_symbol)
            append((time.monotonic_ns(), code, _REST_SNAPSHOT, venue_symbol.encode(), bytes(body)))
            return body

        return fetch_and_record

    def wrap_disconnects(self, exchange: ExchangeName, handler: Callable[[], None]) -> Callable[[], None]:
        """A stream-drop handler recording each drop of ``exchange``'s stream, then calling ``handler``."""
        code = MARKET_CODES[exchange]
        append = self._queue.append

        def on_disconnected() -> None:
            append((time.monotonic_ns(), code, _DISCONNECT, b"", b""))
            handler()

        return on_disconnected

    def record(
        self,
        exchange: ExchangeName,
        kind: RecordKind,
        payload: bytes | memoryview,
        recv_ns: int | None = None,
        venue_symbol: str | None = None,
    ) -> None:
        """Record one message (``recv_ns`` defaults to now on the monotonic clock; a None
        ``venue_symbol`` is derived for websocket messages of a tapped market)."""
        self._queue.append((
            time.monotonic_ns() if recv_ns is None else recv_ns,
            MARKET_CODES[exchange],
            int(kind),
            None if venue_symbol is None else venue_symbol.encode(),
            bytes(payload),
        ))

    # --- control --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything recorded so far now, in the calling thread (blocks while compressing)."""
        with self._lock:
            self._drain()

    def close(self) -> RecorderStats:
        """Write what is pending and the end marker, close the file; idempotent."""
        if not self._closed:
            self._stopping = True
            self._wake.set()
            self._thread.join()
            self._closed = True
        return self.stats()

    @property
    def error(self) -> str | None:
        """The write error that stopped recording (records are dropped from then on)."""
        return self._error

    def stats(self) -> RecorderStats:
        """Counters so far."""
        return RecorderStats(
            records=self._records,
            blocks=self._blocks,
            raw_bytes=self._raw_bytes,
            stored_bytes=self._stored_bytes,
            pending=len(self._queue),
            dropped=self._dropped,
            files=tuple(self._files),
            error=self._error,
        )

    # --- writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            stopping = self._stopping
            with self._lock:
                self._drain()
                if stopping:
                    self._close_file()
                    return

    def _drain(self) -> None:
        queue, limit = self._queue, self._block_records
        while queue:
            items: list[_Item] = []
            size = 0
            while queue and len(items) < limit and size < BLOCK_RAW_BYTES:
                item = queue.popleft()
                items.append(item)
                size += len(item[4])
            if self._error is not None:
                self._dropped += len(items)
                continue
            try:
                self._write_block(items)
            except _RecordingStopped as exc:
                self._error = str(exc)
                self._dropped += len(items)
            except Exception as exc:  # noqa: BLE001 - a dead writer must leave a reason, not a silent thread
                self._error = f"writing {self._files[-1] if self._files else self.path}: {exc!r}"
                self._dropped += len(items)

    def _write_block(self, items: list[_Item]) -> None:
        now_ns = time.time_ns()
        offset_ns = self._wall_offset_ns
        if offset_ns is None:
            offset_ns = now_ns - time.monotonic_ns()  # wall - monotonic, as of this block
        self._maybe_rotate(now_ns)
        parts: list[bytes] = []
        pack = RECORD_HEADER.pack
        symbolizers = self._symbolizers
        symbols: set[tuple[int, bytes]] = set()
        responses = 0
        for recv_ns, code, kind, symbol, payload in items:
            if symbol is None:
                symbol = symbolizers.get(code, _no_symbol)(payload) if kind <= _WS_BINARY else b""
            if len(symbol) > MAX_SYMBOL_BYTES or not symbol.isascii():
                # What a malformed frame names (readers take ASCII symbols only): the frame is
                # recorded all the same, without a symbol, so it replays as it arrived.
                symbol = b""
            if kind == _REST_RESPONSE:
                responses += 1
            elif symbol:
                symbols.add((code, symbol))
            parts += (pack(recv_ns, recv_ns + offset_ns, code, kind, len(symbol), len(payload)), symbol, payload)
        raw = b"".join(parts)
        stored = self._compressor.compress(raw)
        summary = encode_summary(items[-1][0], responses, symbols)
        self._write(block_header(BLOCK_MAGIC, stored, len(raw), len(items), summary) + summary + stored)
        self._check_linked(self._file)
        self._records += len(items)
        self._file_records += len(items)
        self._blocks += 1
        self._raw_bytes += len(raw)

    def _maybe_rotate(self, now_ns: int) -> None:
        if not self.rotating:
            return
        period = now_ns // self._rotate_ns if self._rotate_ns is not None else None
        full = self._rotate_bytes is not None and self._file_records and self._file_bytes >= self._rotate_bytes
        if full or period != self._period:
            self._close_file()
            if self._error is not None:  # the part just closed was removed
                raise _RecordingStopped(self._error)
            self._part += 1
            path = part_path(self.path, self._part, now_ns)
            try:
                self._open(path, now_ns)
            except OSError as exc:
                raise _RecordingStopped(f"creating {path}: {exc!r}") from exc

    def _first_part(self) -> int:
        if not self.rotating:
            return 0
        return max((_part_number(self.path, p) or 0 for p in recording_files(self.path)), default=0) + 1

    def _open(self, path: Path, now_ns: int) -> None:
        file = path.open("xb")
        self._file = file
        self._files.append(str(path))
        self._file_bytes = self._file_records = 0
        if self._rotate_ns is not None:
            self._period = now_ns // self._rotate_ns
        fields = struct.pack("<6sH8sIq", MAGIC, VERSION, self.recording_id, self._part, now_ns)
        self._write(fields + struct.pack("<I", zlib.crc32(fields)))

    def _close_file(self) -> None:
        file = self._file
        if file is None:
            return
        self._file = None
        try:
            if self._error is None:
                end = block_header(END_MAGIC, b"", 0, self._file_records, b"")
                file.write(end)
                self._stored_bytes += len(end)
                file.flush()
                if self._fsync:
                    os.fsync(file.fileno())
                self._check_linked(file)
        except OSError as exc:
            self._error = f"closing {self._files[-1]}: {exc}"
        except _RecordingStopped as exc:
            self._error = str(exc)
        try:
            # After a failed write the buffer still holds what did not fit: closing flushes it
            # again, and on a full disk fails again (the first error is the one kept).
            file.close()
        except OSError as exc:
            self._error = self._error or f"closing {self._files[-1]}: {exc}"

    def _check_linked(self, file: BinaryIO | None) -> None:
        """Raise if ``file`` (the last opened) has been removed, or its directory: writes to it
        still succeed, into a file no one can open again."""
        if file is not None and os.fstat(file.fileno()).st_nlink == 0:
            raise _RecordingStopped(f"{self._files[-1]} was removed while recording")

    def _write(self, data: bytes) -> None:
        file = self._file
        if file is None:
            raise OSError("recorder file is closed")
        file.write(data)
        file.flush()
        if self._fsync:
            os.fsync(file.fileno())
        self._file_bytes += len(data)
        self._stored_bytes += len(data)


async def record_markets(
    connectors: Mapping[ExchangeName, ExchangeConnector],
    symbols: Mapping[ExchangeName, Sequence[str]],
    recorder: Recorder,
    duration_s: float | None = None,
    *,
    status: Callable[[str], None] | None = None,
    status_interval_s: float = 5.0,
    stop: asyncio.Event | None = None,
) -> dict[ExchangeName, int]:
    """Stream the books of ``symbols`` on every connector into ``recorder`` for ``duration_s``
    (None: until cancelled or ``stop`` is set); returns the messages each market's stream delivered.

    Each market's instrument list is recorded first (``REST_RESPONSE``), so a backtest trades
    by the ticks, lots, minimums and listed fees of the recorded market. Stops early when the
    recorder reports a write error. Books are kept in sync while recording, so the REST
    snapshots they need are recorded too, as is each drop of a stream (``DISCONNECT``).
    """
    loop = asyncio.get_running_loop()
    deadline = None if duration_s is None else loop.time() + duration_s
    stopped = stop if stop is not None else asyncio.Event()
    started: list[ExchangeConnector] = []
    # Every symbol is looked up before anything is recorded: one a market does not list fails
    # the recording while it holds nothing.
    for market, connector in connectors.items():
        for symbol in symbols[market]:
            await connector.instrument(symbol)
    try:
        for market, connector in connectors.items():
            await _record_instruments(market, connector, recorder)
        for market, connector in connectors.items():
            await connector.start_books(symbols[market], tap=recorder)
            started.append(connector)
        while recorder.error is None and not stopped.is_set() and (deadline is None or loop.time() < deadline):
            wait = status_interval_s if deadline is None else min(status_interval_s, deadline - loop.time())
            try:
                await asyncio.wait_for(stopped.wait(), max(0.0, wait))
            except asyncio.TimeoutError:
                pass
            if status is not None:
                s = recorder.stats()
                status(
                    f"recording: {s.records + s.pending} messages, {s.stored_bytes / 1e6:.2f} MB in "
                    f"{len(s.files)} file(s)"
                )
    finally:
        # Stop first, then count: a message between counting and stopping would be recorded
        # but not counted.
        for connector in started:
            await connector.stop_books()
    return {market: connector.health().messages for market, connector in connectors.items()}


async def _record_instruments(market: ExchangeName, connector: ExchangeConnector, recorder: Recorder) -> None:
    """Record ``market``'s instrument list as the venue answered it to the catalog read just made
    (read again where there was none); a failed read is logged, not fatal."""
    # Not read twice: a venue may allow the list only so often (MEXC contracts: once in 5 s).
    body = connector.last_instrument_list
    try:
        if body is None:
            body = await connector.instrument_list()
    except (ExchangeError, OSError, asyncio.TimeoutError) as exc:
        log.warning("%s: instrument list not recorded (%s); a backtest of this recording trades it by the "
                    "simulator's instruments", market.value, exc)
        return
    recorder.record(market, RecordKind.REST_RESPONSE, body)
