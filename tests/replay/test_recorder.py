"""The recorder and its reader: every frame back byte for byte, damage found and located, rotation."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from arb.config import ConfigurationManager
from arb.doctor import public_connector
from arb.exchanges.base import MarketDataDialect
from arb.exchanges.factory import ExchangeFactory
from arb.exchanges.gateio.market_data import GateioSpotMarketData
from arb.instruments import InstrumentError
from arb.replay import Record, RecordingReader, RecordKind, read_records, recording_files
from arb.replay.recorder import (
    FILE_HEADER, MARKET_CODES, SUMMARY_HEAD, SUMMARY_SYMBOL, VERSION, Recorder, block_header, record_markets
)
from arb.replay.player import BacktestSettings, backtest
from arb.sim.cluster import SimCluster, SimConfig
from arb.sim.faults import StreamFaultKind
from arb.sim.market import read_recording
from arb.types import ExchangeName
from loopback import eventually
from reference.replay import records_of
import recording_layout

Handler = Callable[[memoryview, bool, bool, int], None]
Fetch = Callable[[str], Awaitable[bytes]]
MARKETS = (ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC, ExchangeName.MEXC_FUTURES)


class CapturingTap:
    """A tap in front of the recorder's: keeps what the client received, in order."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.seen: list[tuple[ExchangeName, RecordKind, bytes]] = []

    def wrap_messages(self, exchange: ExchangeName, dialect: MarketDataDialect, handler: Handler) -> Handler:
        inner = self.recorder.wrap_messages(exchange, dialect, handler)

        def on_message(payload: memoryview, is_binary: bool, last: bool, recv_ns: int) -> None:
            kind = RecordKind.WS_BINARY if is_binary else RecordKind.WS_TEXT
            self.seen.append((exchange, kind, bytes(payload)))
            inner(payload, is_binary, last, recv_ns)

        return on_message

    def wrap_snapshots(self, exchange: ExchangeName, fetch: Fetch) -> Fetch:
        inner = self.recorder.wrap_snapshots(exchange, fetch)

        async def fetch_and_capture(venue_symbol: str) -> bytes:
            body = await inner(venue_symbol)
            self.seen.append((exchange, RecordKind.REST_SNAPSHOT, body))
            return body

        return fetch_and_capture


def test_two_seconds_of_the_simulator_read_back_frame_for_frame(tmp_path: Path) -> None:
    path = tmp_path / "sim.arbrec"
    recorder = Recorder(path)
    tap = CapturingTap(recorder)
    manager = ConfigurationManager(environ={})
    manager.load_configuration()

    async def record() -> dict[ExchangeName, int]:
        async with SimCluster(SimConfig(symbols=("BTC/USDT", "ETH/USDT"))) as cluster:
            factory = ExchangeFactory(manager, sim_urls=cluster.urls())
            connectors = {market: public_connector(factory, market, True) for market in MARKETS}
            symbols = {m: ["BTC/USDT:USDT" if m.is_futures else "BTC/USDT", "ETH/USDT" + (":USDT" if m.is_futures else "")]
                       for m in MARKETS}
            try:
                for market, connector in connectors.items():
                    await connector.start_books(symbols[market], tap=tap)
                await asyncio.sleep(2.0)
                for connector in connectors.values():
                    await connector.stop_books()  # stop before counting, or a late message is uncounted
                return {m: c.health().messages for m, c in connectors.items()}
            finally:
                for connector in connectors.values():
                    await connector.close()

    delivered = asyncio.run(record())
    stats = recorder.close()
    records = list(reader := read_records(path))

    assert reader.damage is None
    assert [(r.market, r.kind, r.payload) for r in records] == tap.seen
    ws = [r for r in records if r.kind is not RecordKind.REST_SNAPSHOT]
    for market in MARKETS:
        assert sum(r.market is market for r in ws) == delivered[market] > 50
    snapshots = {(r.market, r.venue_symbol) for r in records if r.kind is RecordKind.REST_SNAPSHOT}
    assert (ExchangeName.MEXC, "BTCUSDT") in snapshots
    # A Gate.io book syncs from its subscription's first push, the whole book marked full.
    assert not any(market is ExchangeName.GATEIO for market, _ in snapshots)
    assert b'"full":true' in next(r.payload for r in ws if r.market is ExchangeName.GATEIO and r.venue_symbol == "BTC_USDT")
    assert {r.venue_symbol for r in ws if r.market is ExchangeName.MEXC and r.kind is RecordKind.WS_BINARY} == {
        "BTCUSDT", "ETHUSDT"
    }
    assert stats.records == len(records) and stats.dropped == 0 and stats.error is None
    recv = [r.recv_ns for r in records]
    assert recv == sorted(recv)


def _write_sample(
    path: Path, blocks: int = 6, per_block: int = 7, start_ns: int = 1_000, **options: int
) -> list[tuple[ExchangeName, bytes]]:
    """A closed recording of ``blocks`` blocks (one flush each) received from ``start_ns`` on; returns
    what was recorded."""
    recorder = Recorder(path, **options)
    written = []
    for block in range(blocks):
        for index in range(per_block):
            market = MARKETS[(block + index) % 4]
            payload = b'{"u":%d,"b":[["60000.%d","0.5"]],"pad":"%s"}' % (block * 100 + index, index, b"x" * index * 9)
            recorder.record(market, RecordKind.WS_TEXT, payload, recv_ns=start_ns + block * 100 + index)
            written.append((market, payload))
        recorder.flush()
    recorder.close()
    return written


def _block_ends(data: bytes) -> dict[int, int]:
    """Byte offset of every block boundary -> records in the blocks before it."""
    ends = {FILE_HEADER.size: 0}
    count = 0
    for block in recording_layout.blocks(data)[:-1]:
        count += block.records
        ends[block.end] = count
    return ends


def _read(path: Path) -> tuple[list[Record], RecordingReader]:
    """The records and damage of ``path``; the compiled path's blocks must hold the same, up to the same damage."""
    reader = RecordingReader([path])
    records = list(reader)
    blocks = RecordingReader([path])
    if blocks.single_native():
        fields = [f for raw, count in blocks.blocks() for f, _ in records_of(raw, count)]
        assert fields == [
            (r.recv_ns, r.wall_ns, MARKET_CODES[r.market], int(r.kind), r.venue_symbol.encode(), r.payload)
            for r in records
        ]
        assert (blocks.damage, blocks.records) == (reader.damage, reader.records)
        # A survey that decompresses every block finds what the blocks hold, up to the same damage;
        # one that decompresses none stops no later, and only at a damage the blocks also stop at.
        every = RecordingReader([path])
        assert [(b.raw, b.records) for b in every.surveyed_blocks(lambda summary: True)] == list(
            RecordingReader([path]).blocks()
        )
        assert (every.damage, every.records) == (reader.damage, reader.records)
        summaries = RecordingReader([path])
        surveyed = list(summaries.surveyed_blocks(lambda summary: False))
        assert summaries.records >= reader.records
        if summaries.damage is not None:
            assert reader.damage is not None and summaries.damage.offset >= reader.damage.offset
        for block in surveyed:
            if block.summary is not None:
                assert block.raw is None
    return records, reader


def _written(path: Path, version: int, **options: int) -> list[tuple[ExchangeName, bytes]]:
    """``_write_sample`` in format ``version``, as that version's recorder wrote it (1: without
    summaries; 2: the layout of 3, without its stream drops, which the sample has none of)."""
    written = _write_sample(path, **options)
    if version == 1:
        path.write_bytes(recording_layout.as_version_1(path.read_bytes()))
    elif version != VERSION:
        path.write_bytes(recording_layout.with_version(path.read_bytes(), version))
    return written


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_file_cut_anywhere_reads_up_to_the_last_whole_block(tmp_path: Path, version: int) -> None:
    full = tmp_path / "full.arbrec"
    written = _written(full, version)
    data = full.read_bytes()
    ends = _block_ends(data)
    records, reader = _read(full)
    assert reader.damage is None and [(r.market, r.payload) for r in records] == written

    cut = tmp_path / "cut.arbrec"
    for length in range(FILE_HEADER.size, len(data)):
        cut.write_bytes(data[:length])
        records, reader = _read(cut)
        damage = reader.damage
        assert damage is not None, length
        boundary = max(end for end in ends if end <= length)
        assert (damage.offset, damage.records, len(records)) == (boundary, ends[boundary], ends[boundary]), length
        assert [(r.market, r.payload) for r in records] == written[: len(records)]
        assert damage.path == str(cut)
        if length == boundary:
            assert "no end marker" in damage.reason

    for length in range(FILE_HEADER.size):
        cut.write_bytes(data[:length])
        records, reader = _read(cut)
        assert records == [] and reader.damage is not None and reader.damage.offset == 0


def test_each_block_summary_says_what_its_records_hold(tmp_path: Path) -> None:
    path = tmp_path / "mixed.arbrec"
    recorder = Recorder(path, block_records=4)
    rng = random.Random(7)
    kinds = list(RecordKind)
    for index in range(200):
        kind = rng.choice(kinds)
        symbol = rng.choice(["", "BTC_USDT", "ETH_USDT", "BTCUSDT"])
        recorder.record(rng.choice(MARKETS), kind, b"{}", recv_ns=index * rng.randint(1, 9), venue_symbol=symbol)
    assert recorder.close().error is None
    layout = recording_layout.blocks(path.read_bytes())
    reader = RecordingReader([path])
    surveyed = list(reader.surveyed_blocks(lambda summary: True))
    assert reader.damage is None and len(surveyed) == len(layout) - 1 == 50
    for block in surveyed:
        assert block.raw is not None and block.summary is not None
        records = records_of(block.raw, block.records)
        others = {(f[2], f[4]) for f, _ in records if f[3] != RecordKind.REST_RESPONSE and f[4]}
        responses = sum(1 for f, _ in records if f[3] == RecordKind.REST_RESPONSE)
        assert block.summary == (records[-1][0][0], responses, tuple(sorted(others)))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_corrupted_byte_stops_reading_at_its_block_and_says_where(tmp_path: Path, version: int) -> None:
    full = tmp_path / "full.arbrec"
    written = _written(full, version, blocks=4, per_block=5)
    data = full.read_bytes()
    ends = _block_ends(data)
    bad = tmp_path / "bad.arbrec"
    for position in range(len(data)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0x5A
        bad.write_bytes(bytes(corrupted))
        records, reader = _read(bad)
        damage = reader.damage
        assert damage is not None, position
        assert [(r.market, r.payload) for r in records] == written[: len(records)], position
        if position >= FILE_HEADER.size:
            block_start = max(end for end in ends if end <= position)
            assert damage.offset == min(block_start, max(ends)), position
            assert damage.records == len(records) == ends[damage.offset], position
        else:
            assert records == [] and damage.offset == 0, position


def test_rotation_by_size_writes_parts_that_read_back_in_order(tmp_path: Path) -> None:
    base = tmp_path / "md.arbrec"
    written = _write_sample(base, blocks=12, per_block=20, rotate_bytes=1_500)
    parts = recording_files(base)
    assert len(parts) >= 3
    assert not base.exists()
    assert [p.name.split(".")[1] for p in parts] == [f"{n:05d}" for n in range(1, len(parts) + 1)]
    reader = read_records(base)
    records = list(reader)
    assert reader.damage is None
    assert [(r.market, r.payload) for r in records] == written
    for part in parts:
        alone = RecordingReader([part])
        assert list(alone) and alone.damage is None

    more = _write_sample(base, blocks=2, per_block=3, rotate_bytes=1_500)  # a second recording never overwrites
    assert len(recording_files(base)) > len(parts)
    assert len(list(read_records(base))) == len(written) + len(more)


def test_parts_past_99999_are_found_in_number_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Part names grow a sixth digit at 100000; only five-digit names were looked for, so a replay
    stopped at part 99999 without a word (about 28 hours of one-second parts)."""
    base = tmp_path / "md.arbrec"
    monkeypatch.setattr(Recorder, "_first_part", lambda self: 99_998)
    written = _write_sample(base, blocks=8, per_block=10, rotate_bytes=1)
    parts = recording_files(base)
    assert [p.name.split(".")[1] for p in parts][:4] == ["99998", "99999", "100000", "100001"]
    reader = read_records(base)
    assert [(r.market, r.payload) for r in reader] == written and reader.damage is None
    monkeypatch.undo()
    more = _write_sample(base, blocks=1, per_block=2, rotate_bytes=1)  # a restart numbers on after the last
    assert recording_files(base)[-1].name.split(".")[1] == str(len(parts) + 99_998)
    assert len(list(read_records(base))) == len(written) + len(more)
    found = recording_files(base)
    for odd in ("md.12345.x", "md.1234.20260101T000000Z.arbrec", "md.\u0661\u0662\u0663\u0664\u0665.20260101T000000Z.arbrec"):
        (tmp_path / odd).write_bytes(b"")  # not parts: a suffix missing, four digits, digits not ASCII
    assert recording_files(base) == found


FULL_DISK_CHILD = """
import random, resource, signal, sys
from pathlib import Path
from arb.replay.recorder import Recorder, RecordKind
from arb.types import ExchangeName
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))
recorder = Recorder(Path(sys.argv[1]), block_records=10)
rng = random.Random(1)
for i in range(200):
    recorder.record(ExchangeName.GATEIO, RecordKind.WS_TEXT, bytes(rng.randrange(256) for _ in range(300)), recv_ns=i)
    if i % 10 == 9:
        recorder.flush()
stats = recorder.close()
print(stats.records + stats.dropped, stats.error is not None, recorder._thread.is_alive())
"""


def test_a_full_disk_is_reported_once_without_a_traceback_from_the_writer(tmp_path: Path) -> None:
    """Closing the file after a failed write flushed what was left in its buffer again and raised
    out of the writer thread: a bare traceback on stderr."""
    child = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path / "full.arb")],  # cwd: the installed arb
                           capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path)
    assert child.stdout.split() == ["200", "True", "False"]  # every record written or counted dropped
    assert "Traceback" not in child.stderr, child.stderr


def _record_block(recorder: Recorder, block: int) -> None:
    for index in range(5):
        recorder.record(ExchangeName.GATEIO, RecordKind.WS_TEXT, b"{}", recv_ns=block * 10 + index)
    recorder.flush()


@pytest.mark.parametrize("rotate_bytes", [None, 1_000_000], ids=["one-file", "rotating"])
@pytest.mark.parametrize("blocks_after", [2, 0], ids=["then-more-blocks", "then-closed"])
def test_a_file_removed_while_recording_stops_the_recording_with_an_error_naming_it(
    tmp_path: Path, rotate_bytes: int | None, blocks_after: int
) -> None:
    """Writes to a removed file still succeed: the recorder went on into a file no one could open
    again and closed without an error, so ``arb record`` listed a path that did not exist as recorded."""
    directory = tmp_path / "out"
    directory.mkdir()
    recorder = Recorder(directory / "md.arbrec", rotate_bytes=rotate_bytes)
    _record_block(recorder, 0)
    (name,) = recorder.stats().files
    shutil.rmtree(directory)  # a cleaner sweeping the directory
    for block in range(1, blocks_after + 1):
        _record_block(recorder, block)
    stats = recorder.close()
    assert stats.error == f"{name} was removed while recording"
    assert (stats.records, stats.dropped) == (5, 5 * blocks_after)


def test_a_part_that_cannot_be_created_is_the_one_the_error_names(tmp_path: Path) -> None:
    """The error named the part already written, which was fine, not the one that could not be created."""
    directory = tmp_path / "out"
    directory.mkdir()
    recorder = Recorder(directory / "md.arbrec", rotate_bytes=1)
    _record_block(recorder, 0)
    (written,) = recorder.stats().files
    os.link(written, tmp_path / "kept.arbrec")  # the part lives on elsewhere; its directory goes
    shutil.rmtree(directory)
    _record_block(recorder, 1)
    stats = recorder.close()
    assert stats.files == (written,) and stats.error is not None
    assert stats.error.startswith(f"creating {directory / 'md.00002.'}") and "FileNotFoundError" in stats.error


def test_the_wall_clock_follows_this_machine_unless_the_recording_fixes_its_offset(tmp_path: Path) -> None:
    def wall_offsets(recorder: Recorder, path: Path) -> set[int]:
        for recv_ns in (5_000, 6_000_000_000):  # stamps of a synthetic clock, not this machine's
            recorder.record(ExchangeName.MEXC, RecordKind.WS_TEXT, b"{}", recv_ns=recv_ns)
        assert recorder.close().error is None
        return {record.wall_ns - record.recv_ns for record in read_records(path)}

    fixed = 1_700_000_000 * 1_000_000_000
    assert wall_offsets(Recorder(tmp_path / "fixed.arbrec", wall_offset_ns=fixed), tmp_path / "fixed.arbrec") == {fixed}
    before = time.time_ns() - time.monotonic_ns()
    (machine,) = wall_offsets(Recorder(tmp_path / "machine.arbrec"), tmp_path / "machine.arbrec")
    assert abs(machine - before) < 1_000_000_000  # this machine's offset, whatever its boot time


def test_a_frame_naming_no_readable_symbol_is_recorded_unnamed_and_the_file_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "odd.arbrec"
    recorder = Recorder(path)
    seen: list[bytes] = []
    tap = recorder.wrap_messages(ExchangeName.GATEIO, GateioSpotMarketData(), lambda m, b, last, ns: seen.append(bytes(m)))

    def update(symbol: bytes) -> bytes:
        return (b'{"time":1,"channel":"spot.order_book_update","event":"update","result":{"t":1,"E":1,"s":"'
                + symbol + b'","U":1,"u":2,"b":[],"a":[]}}')

    frames = [update(b"BTC_USDT"), update("BTC\u00e9_USDT".encode()), update(b"A" * 70_000), update(b"ETH_USDT")]
    for n, frame in enumerate(frames):
        tap(memoryview(frame), False, True, 10 + n)
    stats = recorder.close()
    assert stats.error is None and stats.records == 4 and seen == frames
    records, reader = _read(path)
    assert reader.damage is None
    assert [(r.venue_symbol, r.payload) for r in records] == [
        ("BTC_USDT", frames[0]), ("", frames[1]), ("", frames[2]), ("ETH_USDT", frames[3])
    ]


@pytest.mark.parametrize("symbol", [b"BTC\xc3\xa9", b"BTC"], ids=["non-ascii", "cut"])
def test_a_summary_that_does_not_hold_a_readable_symbol_is_damage(tmp_path: Path, symbol: bytes) -> None:
    path = tmp_path / "sample.arbrec"
    _write_sample(path, blocks=3, per_block=2)
    data = path.read_bytes()
    block = recording_layout.blocks(data)[1]
    # A summary with a CRC that matches, naming a symbol no reader takes (or longer than it holds).
    bad_summary = SUMMARY_HEAD.pack(1, 0, 1) + SUMMARY_SYMBOL.pack(MARKET_CODES[ExchangeName.GATEIO], 5) + symbol
    header = block_header(block.magic, block.stored, block.raw_len, block.records, bad_summary)
    path.write_bytes(data[: block.offset] + header + bad_summary + block.stored + data[block.end :])
    reader = RecordingReader([path])
    surveyed = list(reader.surveyed_blocks(lambda summary: False))
    assert len(surveyed) == 1 and reader.damage is not None
    assert reader.damage.offset == block.offset and "block summary unreadable" in reader.damage.reason


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "md.arbrec"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        Recorder(path)
    assert path.read_bytes() == b"keep"


def test_a_damaged_part_stops_the_whole_replay_there(tmp_path: Path) -> None:
    base = tmp_path / "md.arbrec"
    _write_sample(base, blocks=12, per_block=20, rotate_bytes=1_500)
    parts = recording_files(base)
    second = parts[1]
    second.write_bytes(second.read_bytes()[:-30])
    first_count = len(list(RecordingReader([parts[0]])))
    reader = read_records(base)
    records = list(reader)
    assert reader.damage is not None and reader.damage.path == str(second)
    assert len(records) == first_count + reader.damage.records


def _first_part_records(parts: list[Path]) -> int:
    return len(list(RecordingReader(parts[:1])))


def test_a_missing_part_is_damage_where_the_hole_is(tmp_path: Path) -> None:
    """A removed middle part is damage at the part after it: the recording replays up to the hole,
    as a damaged one does up to its damage, and not past it (the books would replay across the hole
    as if nothing had happened there). A later stretch of parts read alone, from its first part on,
    has no hole."""
    base = tmp_path / "md.arbrec"
    written = _write_sample(base, blocks=20, per_block=20, rotate_bytes=1_500)
    parts = recording_files(base)
    assert len(parts) >= 4
    before_hole = written[: _first_part_records(parts)]

    def replayed_up_to_the_hole(after: Path, reason: str) -> None:
        reader = read_records(base)
        assert [(r.market, r.payload) for r in reader] == before_hole and reader.damage is not None
        assert (reader.damage.path, reader.damage.offset, reader.damage.records, reader.damage.reason) == (
            str(after), 0, 0, reason
        )
        blocks = read_records(base)
        assert blocks.single_native() and sum(count for _, count in blocks.blocks()) == len(before_hole)
        assert blocks.damage == reader.damage

    parts[1].unlink()
    replayed_up_to_the_hole(parts[2], "part 2 of this recording not given or missing")
    parts[2].unlink()
    replayed_up_to_the_hole(parts[3], "parts 2 to 3 of this recording not given or missing")
    later = read_records(*parts[3:])
    assert list(later) and later.damage is None


def test_a_recording_given_from_a_later_part_on_names_the_parts_before_it(tmp_path: Path) -> None:
    """A later part read alone read without a word, though the recording's first parts hold its
    instrument lists and first snapshots. It is no hole (every file given is read, no damage),
    but the parts before it are named, as the files beside it tell: a recording a restarted
    recorder wrote beside another began at its own first part, numbered on from the other's."""
    base = tmp_path / "md.arbrec"
    _write_sample(base, blocks=20, per_block=20, rotate_bytes=1_500)
    parts = recording_files(base)
    assert len(parts) >= 4

    def later_starts(*paths: Path) -> list[str]:
        reader = read_records(*paths)
        assert list(reader) and reader.damage is None
        return reader.later_starts

    assert later_starts(base) == later_starts(parts[0]) == []
    assert later_starts(*parts[2:]) == [
        f"{parts[2]}: replayed from part 3 of its recording; parts 1 to 2 not given or missing, and with them "
        "what the recording began with (its instrument lists, the books' first snapshots)"
    ]
    assert later_starts(parts[1])[0].startswith(f"{parts[1]}: replayed from part 2 of its recording; part 1 not given")
    restarted = tmp_path / "restarted"
    restarted.mkdir()
    moved = restarted / parts[3].name  # its earlier parts elsewhere: not known to be another recording's
    shutil.copy(parts[3], moved)
    assert "; parts 1 to 3 not given" in later_starts(moved)[0]
    _write_sample(base, blocks=8, per_block=20, rotate_bytes=1_500)
    second = recording_files(base)[len(parts):]
    assert len(second) >= 2
    assert later_starts(*second) == []  # began after the first recording's last part
    assert later_starts(base) == []
    number = len(parts) + 1
    assert f"part {number + 1} of its recording; part {number} not given" in later_starts(second[1])[0]
    assert later_starts(second[1].rename(tmp_path / "renamed.arbrec"))[0].startswith(
        f"{tmp_path / 'renamed.arbrec'}: replayed from part {number + 1} of its recording; parts 1 to {number} "
    )


def test_a_part_named_twice_is_read_once_and_a_copy_of_one_is_named(tmp_path: Path) -> None:
    base = tmp_path / "md.arbrec"
    written = _write_sample(base, blocks=12, per_block=20, rotate_bytes=1_500)
    parts = recording_files(base)
    reader = read_records(base, parts[1])  # the --out name already stands for every part
    assert [(r.market, r.payload) for r in reader] == written and reader.damage is None
    copy = tmp_path / "copy.arbrec"
    copy.write_bytes(parts[1].read_bytes())
    reader = read_records(*parts, copy)
    # Which of the two files is part 2 is not known: the recording replays up to it.
    assert [(r.market, r.payload) for r in reader] == written[: _first_part_records(parts)]
    assert reader.damage is not None
    assert reader.damage.reason in (f"part 2 of this recording is also {p}" for p in (parts[1], copy))


@pytest.mark.parametrize("header", [0, 10, FILE_HEADER.size], ids=["empty", "cut", "bad CRC"])
def test_a_part_whose_header_cannot_be_read_stops_its_recording_there_and_no_other(tmp_path: Path, header: int) -> None:
    """A recorder that died (or found the disk full) at a rotation leaves the new part empty or
    its header cut: the whole parts before it replay, on both readers, as does the recording a
    restarted recorder writes beside it, and the damage names that part."""
    base = tmp_path / "md.arbrec"
    written = _write_sample(base, blocks=12, per_block=20, rotate_bytes=1_500)
    parts = recording_files(base)
    last = parts[-1].name.split(".")[1]
    broken = parts[-1].with_name(parts[-1].name.replace(f".{last}.", f".{int(last) + 1:05d}."))
    head = bytearray(parts[0].read_bytes()[:header])
    if header == FILE_HEADER.size:
        head[-1] ^= 0xFF
    broken.write_bytes(bytes(head))
    reader = read_records(base)
    assert [(r.market, r.payload) for r in reader] == written
    assert reader.damage is not None and (reader.damage.path, reader.damage.offset) == (str(broken), 0)
    assert reader.damage.reason.startswith("file header CRC" if header == FILE_HEADER.size else "file header cut")
    blocks = read_records(base)
    assert blocks.single_native() and sum(count for _, count in blocks.blocks()) == len(written)
    assert blocks.damage == reader.damage
    restarted = _write_sample(base, blocks=3, per_block=5, start_ns=1_000_000, rotate_bytes=1_500)
    reader = read_records(base)
    assert [(r.market, r.payload) for r in reader] == written + restarted and reader.damage == blocks.damage


def test_a_file_of_a_later_format_version_is_refused_by_its_header(tmp_path: Path) -> None:
    """Files are written in format 3 (which has stream drops); a reader that does not know a version
    says so, where a reader of format 2 would otherwise have taken a drop for damaged records. The
    other files given still read."""
    path = tmp_path / "md.arbrec"
    written = _write_sample(path, blocks=2, per_block=3)
    assert struct.unpack_from("<H", path.read_bytes(), 6)[0] == VERSION == 3
    later = tmp_path / "later.arbrec"
    later.write_bytes(recording_layout.with_version(path.read_bytes(), VERSION + 1))
    reader = read_records(path, later)
    assert [(r.market, r.payload) for r in reader] == written and reader.damage is not None
    assert (reader.damage.path, reader.damage.offset, reader.damage.reason) == (
        str(later), 0, f"format version {VERSION + 1} is not supported (this reader reads 1 to {VERSION})"
    )


def test_a_recording_cut_by_a_crash_does_not_stop_the_one_restarted_beside_it(tmp_path: Path) -> None:
    """A recorder killed mid-block and restarted on the same --out writes a new recording beside the
    cut one: the merged read takes the first up to its cut and the second whole, and names the cut."""
    base = tmp_path / "md.arbrec"
    first = _write_sample(base, blocks=12, per_block=20, rotate_bytes=1_500)
    cut_parts = recording_files(base)
    last = cut_parts[-1]
    last.write_bytes(last.read_bytes()[:-30])  # no end marker, the last block cut short
    whole_first = len(list(RecordingReader(cut_parts)))
    assert 0 < whole_first < len(first)
    second = _write_sample(base, blocks=3, per_block=5, start_ns=1_000_000, rotate_bytes=1_500)
    reader = read_records(base)
    records = list(reader)
    assert reader.damage is not None and reader.damage.path == str(last)
    assert len(records) == whole_first + len(second)
    assert [(r.market, r.payload) for r in records[whole_first:]] == second  # received after the crash


def test_record_markets_stops_books_and_counts_messages(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "one.arbrec", block_interval_ms=20)
    manager = ConfigurationManager(environ={})
    manager.load_configuration()

    async def record() -> dict[ExchangeName, int]:
        async with SimCluster(SimConfig(symbols=("BTC/USDT",), venues=("gateio",))) as cluster:
            factory = ExchangeFactory(manager, sim_urls=cluster.urls())
            connector = public_connector(factory, ExchangeName.GATEIO, True)
            try:
                return await record_markets({ExchangeName.GATEIO: connector}, {ExchangeName.GATEIO: ["BTC/USDT"]},
                                            recorder, 0.5)
            finally:
                await connector.close()

    delivered = asyncio.run(record())
    stats = recorder.close()
    # + the instrument list (the book synced from its first push, the whole book marked full: no REST snapshot)
    assert stats.records == delivered[ExchangeName.GATEIO] + 1
    assert stats.blocks > 1


def test_a_symbol_the_market_does_not_list_fails_the_recording_before_anything_is_recorded(tmp_path: Path) -> None:
    """``arb record`` then removes the empty file, so that the same --out can be tried again."""
    recorder = Recorder(tmp_path / "none.arbrec", block_interval_ms=20)
    manager = ConfigurationManager(environ={})
    manager.load_configuration()

    async def record() -> None:
        async with SimCluster(SimConfig(symbols=("BTC/USDT",), venues=("gateio",))) as cluster:
            factory = ExchangeFactory(manager, sim_urls=cluster.urls())
            connector = public_connector(factory, ExchangeName.GATEIO, True)
            try:
                await record_markets({ExchangeName.GATEIO: connector}, {ExchangeName.GATEIO: ["BTC/USDT", "SOL/USDT"]},
                                     recorder, 0.5)
            finally:
                await connector.close()

    with pytest.raises(InstrumentError, match="SOL/USDT"):
        asyncio.run(record())
    assert recorder.close().records == 0


def test_a_dropped_stream_is_recorded_where_it_dropped_and_replays_as_the_live_books_saw_it(tmp_path: Path) -> None:
    """The venue drops the stream once: the recording holds that drop (and not the close that ends
    the recording) between the messages before and after it, and the replayed book resyncs for a
    reconnect, as the live one did, rather than for a sequence gap."""
    path = tmp_path / "drop.arbrec"
    recorder = Recorder(path, block_interval_ms=20)
    manager = ConfigurationManager(environ={})
    manager.load_configuration()
    market = ExchangeName.GATEIO

    async def record() -> dict[str, int]:
        async with SimCluster(SimConfig(symbols=("BTC/USDT",), venues=("gateio",))) as cluster:
            factory = ExchangeFactory(manager, sim_urls=cluster.urls())
            connector = public_connector(factory, market, True)
            try:
                await connector.start_books(["BTC/USDT"], tap=recorder)
                sync = connector.book_sync()
                assert sync is not None
                await eventually(lambda: sync.stats()["BTC/USDT"].applied > 0, what="the book in sync")
                cluster.venues["gateio"].inject_stream_fault(market, StreamFaultKind.DISCONNECT)
                before = sync.stats()["BTC/USDT"].applied
                await eventually(lambda: sync.stats()["BTC/USDT"].snapshots == 2 and
                                 sync.stats()["BTC/USDT"].applied > before + 5, what="the book in sync again")
                resyncs = dict(sync.stats()["BTC/USDT"].resyncs)
                await connector.stop_books()
                return resyncs
            finally:
                await connector.close()

    live_resyncs = asyncio.run(record())
    assert recorder.close().error is None
    assert live_resyncs == {"reconnect": 1}
    records = list(reader := read_records(path))
    assert reader.damage is None
    kinds = [r.kind for r in records]
    assert kinds.count(RecordKind.DISCONNECT) == 1
    drop = kinds.index(RecordKind.DISCONNECT)
    assert (records[drop].market, records[drop].venue_symbol, records[drop].payload) == (market, "", b"")
    assert RecordKind.WS_TEXT in kinds[:drop] and RecordKind.WS_TEXT in kinds[drop:]
    # The resync's book: the full push the new subscription starts with, as the first one's before the drop.
    assert [b'"full":true' in r.payload for r in records if r.kind is RecordKind.WS_TEXT].count(True) == 2
    assert b'"full":true' in next(r.payload for r in records[drop:] if b'"event":"update"' in r.payload)
    for compiled in (True, False):
        result = backtest([path], manager, BacktestSettings(compiled=compiled))
        assert result.damage is None
        assert dict(result.books["gateio BTC/USDT"].resyncs) == live_resyncs


def test_a_backtest_leaves_out_the_cryptofeed_frames_of_channels_the_engine_does_not_subscribe_to(
    shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """cryptofeed subscribed tickers, trades and candlesticks too: a backtest fed them to the books,
    which warned about each kind once a minute of the recording as frames it cannot read."""
    files = sorted((shared_data / "cryptofeed").glob("GATEIO*"))
    everything = list(RecordingReader(files))
    engine = list(RecordingReader(files, engine_frames_only=True))
    left_out = [r for r in everything if r not in engine]
    assert left_out and all(b"tickers" in r.payload or b"trades" in r.payload or b"candlesticks" in r.payload
                            or b"book_ticker" in r.payload for r in left_out)
    assert [r for r in engine if b"order_book_update" in r.payload] == [
        r for r in everything if b"order_book_update" in r.payload
    ]
    manager = ConfigurationManager(None, environ={})
    manager.load_configuration(dry_run=True)
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.book_sync"):
        backtest(files, manager, BacktestSettings())
    assert not [r for r in caplog.records if "no kind the stream reads" in r.getMessage()]


def test_cryptofeed_recordings_read_through_the_same_reader(shared_data: Path) -> None:
    files = sorted((shared_data / "cryptofeed").glob("GATEIO*"))
    reader = RecordingReader(files)
    records = list(reader)
    assert reader.damage is None
    expected = sorted((frame.raw for path in files for frame in read_recording(path)))
    assert sorted(r.payload for r in records) == expected
    walls = [r.wall_ns for r in records]
    assert walls == sorted(walls)
    spot_updates = [r for r in records if r.market is ExchangeName.GATEIO and b"order_book_update" in r.payload
                    and b'"update"' in r.payload]
    assert len(spot_updates) == 172 and all(r.venue_symbol for r in spot_updates)
    snapshots = [r for r in records if r.kind is RecordKind.REST_SNAPSHOT]
    assert len(snapshots) == 20 and {r.venue_symbol for r in snapshots} >= {"NEO_BTC", "RDNT_USDT"}


def test_a_cut_cryptofeed_file_reads_up_to_the_cut(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "cryptofeed" / "GATEIO.ws.1.0"
    data = source.read_bytes()
    cut_at = len(data) // 2
    cut = tmp_path / "GATEIO.ws.1.0"
    cut.write_bytes(data[:cut_at])
    line_start = data.rfind(b"\n", 0, cut_at) + 1
    reader = RecordingReader([cut])
    records = list(reader)
    assert reader.damage is not None and reader.damage.offset == line_start
    complete = [frame.raw for frame in read_recording(source)][: len(records)]
    assert [r.payload for r in records] == complete
    assert reader.damage.records == len(records) > 0


@pytest.mark.parametrize("timestamp", [b"\xff", b"nan"], ids=["not UTF-8", "nan"])
def test_a_cryptofeed_timestamp_that_does_not_read_is_damage_where_its_line_starts(
    shared_data: Path, tmp_path: Path, timestamp: bytes
) -> None:
    """The parser names no line for a timestamp that is not UTF-8 or reads nan: the damage is placed
    at the start of that line all the same, past the connection and client lines it skips."""
    lines = (shared_data / "cryptofeed" / "GATEIO.ws.1.0").read_bytes().split(b"\n")
    frames = [n for n, line in enumerate(lines) if b": " in line and b" " not in line.partition(b": ")[0]]
    assert frames[0] > 1  # the first server frame follows a connection line and client frames
    path = tmp_path / "GATEIO.ws.1.0"
    for index in (frames[0], frames[len(frames) // 2]):
        broken = list(lines)
        broken[index] = timestamp + b": " + lines[index].partition(b": ")[2]
        path.write_bytes(b"\n".join(broken))
        reader = RecordingReader([path])
        records = list(reader)
        assert reader.damage is not None
        assert reader.damage.offset == sum(len(line) + 1 for line in lines[:index])
        assert reader.damage.records == len(records) == frames.index(index)
        assert reader.damage.reason.startswith(f"{path.name}:{index + 1}: ")
