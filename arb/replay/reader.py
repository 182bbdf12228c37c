"""Reading recordings back: ``Record``s in time order from one or more files, up to any damage.

Two input formats: the recorder's own files (``arb.replay.recorder``) and the cryptofeed
text recordings of ``/work/shared/data/cryptofeed`` (read through
``arb.sim.market.read_recording``). The format is told by the first bytes of each file.

Order: the parts of one recording (same recording id) are read in part order, each file
in the order it was written (the receive order); separate recordings and cryptofeed files
are merged by wall-clock time. A recording is read up to its first damage (a cut, a bad
CRC, a block that does not decompress, a file that was never closed, a part missing or
given twice), a file whose header cannot be read not at all; the other recordings and
files still read to their ends, and ``RecordingReader.damage`` says where reading stopped:
file, byte offset of the first unread byte, records read from that file, and why. Damage
is reported, never raised. A recording given from a later part on is no damage: it reads
from there, and ``RecordingReader.later_starts`` names the parts before it not given.

``RecordingReader.blocks`` reads one recording of the recorder's format as decompressed
blocks instead, their records checked in C (``arb_core.replay.check_block``) and not
parsed: the compiled replay walks them itself. A block the check refuses goes through the
Python parser, so both report the same damage. ``RecordingReader.surveyed_blocks`` serves a
survey: it decompresses only the blocks whose summary the caller asks for (format version 2 on).
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
from arb_core.wire.common import WireError

from ..exchanges.base import MarketDataDialect
from ..exchanges.models import FrameKind
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
    SUMMARY_HEAD,
    SUMMARY_SYMBOL,
    VERSION,
    RecordKind,
    Symbolizer,
    recording_files,
    rotated_name,
    symbolizer,
)

__all__ = [
    "BlockSummary", "Record", "RecordingDamaged", "RecordingReader", "SurveyedBlock", "read_records", "recording_files"
]

_MARKETS = {code: market for market, code in MARKET_CODES.items()}
_KINDS = {int(kind): kind for kind in RecordKind}
MARKET_TABLE = bytes(1 if code in _MARKETS else 0 for code in range(256))
"""``check_block``'s table of known market codes."""
KIND_TABLE = bytes(1 if code in _KINDS else 0 for code in range(256))
"""``check_block``'s table of known record kinds."""
_VERSIONS = (1, 2, 3)
BLOCK_HEADER_V1 = struct.Struct("<4sIIII")
"""A version 1 block header: magic, stored length, raw length, record count, CRC32."""
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
    """One time-ordered source: the parts of one native recording, or one cryptofeed file;
    ``stop``: the damage it ends at once its files are read (the part after them missing or
    given twice)."""

    def __init__(
        self, paths: list[Path], native: bool, stop: RecordingDamaged | None = None, engine_frames_only: bool = False
    ) -> None:
        self.paths = paths
        self.native = native
        self.stop = stop
        self.engine_frames_only = engine_frames_only
        self.damage: RecordingDamaged | None = None

    def records(self) -> Iterator[Record]:
        if self.native:
            return self._read(_native_records)
        only = self.engine_frames_only
        return self._read(lambda path, counter: _cryptofeed_records(path, counter, only))

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        """The checked blocks of a native stream as ``(raw, count)``, up to any damage."""
        return self._read(_checked_blocks)

    def surveyed_blocks(self, wanted: Callable[[BlockSummary], bool]) -> Iterator[SurveyedBlock]:
        """The blocks of a native stream as ``SurveyedBlock``s, up to any damage."""
        return self._read(lambda path, counter: _surveyed_blocks(path, counter, wanted))

    def _read(self, read: Callable[[Path, list[int]], Iterator[_Item]]) -> Iterator[_Item]:
        """``read`` of every path in turn; the first damage or unreadable file ends it (``damage``),
        else ``stop`` does."""
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
        self.damage = self.stop


class RecordingReader:
    """Iterates the records of ``paths`` in time order; after iteration ``damage`` says
    where reading stopped early (None: every file was read to its end; of several recordings,
    each damaged one ends at its damage, a file whose header cannot be read gives nothing,
    ``damage`` names the first found and ``damages`` every one).

    Several recordings are merged on one clock: each one's receive times are moved onto the
    wall clock by the offset of its first record (they come from each recorder process's own
    monotonic clock, which another boot or machine starts elsewhere) and merged in that order,
    so the spacing within one recording stays as measured and time never runs back."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]], *, engine_frames_only: bool = False) -> None:
        """``engine_frames_only``: leave out a cryptofeed file's frames of channels the engine does not
        subscribe to (cryptofeed subscribed tickers and trades too), which a run never receives."""
        self.paths = [Path(p) for p in paths]
        self.engine_frames_only = engine_frames_only
        self.damages: list[RecordingDamaged] = []
        self.records = 0
        # Each rotated recording given from a later part on, naming the parts before it not given
        # (known once reading starts). Not damage: every file given is read.
        self.later_starts: list[str] = []

    @property
    def damage(self) -> RecordingDamaged | None:
        """The first damage found, or None."""
        return self.damages[0] if self.damages else None

    def _damaged(self, damage: RecordingDamaged | None) -> None:
        if damage is not None and damage not in self.damages:
            self.damages.append(damage)

    def __iter__(self) -> Iterator[Record]:
        self.damages = []
        self.records = 0
        streams = self._streams()
        if len(streams) == 1:
            # Nothing to merge: a stream's damage is known once its records end.
            (stream,) = streams
            for record in stream.records():
                self.records += 1
                yield record
            self._damaged(stream.damage)
            return
        # A damaged recording ends where its damage is; the others go on to their ends (a
        # recorder restarted after a crash writes a new recording beside the cut one).
        heap: list[tuple[int, int, Record, Iterator[Record]]] = []
        offsets: list[int] = []
        for index, stream in enumerate(streams):
            iterator = stream.records()
            first = next(iterator, None)
            offsets.append(0 if first is None else first.wall_ns - first.recv_ns)
            if stream.damage is not None:
                self._damaged(stream.damage)
            elif first is not None:
                heap.append((first.recv_ns + offsets[index], index, first, iterator))
        heapq.heapify(heap)
        while heap:
            _, index, record, iterator = heap[0]
            self.records += 1
            yield record._replace(recv_ns=record.recv_ns + offsets[index])
            following = next(iterator, None)
            damage = streams[index].damage
            if damage is not None:
                self._damaged(damage)
                heapq.heappop(heap)
            elif following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following.recv_ns + offsets[index], index, following, iterator))

    def single_native(self) -> bool:
        """Whether the files are one recording of the recorder's own format (``blocks`` reads them)."""
        streams = self._streams()
        self.damages = []
        return len(streams) == 1 and streams[0].native

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        """The decompressed blocks of a ``single_native`` recording as ``(raw, count)``, each
        checked by ``arb_core.replay.check_block``; ``damage`` and ``records`` as for ``__iter__``."""
        stream = self._single_native("blocks()")
        if stream is None:
            return
        for raw, count in stream.blocks():
            self.records += count
            yield raw, count
        self._damaged(stream.damage)

    def surveyed_blocks(self, wanted: Callable[[BlockSummary], bool]) -> Iterator[SurveyedBlock]:
        """The blocks of a ``single_native`` recording for a survey: a block written with a
        summary (format version 2 on) is decompressed only when ``wanted(summary)`` says so,
        and only its header and summary are checked otherwise (damage inside its stored
        bytes is found by ``blocks``); a version 1 block always comes decompressed and
        checked. ``damage`` and ``records`` as for ``blocks``."""
        stream = self._single_native("surveyed_blocks()")
        if stream is None:
            return
        for block in stream.surveyed_blocks(wanted):
            self.records += block.records
            yield block
        self._damaged(stream.damage)

    def _single_native(self, caller: str) -> _Stream | None:
        """The one native stream a block reader reads, its counters reset (``damage`` set when another
        file's header cannot be read); None (``damage`` set) when no file's can; ValueError when the
        files are not one recording of the recorder's format."""
        self.damages = []
        self.records = 0
        streams = self._streams()
        if not streams and self.damage is not None:
            return None
        if len(streams) != 1 or not streams[0].native:
            raise ValueError(f"{caller} reads one recording of the recorder's format, not {self.paths}")
        return streams[0]

    def _streams(self) -> list[_Stream]:
        """The sources to read; a file whose header cannot be read is left out, its damage in ``damage``
        (the first found)."""
        parts: dict[bytes, list[tuple[int, Path]]] = {}
        streams: list[_Stream] = []
        seen: set[Path] = set()
        for path in self.paths:
            resolved = path.resolve()
            if resolved in seen:  # named twice (a part beside its recording's --out name): read once
                continue
            seen.add(resolved)
            try:
                with path.open("rb") as file:
                    head = file.read(FILE_HEADER.size)
            except OSError as exc:
                self._damaged(RecordingDamaged(
                    path=str(path), offset=0, records=0, reason=f"unreadable: {exc}"
                ))
                continue
            if head.startswith(MAGIC) or (len(head) < FILE_HEADER.size and MAGIC.startswith(head)):
                try:
                    recording_id, part, _version = _file_header(head)
                except _Damage as damage:
                    self._damaged(RecordingDamaged(
                        path=str(path), offset=damage.offset, records=0, reason=damage.reason
                    ))
                    continue
                parts.setdefault(recording_id, []).append((part, path))
            else:
                streams.append(_Stream([path], native=False, engine_frames_only=self.engine_frames_only))
        self.later_starts = []
        for recording_id, group in parts.items():
            group.sort()
            streams.append(_parts_stream(group))
            part, path = group[0]
            first = _first_part(recording_id, part, path) if part > 1 else part
            if first < part:
                self.later_starts.append(
                    f"{path}: replayed from part {part} of its recording; {_parts(first, part - 1)} not given or "
                    "missing, and with them what the recording began with (its instrument lists, the books' "
                    "first snapshots)"
                )
        return streams


def _parts_stream(group: list[tuple[int, Path]]) -> _Stream:
    """The stream of one recording's ``(part, path)``s, in part order: up to the first part
    missing or given twice, which it stops at."""
    paths = [group[0][1]]
    for (before, earlier), (part, path) in zip(group, group[1:]):
        if part == before:
            # Which of the two is the part is not known: neither is read.
            del paths[-1]
            reason = f"part {part} of this recording is also {earlier}"
        elif part != before + 1:
            # The books would replay across the hole as if nothing had happened there.
            reason = f"{_parts(before + 1, part - 1)} of this recording not given or missing"
        else:
            paths.append(path)
            continue
        return _Stream(paths, native=True, stop=RecordingDamaged(path=str(path), offset=0, records=0, reason=reason))
    return _Stream(paths, native=True)


def _first_part(recording_id: bytes, part: int, path: Path) -> int:
    """The part that recording ``recording_id``, of which ``path`` is part ``part``, began at, as the
    files beside ``path`` tell: a recorder numbers a new recording on from the parts already there,
    so the last part of another recording before ``part`` is just before it (none: part 1)."""
    name = rotated_name(path)
    for sibling in reversed(recording_files(name) if name is not None else []):
        try:
            with sibling.open("rb") as file:
                other, number, _version = _file_header(file.read(FILE_HEADER.size))
        except (OSError, _Damage):
            continue
        if number < part and other != recording_id:
            return number + 1
    return 1


def _parts(first: int, last: int) -> str:
    return f"part {first}" if first == last else f"parts {first} to {last}"


def read_records(*paths: str | os.PathLike[str], engine_frames_only: bool = False) -> RecordingReader:
    """A reader of ``paths``; a path naming a rotated recording (``--out``) stands for all its parts
    (``engine_frames_only``: see ``RecordingReader``)."""
    files: list[Path] = []
    for path in paths:
        found = recording_files(path)
        files += found or [Path(path)]
    return RecordingReader(files, engine_frames_only=engine_frames_only)


# --- the recorder's format ------------------------------------------------------------------


def _file_header(head: bytes) -> tuple[bytes, int, int]:
    """``(recording id, part, format version)`` of a native file's header."""
    if len(head) < FILE_HEADER.size:
        raise _Damage(0, f"file header cut: {len(head)} of {FILE_HEADER.size} bytes")
    magic, version, recording_id, part, _created_ns, crc = FILE_HEADER.unpack(head)
    if zlib.crc32(head[: FILE_HEADER.size - 4]) != crc:
        raise _Damage(0, "file header CRC mismatch")
    if version not in _VERSIONS:
        raise _Damage(0, f"format version {version} is not supported (this reader reads 1 to {VERSION})")
    return recording_id, part, version


def _native_records(path: Path, counter: list[int]) -> Iterator[Record]:
    for block in _native_blocks(path):
        records = _block_records(_raw(block), block.records, block.offset)
        # The counter is read only when the next block turns out damaged, after these.
        counter[0] += block.records
        yield from records


def _checked_blocks(path: Path, counter: list[int]) -> Iterator[tuple[bytes, int]]:
    """The blocks of ``path`` whose records ``check_block`` found readable, as ``(raw, count)``."""
    for block in _native_blocks(path):
        raw = _checked(block)
        counter[0] += block.records
        yield raw, block.records


def _surveyed_blocks(path: Path, counter: list[int], wanted: Callable[[BlockSummary], bool]) -> Iterator[SurveyedBlock]:
    for block in _native_blocks(path, wanted):
        if block.raw is not None:
            _checked(block)
        counter[0] += block.records
        yield block


def _checked(block: SurveyedBlock) -> bytes:
    """The block's records, checked by ``check_block`` (the reference parser raises the damage)."""
    raw = _raw(block)
    if check_block(raw, block.records, MARKET_TABLE, KIND_TABLE) != -1:
        _block_records(raw, block.records, block.offset)
        raise _Damage(block.offset, "block records unreadable")  # pragma: no cover - the two checks agree
    return raw


def _raw(block: SurveyedBlock) -> bytes:
    if block.raw is None:  # pragma: no cover - only a survey's ``wanted`` leaves blocks compressed
        raise ValueError(f"the block at byte {block.offset} was not decompressed")
    return block.raw


class BlockSummary(NamedTuple):
    """What a version 2 or 3 block says of its records without decompressing them."""

    last_ns: int  # receive time of its last record
    responses: int  # REST responses among them
    symbols: tuple[tuple[int, bytes], ...]  # (market code, venue symbol) of the others


class SurveyedBlock(NamedTuple):
    """One block of a native file: ``raw`` None when a survey left it compressed, ``summary``
    None in a version 1 file."""

    offset: int
    records: int
    summary: BlockSummary | None
    raw: bytes | None


def _native_blocks(path: Path, wanted: Callable[[BlockSummary], bool] | None = None) -> Iterator[SurveyedBlock]:
    """Every block of ``path``, its header (and summary) checked; decompressed unless ``wanted``
    turns down its summary (its stored bytes are then skipped, not read)."""
    decompressor = zstandard.ZstdDecompressor()
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        version = _file_header(file.read(FILE_HEADER.size))[2]
        header_size = BLOCK_HEADER.size if version >= 2 else BLOCK_HEADER_V1.size
        offset = FILE_HEADER.size
        records = 0
        while True:
            header = file.read(header_size)
            if not header:
                raise _Damage(offset, "no end marker: the file was not closed (recorder crashed or the file was cut)")
            if len(header) < header_size:
                raise _Damage(offset, f"cut inside a block header ({len(header)} of {header_size} bytes)")
            summary_bytes = b""
            if version >= 2:
                magic, stored_len, raw_len, count, summary_len, summary_crc, crc = BLOCK_HEADER.unpack(header)
                if summary_len > MAX_BLOCK_BYTES:
                    raise _Damage(offset, f"implausible summary length {summary_len} (corrupted header)")
                summary_bytes = file.read(summary_len)
                if len(summary_bytes) < summary_len:
                    raise _Damage(offset, f"block cut: {len(summary_bytes)} of {summary_len} summary bytes present")
                if zlib.crc32(summary_bytes, zlib.crc32(header[4:20])) != summary_crc:
                    raise _Damage(offset, "block header CRC mismatch")
                end = magic == END_MAGIC and stored_len == raw_len == summary_len == crc == 0
            else:
                magic, stored_len, raw_len, count, crc = BLOCK_HEADER_V1.unpack(header)
                end = magic == END_MAGIC and stored_len == raw_len == 0 and _v1_crc(header, b"") == crc
            if magic == END_MAGIC:
                if not end:
                    raise _Damage(offset, "end marker CRC mismatch")
                if count != records:
                    raise _Damage(offset, f"end marker counts {count} records, the blocks held {records}")
                if file.read(1):
                    raise _Damage(offset + header_size, "bytes after the end marker")
                return
            if magic != BLOCK_MAGIC:
                raise _Damage(offset, f"no block starts here (magic {magic!r})")
            if stored_len > MAX_BLOCK_BYTES or raw_len > MAX_BLOCK_BYTES:
                raise _Damage(offset, f"implausible block lengths {stored_len}/{raw_len} (corrupted header)")
            summary = _summary(summary_bytes, offset) if version >= 2 else None
            stored_at = offset + header_size + len(summary_bytes)
            raw = None
            if summary is not None and wanted is not None and not wanted(summary):
                if stored_at + stored_len > size:
                    raise _Damage(offset, f"block cut: {max(size - stored_at, 0)} of {stored_len} bytes present")
                file.seek(stored_len, os.SEEK_CUR)
            else:
                stored = file.read(stored_len)
                if len(stored) < stored_len:
                    raise _Damage(offset, f"block cut: {len(stored)} of {stored_len} bytes present")
                if (zlib.crc32(stored) if version >= 2 else _v1_crc(header, stored)) != crc:
                    raise _Damage(offset, "block CRC mismatch")
                try:
                    raw = decompressor.decompress(stored, max_output_size=raw_len)
                except zstandard.ZstdError as exc:
                    raise _Damage(offset, f"block does not decompress: {exc}") from None
                if len(raw) != raw_len:
                    raise _Damage(offset, f"block decompressed to {len(raw)} bytes, header says {raw_len}")
            yield SurveyedBlock(offset, count, summary, raw)
            records += count
            offset = stored_at + stored_len


def _summary(data: bytes, offset: int) -> BlockSummary:
    """The parsed summary of the block at ``offset``; damage when it does not hold what it says."""
    if len(data) < SUMMARY_HEAD.size:
        raise _Damage(offset, f"block summary cut: {len(data)} bytes")
    last_ns, responses, count = SUMMARY_HEAD.unpack_from(data)
    at = SUMMARY_HEAD.size
    symbols = []
    for _ in range(count):
        if at + SUMMARY_SYMBOL.size > len(data):
            raise _Damage(offset, "block summary cut inside its symbols")
        code, length = SUMMARY_SYMBOL.unpack_from(data, at)
        at += SUMMARY_SYMBOL.size
        symbol = data[at : at + length]
        if code not in _MARKETS or len(symbol) < length or not symbol.isascii():
            raise _Damage(offset, f"block summary unreadable (market code {code}, symbol {symbol[:80]!r})")
        symbols.append((code, symbol))
        at += length
    if at != len(data):
        raise _Damage(offset, f"block summary: {len(data) - at} bytes after its {count} symbols")
    return BlockSummary(last_ns, responses, tuple(symbols))


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


def _v1_crc(header: bytes, stored: bytes) -> int:
    """A version 1 block's CRC: its 12 length/count bytes, then the stored bytes."""
    return zlib.crc32(stored, zlib.crc32(header[4:16]))


# --- cryptofeed recordings ------------------------------------------------------------------


def _cryptofeed_records(path: Path, counter: list[int], engine_frames_only: bool = False) -> Iterator[Record]:
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
    subscribed: dict[ExchangeName, Callable[[bytes], bool]] = {}
    for frame in frames:
        if engine_frames_only and frame.kind == "ws":
            wanted = subscribed.get(frame.exchange)
            if wanted is None:
                wanted = subscribed[frame.exchange] = _market_subscribes(frame.exchange)
            if not wanted(frame.raw):
                continue
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


def _market_dialect(market: ExchangeName) -> MarketDataDialect | None:
    """The dialect the engine reads ``market``'s stream with; None for a market it has no connector for."""
    from ..exchanges.factory import registered

    connector = registered().get(market)
    return None if connector is None else connector.binding.dialect(None)


def _market_symbolizer(market: ExchangeName) -> Callable[[bytes], bytes]:
    dialect = _market_dialect(market)
    return symbolizer(dialect) if dialect is not None else _nothing


def _nothing(payload: bytes) -> bytes:
    return b""


def _market_subscribes(market: ExchangeName) -> Callable[[bytes], bool]:
    """Whether the engine's subscriptions on ``market`` would receive a recorded frame: a frame of no
    kind its dialect reads is of a channel it does not subscribe to. One that does not classify is
    kept, for the engine to count as malformed."""
    dialect = _market_dialect(market)
    if dialect is None:
        return lambda payload: True
    classify = dialect.classify

    def wanted(payload: bytes) -> bool:
        try:
            return classify(payload) != FrameKind.OTHER
        except (WireError, ValueError, OverflowError):
            return True

    return wanted
