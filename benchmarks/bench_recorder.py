"""Recording cost: what the tap adds on the frame callback, and the bytes each frame takes on disk.

Frames are the 689 real Gate server frames of ``cryptofeed/GATEIO.ws.1.0`` and
``GATEIO_FUTURES.ws.1.0`` (depth updates, tickers, trades, acks), each once, so zstd sees
no artificial repeats. ``callback``: each timed call passes every frame (as the borrowed
memoryviews picows lends) through a handler; the baseline is the bare handler, the other
the recorder's tap in front of it, with the writer thread running. ``block``: encoding +
zstd-compressing them as one block, as the writer does; the baseline compresses the same
payload bytes, concatenated beforehand, with a bare ``zstandard`` compressor at the
recorder's level (one block of 689 frames, as the recorder is configured here), so the ratio
is what copying, record headers, summary, CRCs and the file write add to compression alone.
extra_info holds the median ns per frame and the stored bytes per frame (headers included;
the baseline's are the zstd frame alone).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from arb.exchanges.gateio.market_data import GateioFuturesMarketData
from arb.replay import RecordingReader
from arb.replay.recorder import Recorder
from arb.sim.market import read_recording
from arb.types import ExchangeName

ROUNDS = 40
ZSTD_LEVEL = 3  # the recorder's default level, passed explicitly below


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[memoryview]:
    files = ("GATEIO.ws.1.0", "GATEIO_FUTURES.ws.1.0")
    return [memoryview(f.raw) for name in files for f in read_recording(shared_data / "cryptofeed" / name)]


def _per_frame(benchmark: pytest.FixtureRequest, frames: list[memoryview]) -> None:
    median_ns = benchmark.stats.stats.median * 1e9 / len(frames)  # type: ignore[attr-defined]
    benchmark.extra_info["median_ns_per_frame"] = round(median_ns, 1)  # type: ignore[attr-defined]


def _consume(payload: memoryview, is_binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
    pass


def _feed(handler: object, frames: list[memoryview]) -> None:
    call = handler  # the loop a websocket listener runs, one call per message
    assert callable(call)
    for index, frame in enumerate(frames):
        call(frame, False, True, index)


def test_callback_baseline(benchmark: pytest.FixtureRequest, frames: list[memoryview]) -> None:
    benchmark.group = "recorder callback, 689 frames"  # type: ignore[attr-defined]
    benchmark.pedantic(_feed, args=(_consume, frames), rounds=ROUNDS, warmup_rounds=2)  # type: ignore[attr-defined]
    _per_frame(benchmark, frames)
    assert _consume(frames[0], False, True, 0) is None


def test_callback_recording(benchmark: pytest.FixtureRequest, frames: list[memoryview], tmp_path: Path) -> None:
    benchmark.group = "recorder callback, 689 frames"  # type: ignore[attr-defined]
    recorder = Recorder(tmp_path / "bench.arbrec")
    handler = recorder.wrap_messages(ExchangeName.GATEIO_FUTURES, GateioFuturesMarketData(), _consume)
    benchmark.pedantic(_feed, args=(handler, frames), rounds=ROUNDS, warmup_rounds=2)  # type: ignore[attr-defined]
    _per_frame(benchmark, frames)
    stats = recorder.close()
    assert stats.records == len(frames) * (ROUNDS + 2) and stats.error is None
    assert sum(1 for _ in RecordingReader(stats.files)) == stats.records


def test_block_encode_and_compress(benchmark: pytest.FixtureRequest, frames: list[memoryview], tmp_path: Path) -> None:
    benchmark.group = "recorder writer, one block of 689 frames"  # type: ignore[attr-defined]
    recorder = Recorder(tmp_path / "block.arbrec", block_records=len(frames), block_interval_ms=3_600_000, level=ZSTD_LEVEL)
    recorder.wrap_messages(ExchangeName.GATEIO_FUTURES, GateioFuturesMarketData(), _consume)

    def block() -> None:
        for index, frame in enumerate(frames):
            recorder.record(ExchangeName.GATEIO_FUTURES, 1, frame, recv_ns=index)  # type: ignore[arg-type]
        recorder.flush()

    benchmark.pedantic(block, rounds=ROUNDS, warmup_rounds=1)  # type: ignore[attr-defined]
    _per_frame(benchmark, frames)
    stats = recorder.close()
    raw_per_frame = sum(len(f) for f in frames) / len(frames)
    benchmark.extra_info["payload_bytes_per_frame"] = round(raw_per_frame, 1)  # type: ignore[attr-defined]
    benchmark.extra_info["stored_bytes_per_frame"] = round(stats.stored_bytes / stats.records, 1)  # type: ignore[attr-defined]
    assert stats.blocks == ROUNDS + 1 and stats.records == len(frames) * (ROUNDS + 1)
    assert stats.stored_bytes < raw_per_frame * stats.records / 3


def test_block_zstd_baseline(benchmark: pytest.FixtureRequest, frames: list[memoryview]) -> None:
    """Baseline: the block's payload bytes, already concatenated, compressed by zstandard alone."""
    benchmark.group = "recorder writer, one block of 689 frames"  # type: ignore[attr-defined]
    raw = b"".join(frames)
    compress = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress
    stored = benchmark.pedantic(compress, args=(raw,), rounds=ROUNDS, warmup_rounds=1)  # type: ignore[attr-defined]
    _per_frame(benchmark, frames)
    benchmark.extra_info["payload_bytes_per_frame"] = round(len(raw) / len(frames), 1)  # type: ignore[attr-defined]
    benchmark.extra_info["stored_bytes_per_frame"] = round(len(stored) / len(frames), 1)  # type: ignore[attr-defined]
    assert zstandard.ZstdDecompressor().decompress(stored) == raw
