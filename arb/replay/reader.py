"""Reading recordings back: ``Record``s in time order from one or more files, up to any damage.

Two input formats: the recorder's own files (``arb.replay.recorder``) and the cryptofeed
text recordings of ``/work/shared/data/cryptofeed`` (read through
``arb.sim.market.read_recording``). The format is told by the first bytes of each file.

Order: the parts of one recording (same recording id) are read in part order, each file
in the order it was written (the receive order); separate recordings and cryptofeed files
are merged by wall-clock time. Reading stops at the first damage in any file (a cut, a
bad CRC, a block that does not decompress, a file that was never closed) and
``RecordingReader.damage`` says where: file, byte offset of the first unread byte,
records read from that file, and why. Damage is reported, never raised.

``RecordingReader.blocks`` reads one recording of the recorder's format as decompressed
blocks instead, their records checked in C (``arb_core.replay.check_block``) and not
parsed: the compiled replay walks them itself. A block the check refuses goes through the
Python parser, so both report the same damage.
"""

from __future__ import annotations

import heapq
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec
import zstandard

from arb_core.replay import check_block

from ..sim.market import RecordedFrame, read_recording
from ..types import ExchangeName
from .recorder import (
    BLOCK_HEADER,
    BLOCK_MAGIC,
    END_MAGIC,
    FILE_HEADER,
    MAGIC,
    MARKET_CODES,
    MAX_BLOCK_BYTES,
    RECORD_HEADER,
    VERSION,
    RecordKind,
    Symbolizer,
    recording_files,
    symbolizer,
)

__all__ = ["Record", "RecordingDamaged", "RecordingReader", "read_records", "recording_files"]

_MARKETS = {code: market for market, code in MARKET_CODES.items()}
_KINDS = {int(kind): kind for kind in RecordKind}
MARKET_TABLE = bytes(1 if code in _MARKETS else 0 for code in range(256))
"""``check_block``'s table of known market codes."""
KIND_TABLE = bytes(1 if code in _KINDS else 0 for code in range(256))
"""``check_block``'s table of known record kinds."""
_LINE_NUMBER = re.compile(r":(\d+): ")
_json_check = msgspec.json.Decoder()


class Record(NamedTuple):
    """One recorded message."""

    recv_ns: int  # monotonic receive time (cryptofeed files: their wall-clock time)
    wall_ns: int
    market: ExchangeName
    kind: RecordKind
    venue_symbol: str  # "" when not known
    payload: bytes


class RecordingDamaged(msgspec.Struct, frozen=True, kw_only=True):
    """Where and why reading stopped: ``offset`` is the first byte not read of ``path``,
    ``records`` the records read from that file before it."""

    path: str
    offset: int
    records: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: damaged at byte {self.offset} after {self.records} records: {self.reason}"


class _Damage(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


_Item = TypeVar("_Item")


class _Stream:
    """One time-ordered source: the parts of one native recording, or one cryptofeed file."""

    def __init__(self, paths: list[Path], native: bool) -> None:
        self.paths = paths
        self.native = native
        self.damage: RecordingDamaged | None = None

    def records(self) -> Iterator[Record]:
        return self._read(_native_records if self.native else _cryptofeed_records)

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        """The checked blocks of a native stream as ``(raw, count)``, up to any damage."""
        return self._read(_checked_blocks)

    def _read(self, read: Callable[[Path, list[int]], Iterator[_Item]]) -> Iterator[_Item]:
        """``read`` of every path in turn; the first damage or unreadable file ends it (``damage``)."""
        for path in self.paths:
            counter = [0]
            try:
                yield from read(path, counter)
            except _Damage as damage:
                self.damage = RecordingDamaged(
                    path=str(path), offset=damage.offset, records=counter[0], reason=damage.reason
                )
                return
            except OSError as exc:
                self.damage = RecordingDamaged(path=str(path), offset=0, records=counter[0], reason=f"unreadable: {exc}")
                return


class RecordingReader:
    """Iterates the records of ``paths`` in time order; after iteration ``damage`` says
    where reading stopped early (None: every file was read to its end)."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths = [Path(p) for p in paths]
        self.damage: RecordingDamaged | None = None
        self.records = 0

    def __iter__(self) -> Iterator[Record]:
        self.damage = None
        self.records = 0
        streams = self._streams()
        if self.damage is not None:
            return
        if len(streams) == 1:
            # Nothing to merge: a stream's damage is known once its records end.
            (stream,) = streams
            for record in stream.records():
                self.records += 1
                yield record
            self.damage = stream.damage
            return
        heap: list[tuple[int, int, Record, Iterator[Record]]] = []
        for index, stream in enumerate(streams):
            iterator = stream.records()
            first = next(iterator, None)
            if stream.damage is not None:
                self.damage = stream.damage
                return
            if first is not None:
                heap.append((first.wall_ns, index, first, iterator))
        heapq.heapify(heap)
        while heap:
            _, index, record, iterator = heap[0]
            self.records += 1
            yield record
            following = next(iterator, None)
            damage = streams[index].damage
            if damage is not None:
                self.damage = damage
                return
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following.wall_ns, index, following, iterator))

    def single_native(self) -> bool:
        """Whether the files are one recording of the recorder's own format (``blocks`` reads them)."""
        streams = self._streams()
        self.damage = None
        return len(streams) == 1 and streams[0].native

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        """The decompressed blocks of a ``single_native`` recording as ``(raw, count)``, each
        checked by ``arb_core.replay.check_block``; ``damage`` and ``records`` as for ``__iter__``."""
        self.damage = None
        self.records = 0
        streams = self._streams()
        if self.damage is not None:
            return
        if len(streams) != 1 or not streams[0].native:
            raise ValueError(f"blocks() reads one recording of the recorder's format, not {self.paths}")
        (stream,) = streams
        for raw, count in stream.blocks():
            self.records += count
            yield raw, count
        self.damage = stream.damage

    def _streams(self) -> list[_Stream]:
        parts: dict[bytes, list[tuple[int, Path]]] = {}
        streams: list[_Stream] = []
        for path in self.paths:
            try:
                with path.open("rb") as file:
                    head = file.read(FILE_HEADER.size)
            except OSError as exc:
                self.damage = RecordingDamaged(path=str(path), offset=0, records=0, reason=f"unreadable: {exc}")
                return []
            if head.startswith(MAGIC) or (len(head) < FILE_HEADER.size and MAGIC.startswith(head)):
                try:
                    recording_id, part = _file_header(head)
                except _Damage as damage:
                    self.damage = RecordingDamaged(path=str(path), offset=damage.offset, records=0, reason=damage.reason)
                    return []
                parts.setdefault(recording_id, []).append((part, path))
            else:
                streams.append(_Stream([path], native=False))
        for group in parts.values():
            streams.append(_Stream([path for _, path in sorted(group)], native=True))
        return streams


def read_records(*paths: str | os.PathLike[str]) -> RecordingReader:
    """A reader of ``paths``; a path naming a rotated recording (``--out``) stands for all its parts."""
    files: list[Path] = []
    for path in paths:
        found = recording_files(path)
        files += found or [Path(path)]
    return RecordingReader(files)


# --- the recorder's format ------------------------------------------------------------------


def _file_header(head: bytes) -> tuple[bytes, int]:
    if len(head) < FILE_HEADER.size:
        raise _Damage(0, f"file header cut: {len(head)} of {FILE_HEADER.size} bytes")
    magic, version, recording_id, part, _created_ns, crc = FILE_HEADER.unpack(head)
    if zlib.crc32(head[: FILE_HEADER.size - 4]) != crc:
        raise _Damage(0, "file header CRC mismatch")
    if version != VERSION:
        raise _Damage(0, f"format version {version} is not supported (this reader reads {VERSION})")
    return recording_id, part


def _native_records(path: Path, counter: list[int]) -> Iterator[Record]:
    for offset, raw, count in _native_blocks(path, counter):
        records = _block_records(raw, count, offset)
        # The counter is read only when the next block turns out damaged, after these.
        counter[0] += count
        yield from records


def _checked_blocks(path: Path, counter: list[int]) -> Iterator[tuple[bytes, int]]:
    """The blocks of ``path`` whose records ``check_block`` found readable, as ``(raw, count)``."""
    for offset, raw, count in _native_blocks(path, counter):
        if check_block(raw, count, MARKET_TABLE, KIND_TABLE) != -1:
            _block_records(raw, count, offset)  # raises the damage the Python reader reports
            raise _Damage(offset, "block records unreadable")  # pragma: no cover - the two checks agree
        counter[0] += count
        yield raw, count


def _native_blocks(path: Path, counter: list[int]) -> Iterator[tuple[int, bytes, int]]:
    """``(offset, raw, count)`` of every block of ``path``, decompressed and checked up to its records."""
    decompressor = zstandard.ZstdDecompressor()
    with path.open("rb") as file:
        _file_header(file.read(FILE_HEADER.size))
        offset = FILE_HEADER.size
        while True:
            header = file.read(BLOCK_HEADER.size)
            if not header:
                raise _Damage(offset, "no end marker: the file was not closed (recorder crashed or the file was cut)")
            if len(header) < BLOCK_HEADER.size:
                raise _Damage(offset, f"cut inside a block header ({len(header)} of {BLOCK_HEADER.size} bytes)")
            magic, stored_len, raw_len, count, crc = BLOCK_HEADER.unpack(header)
            if magic == END_MAGIC:
                if _crc(header, b"") != crc or stored_len or raw_len:
                    raise _Damage(offset, "end marker CRC mismatch")
                if count != counter[0]:
                    raise _Damage(offset, f"end marker counts {count} records, the blocks held {counter[0]}")
                if file.read(1):
                    raise _Damage(offset + BLOCK_HEADER.size, "bytes after the end marker")
                return
            if magic != BLOCK_MAGIC:
                raise _Damage(offset, f"no block starts here (magic {magic!r})")
            if stored_len > MAX_BLOCK_BYTES or raw_len > MAX_BLOCK_BYTES:
                raise _Damage(offset, f"implausible block lengths {stored_len}/{raw_len} (corrupted header)")
            stored = file.read(stored_len)
            if len(stored) < stored_len:
                raise _Damage(offset, f"block cut: {len(stored)} of {stored_len} bytes present")
            if _crc(header, stored) != crc:
                raise _Damage(offset, "block CRC mismatch")
            try:
                raw = decompressor.decompress(stored, max_output_size=raw_len)
            except zstandard.ZstdError as exc:
                raise _Damage(offset, f"block does not decompress: {exc}") from None
            if len(raw) != raw_len:
                raise _Damage(offset, f"block decompressed to {len(raw)} bytes, header says {raw_len}")
            yield offset, raw, count
            offset += BLOCK_HEADER.size + stored_len


def _block_records(raw: bytes, count: int, offset: int) -> list[Record]:
    """The ``count`` records of the decompressed block ``raw`` (the reference parser); raises the damage."""
    unpack_record = RECORD_HEADER.unpack_from
    record_size = RECORD_HEADER.size
    raw_len = len(raw)
    records = []
    position = 0
    try:
        for _ in range(count):
            recv_ns, wall_ns, code, kind, symbol_len, payload_len = unpack_record(raw, position)
            position += record_size
            symbol = raw[position : position + symbol_len].decode("ascii")
            position += symbol_len
            payload = raw[position : position + payload_len]
            position += payload_len
            if position > raw_len:
                raise ValueError("record runs past the block")
            records.append(Record(recv_ns, wall_ns, _MARKETS[code], _KINDS[kind], symbol, payload))
    except (struct.error, ValueError, KeyError) as exc:
        raise _Damage(offset, f"block records unreadable: {exc!r}") from None
    if position != raw_len:
        raise _Damage(offset, f"block holds {raw_len - position} bytes after its {count} records")
    return records


def _crc(header: bytes, stored: bytes) -> int:
    return zlib.crc32(stored, zlib.crc32(header[4:16]))


# --- cryptofeed recordings ------------------------------------------------------------------


def _cryptofeed_records(path: Path, counter: list[int]) -> Iterator[Record]:
    data = path.read_bytes()
    frames: list[RecordedFrame] = []
    position = 0
    damage: _Damage | None = None
    try:
        for frame in read_recording(path):
            found = data.find(frame.raw, position)
            position = found + len(frame.raw)
            try:
                _json_check.decode(frame.raw)
            except msgspec.DecodeError as exc:
                start = data.rfind(b"\n", 0, found) + 1
                raise _Damage(start, f"line is not complete JSON ({exc}): cut or corrupted") from None
            frames.append(frame)
    except _Damage as exc:
        damage = exc
    except ValueError as exc:
        match = _LINE_NUMBER.search(str(exc))
        line = int(match.group(1)) if match else 1
        damage = _Damage(sum(len(chunk) + 1 for chunk in data.split(b"\n")[: line - 1]), str(exc))
    # A cryptofeed file is written in receive order; a stable sort only fixes clock steps.
    frames.sort(key=lambda frame: frame.time_ns)
    symbols: dict[ExchangeName, Symbolizer] = {}
    for frame in frames:
        counter[0] += 1
        yield _cryptofeed_record(frame, symbols)
    if damage is not None:
        raise damage


def _cryptofeed_record(frame: RecordedFrame, symbols: dict[ExchangeName, Symbolizer]) -> Record:
    if frame.kind == "ws":
        symbolize = symbols.get(frame.exchange)
        if symbolize is None:
            symbolize = symbols[frame.exchange] = _market_symbolizer(frame.exchange)
        return Record(
            frame.time_ns, frame.time_ns, frame.exchange, RecordKind.WS_TEXT, symbolize(frame.raw).decode(), frame.raw
        )
    url = urlsplit(frame.url)
    query = parse_qs(url.query)
    symbol = (query.get("currency_pair") or query.get("contract") or query.get("symbol") or [""])[0]
    kind = RecordKind.REST_SNAPSHOT if "order_book" in url.path or "depth" in url.path else RecordKind.REST_RESPONSE
    return Record(frame.time_ns, frame.time_ns, frame.exchange, kind, symbol, frame.raw)


def _market_symbolizer(market: ExchangeName) -> Callable[[bytes], bytes]:
    from ..exchanges.factory import registered

    connector = registered().get(market)
    return symbolizer(connector.binding.dialect(None)) if connector is not None else _nothing


def _nothing(payload: bytes) -> bytes:
    return b""
