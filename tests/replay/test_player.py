"""arb.replay.player: a recorded dry run replays to the same decisions; determinism; damage; cryptofeed files."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import random
import re
import signal
import struct
import subprocess
import sys
import zlib
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard

import arb.replay.player as player
from arb import ArbitrageController
from arb.balances import BalanceMonitor
from arb.config import ConfigurationManager
from arb.hedges import HedgeBook
from arb.controller import ENTRY_ORDER_BUDGET, dry_run_cluster
from arb.exchanges.gateio.constants import SPOT_ORDER_PLACE_LIMIT as GATEIO_SPOT_ORDER_PLACE_LIMIT
from arb.exchanges.models import Fill
from arb.journal import Journal
from arb.replay.player import BacktestResult, BacktestSettings, LatencyModel, backtest
from arb.replay.reader import read_records
from arb.replay.recorder import Recorder, RecordKind, block_header, recording_files
from arb.replay.report import TradeLog
from arb.risk import RiskManager
from arb.sim.cluster import SimConfig
from arb.sim.market import Dislocation
from arb.types import ArbitrageOpportunity, ArbitrageState, ExchangeName, ExecutionResult
from arb_core.book import ASK, BID, DeltaBatch, OrderBook
import recording_layout
from simulated_recording import START_NS, WALL_OFFSET_NS, record_simulated

SECOND = 1_000_000_000
# A still market (no walk, no noise) moved only by the dislocation, and MEXC USDT for one
# 100 USDT trade (what is left is under Gate's 3 USDT minimum, and the balance caps the
# scanner): the live run's decisions then do not depend on how long its executions took.
DEPOSITS = {"USDT": D("102"), "BTC": D("10"), "ETH": D("200")}
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
"""


def _opportunity_key(o: ArbitrageOpportunity) -> tuple[object, ...]:
    return (o.symbol, o.opportunity_type, o.buy_exchange, o.sell_exchange, o.buy_price, o.sell_price, o.max_quantity,
            o.total_profit_estimate, o.profit_margin_bps)


def _orders(results: list[ExecutionResult]) -> list[tuple[object, ...]]:
    return [(leg.exchange, leg.side, leg.limit_price, leg.requested_quantity) for r in results for leg in r.legs]


def _manager(tmp_path: Path) -> ConfigurationManager:
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    return manager


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ConfigurationManager, list[ArbitrageOpportunity], list[ExecutionResult]]:
    """A dry run on the simulator with a scheduled dislocation, its market data recorded."""
    tmp_path = tmp_path_factory.mktemp("recorded")
    manager = _manager(tmp_path)
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=SECOND // 2, bps=-80
    )
    sim = SimConfig(symbols=manager.config.symbols, deposits=DEPOSITS, noise_ticks=0, volatility_ppm=0)
    cluster = dry_run_cluster(manager.config, dislocations=(dislocation,), random_per_minute=0, sim_config=sim)
    path = tmp_path / "run.arbrec"
    recorder = Recorder(path)
    log = TradeLog()

    async def scenario() -> tuple[list[ArbitrageOpportunity], list[ExecutionResult]]:
        async with cluster:
            controller = ArbitrageController(
                manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"), tap=recorder
            )
            await controller.initialize(dry_run=True)
            log.attach(controller)
            await controller.run(duration_s=2.0)
            by_id = {o.opportunity_id: o for o in log.opportunities}
            return [by_id[r.opportunity_id] for r in controller.results], controller.results

    try:
        executed, results = asyncio.run(scenario())
    finally:
        recorder.close()
    return path, manager, executed, results


def test_a_recorded_dry_run_replays_to_the_same_opportunities_and_orders(recorded_run) -> None:
    path, manager, live_opportunities, live_results = recorded_run
    assert live_results, "the dislocation must make the live run trade"
    result = backtest([path], manager, BacktestSettings(latency=LatencyModel(), deposits=DEPOSITS))
    assert result.damage is None and result.summary is not None
    assert [_opportunity_key(o) for o in result.executed_opportunities] == [
        _opportunity_key(o) for o in live_opportunities
    ]
    assert _orders(result.results) == _orders(live_results)
    assert [(o.market, o.side, o.price, o.quantity) for o in result.orders] == [
        (leg[0], leg[1].value, leg[2], leg[3]) for leg in _orders(live_results)
    ]


def test_the_same_recording_and_config_give_the_same_backtest(recorded_run) -> None:
    path, manager, _, _ = recorded_run
    settings = BacktestSettings(latency=LatencyModel.fixed_ms(D("0.5")), deposits=DEPOSITS)
    first, second = backtest([path], manager, settings), backtest([path], manager, settings)
    assert first.records == second.records > 0
    assert first.orders == second.orders
    assert first.results == second.results
    assert first.report is not None and second.report is not None
    assert first.report.summary() == second.report.summary()


def test_a_snapshot_retried_after_a_random_wait_gives_the_same_backtest_every_time(tmp_path: Path) -> None:
    """A recorded snapshot the book could not take is fetched again after the retry's jittered
    wait, which picks the recorded snapshot that book next comes in sync from: the wait's random
    generator was seeded from the system, so one recording gave different trades per run."""
    base, path = tmp_path / "base.arb", tmp_path / "retry.arb"
    record_simulated(base, 4000, dislocations_at_s=(0.0,))
    recorder = Recorder(path, wall_offset_ns=WALL_OFFSET_NS)
    good: Any = None
    for r in read_records(base):
        if r.kind is RecordKind.REST_SNAPSHOT and r.market is ExchangeName.MEXC and good is None:
            good = r  # the first MEXC snapshot unreadable; the good one recorded 50 ms later
            recorder.record(r.market, r.kind, b'{"garbage": true}', recv_ns=r.recv_ns, venue_symbol=r.venue_symbol)
            continue
        if good is not None and good is not False and r.recv_ns >= START_NS + 50_000_000:
            recorder.record(good.market, good.kind, good.payload, recv_ns=START_NS + 50_000_000,
                            venue_symbol=good.venue_symbol)
            good = False
        recorder.record(r.market, r.kind, r.payload, recv_ns=r.recv_ns, venue_symbol=r.venue_symbol or None)
    recorder.close()
    manager = ConfigurationManager(None)
    manager.load_configuration(dry_run=True)
    runs = [backtest([path], manager, BacktestSettings(order_budgets=False)) for _ in range(3)]
    assert runs[0].books["mexc BTC/USDT"].snapshot_failures == 1 and runs[0].orders
    assert all(run.orders == runs[0].orders and run.results == runs[0].results for run in runs[1:])


def test_a_truncated_recording_replays_up_to_the_cut_and_says_where(recorded_run, tmp_path: Path) -> None:
    path, manager, _, _ = recorded_run
    whole = backtest([path], manager)
    data = path.read_bytes()
    cut = tmp_path / "cut.arbrec"
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = backtest([cut], manager)
    assert result.damage is not None and result.damage.path == str(cut)
    assert 0 < result.records == result.damage.records < whole.records
    assert result.damage.offset <= len(data) * 2 // 3
    assert any("damaged" in line for line in result.lines())


def test_a_corrupted_recording_replays_up_to_the_bad_block(recorded_run, tmp_path: Path) -> None:
    path, manager, _, _ = recorded_run
    whole = backtest([path], manager)
    data = bytearray(path.read_bytes())
    blocks = recording_layout.blocks(bytes(data))[:-1]
    middle = blocks[len(blocks) // 2]
    position = middle.end - len(middle.stored) // 2  # inside the middle block's compressed records
    data[position] ^= 0xFF
    bad = tmp_path / "bad.arbrec"
    bad.write_bytes(bytes(data))
    result = backtest([bad], manager)
    assert result.damage is not None and "CRC" in result.damage.reason
    assert result.records < whole.records and result.damage.offset <= position


def test_cryptofeed_gate_recordings_replay_their_books(shared_data: Path, tmp_path: Path) -> None:
    manager = ConfigurationManager(None, environ={})
    manager.load_configuration(dry_run=True)
    folder = shared_data / "cryptofeed"
    result = backtest([folder / "GATEIO.0", folder / "GATEIO.http.0.0", folder / "GATEIO.ws.1.0"], manager)
    assert result.damage is None and result.records > 200
    assert result.markets == [ExchangeName.GATEIO] and result.symbols == []
    assert len(result.books) == 10 and all(stats.snapshots >= 1 for stats in result.books.values())
    assert sum(stats.applied for stats in result.books.values()) > 100


# --- the compiled record loop against the Python feed ----------------------------------------


def _assert_same_backtest(compiled: BacktestResult, python: BacktestResult) -> None:
    """The two paths took the same decisions and replayed the same books."""
    assert compiled.records == python.records
    assert compiled.damage == python.damage
    assert compiled.books == python.books
    assert compiled.opportunities == python.opportunities
    assert compiled.orders == python.orders
    assert compiled.results == python.results
    assert (compiled.start_ns, compiled.end_ns, compiled.notes) == (python.start_ns, python.end_ns, python.notes)
    assert (compiled.markets, compiled.symbols, compiled.instruments) == (python.markets, python.symbols, python.instruments)
    if python.summary is not None:
        assert compiled.summary is not None
        # The shutdown steps carry their real elapsed time; everything else is on recording time.
        assert msgspec.structs.replace(compiled.summary, shutdown=[]) == msgspec.structs.replace(python.summary, shutdown=[])


def _both(files: list[Path], manager: ConfigurationManager, settings: BacktestSettings) -> tuple[BacktestResult, BacktestResult]:
    compiled = backtest(files, manager, msgspec.structs.replace(settings, compiled=True))
    python = backtest(files, manager, msgspec.structs.replace(settings, compiled=False))
    return compiled, python


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backtest benchmark's recording, smaller: four markets, a dislocation at 0.5 s."""
    path = tmp_path_factory.mktemp("simulated") / "four.arbrec"
    record_simulated(path, 12_000, dislocations_at_s=(0.5,), block_records=700)
    return path


def _default_manager() -> ConfigurationManager:
    manager = ConfigurationManager(None, environ={})
    manager.load_configuration(dry_run=True)
    return manager


@pytest.mark.parametrize("latency_ms", ["0", "0.4"])
def test_the_compiled_loop_takes_the_python_feeds_decisions_on_a_simulated_recording(
    simulated: Path, latency_ms: str
) -> None:
    settings = BacktestSettings(latency=LatencyModel.fixed_ms(D(latency_ms)))
    compiled, python = _both([simulated], _default_manager(), settings)
    assert python.opportunities and python.orders and python.results, "the dislocation must make the engine trade"
    _assert_same_backtest(compiled, python)


def test_a_dislocation_in_the_first_second_is_traded_from_its_start(simulated: Path) -> None:
    """The books come in sync from their snapshots after the balances are read: the scanner's caps
    follow at once, not at the first status tick 1 s later (the dislocation ends then)."""
    result = backtest([simulated], _default_manager())
    starts = START_NS + SECOND // 2
    first = min(o.detected_at for o in result.opportunities)
    assert starts <= first <= starts + 2_000_000
    assert result.results and all(r.final_state.name == "COMPLETED" for r in result.results)


def test_the_compiled_loop_replays_books_only_like_the_python_feed(simulated: Path, tmp_path: Path) -> None:
    path = tmp_path / "arb.toml"
    path.write_text('[engine]\nsymbols = ["ETH/USDT"]\n')
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    compiled, python = _both([simulated], manager, BacktestSettings(batch_window_ns=0))
    assert python.symbols == [] and sum(s.applied for s in python.books.values()) == 12_000
    _assert_same_backtest(compiled, python)


def test_symbols_set_in_the_environment_choose_what_a_backtest_trades_as_a_config_files_do(tmp_path: Path) -> None:
    """With neither, every recorded symbol the scanner can pair is traded; when none of the chosen
    symbols is among those, the note names both."""
    path = tmp_path / "two.arbrec"
    record_simulated(path, 2000, bases=("BTC", "ETH"))
    traded = {}
    for symbols in (None, "ETH/USDT", "SOL/USDT"):
        manager = ConfigurationManager(None, environ={} if symbols is None else {"ARB_SYMBOLS": symbols})
        manager.load_configuration(dry_run=True)
        traded[symbols] = backtest([path], manager)
    assert traded[None].symbols == ["BTC/USDT", "ETH/USDT"]
    assert traded["ETH/USDT"].symbols == ["ETH/USDT"]
    assert traded["SOL/USDT"].symbols == [] and traded["SOL/USDT"].notes == [
        "the configured symbols (SOL/USDT) are not among the recorded ones the scanner can pair (BTC/USDT, ETH/USDT): "
        "books replayed only"
    ]


def test_only_recorded_markets_the_configuration_trades_and_can_send_orders_to_make_a_pair(
    simulated: Path, tmp_path: Path
) -> None:
    """A recording of MEXC spot and futures: hedging without MEXC futures configured raised the
    scanner's "no pair of markets" ValueError, and with them configured (market data only) BTC/USDT
    was traded but no order could be sent, with no word of why. Both replay the books, saying why."""
    path = tmp_path / "mexc.arbrec"
    recorder = Recorder(path, wall_offset_ns=WALL_OFFSET_NS)
    for record in read_records(simulated):
        if record.market in (ExchangeName.MEXC, ExchangeName.MEXC_FUTURES):
            recorder.record(record.market, record.kind, record.payload, recv_ns=record.recv_ns,
                            venue_symbol=record.venue_symbol)
    recorder.close()
    config = tmp_path / "mexc_futures.toml"
    config.write_text(
        '[engine]\nopportunity_types = ["spot_futures_hedge", "spot_spot"]\n'
        '[exchanges.mexc]\nmarkets = ["spot", "futures"]\n'
    )
    hedging = ConfigurationManager(None, environ={"ARB_OPPORTUNITY_TYPES": "spot_futures_hedge"})
    with_futures = ConfigurationManager(config, environ={})
    why = {}
    for name, manager in (("not configured", hedging), ("market data only", with_futures)):
        manager.load_configuration(dry_run=True)
        result = backtest([path], manager)
        assert result.symbols == [] and not result.orders and result.books, name
        (why[name],) = result.notes
    assert why == {
        "not configured": "no symbol is recorded on two markets the scanner can pair "
        "(mexc_futures: not traded by the configuration): books replayed only",
        "market data only": "no symbol is recorded on two markets the scanner can pair "
        "(mexc_futures: market data only): books replayed only",
    }


def test_the_compiled_loop_takes_the_recorded_dry_runs_decisions(recorded_run) -> None:
    path, manager, _, _ = recorded_run
    compiled, python = _both([path], manager, BacktestSettings(latency=LatencyModel(), deposits=DEPOSITS))
    assert python.results
    _assert_same_backtest(compiled, python)


@pytest.mark.parametrize("window_ns", [0, 5_000_000])
def test_the_compiled_loop_follows_the_batch_window(simulated: Path, window_ns: int) -> None:
    compiled, python = _both([simulated], _default_manager(), BacktestSettings(batch_window_ns=window_ns))
    _assert_same_backtest(compiled, python)


def test_a_stream_that_never_pauses_for_a_batch_window_still_syncs_and_trades(simulated: Path, tmp_path: Path) -> None:
    """The simulated recording re-timed to one message every 150 us, less than the 200 us batch
    window: a read ends a window after its first message and the loop gets its turns between
    reads, so the books sync from their snapshots and the dislocation is traded. When a read
    lasted as long as the stream did, no book ever synced and nothing was traded."""
    dense = tmp_path / "dense.arbrec"
    recorder = Recorder(dense, wall_offset_ns=WALL_OFFSET_NS)
    at = START_NS
    for record in read_records(simulated):
        if record.kind in (RecordKind.WS_TEXT, RecordKind.WS_BINARY):
            at += 150_000
        recorder.record(record.market, record.kind, record.payload, recv_ns=at, venue_symbol=record.venue_symbol)
    recorder.close()
    compiled, python = _both([dense], _default_manager(), BacktestSettings())
    assert all(stats.in_sync for stats in python.books.values()) and len(python.books) == 4
    assert python.results and all(r.final_state.name == "COMPLETED" for r in python.results)
    _assert_same_backtest(compiled, python)


def test_merged_recordings_are_replayed_on_one_clock_whatever_each_recorders_monotonic_base(
    simulated: Path, tmp_path: Path
) -> None:
    """The simulated recording split in two by venue, as two recorder processes would write it:
    each file's receive times come from its own process's monotonic clock. Whether the MEXC
    recorder's clock starts an hour earlier (another boot) or an hour later, the merged backtest
    takes the decisions of the one where both clocks agree."""
    def split(shift_ns: int) -> list[Path]:
        files = [tmp_path / f"gate{shift_ns}.arbrec", tmp_path / f"mexc{shift_ns}.arbrec"]
        gate = Recorder(files[0], wall_offset_ns=WALL_OFFSET_NS)
        mexc = Recorder(files[1], wall_offset_ns=WALL_OFFSET_NS - shift_ns)  # the same wall times
        for record in read_records(simulated):
            if record.market.venue == "gateio":
                gate.record(record.market, record.kind, record.payload, recv_ns=record.recv_ns,
                            venue_symbol=record.venue_symbol)
            else:
                mexc.record(record.market, record.kind, record.payload, recv_ns=record.recv_ns + shift_ns,
                            venue_symbol=record.venue_symbol)
        gate.close()
        mexc.close()
        return files

    agreed = backtest(split(0), _default_manager())
    assert agreed.results
    for shift_ns in (-3600 * SECOND, 3600 * SECOND):
        shifted = backtest(split(shift_ns), _default_manager())
        assert shifted.opportunities == agreed.opportunities and shifted.results == agreed.results
        assert (shifted.end_ns - shifted.start_ns) == (agreed.end_ns - agreed.start_ns)


@pytest.mark.parametrize("damage", ["cut", "crc", "records"])
def test_a_damaged_recording_reports_the_same_damage_on_both_paths(
    simulated: Path, tmp_path: Path, damage: str
) -> None:
    data = bytearray(simulated.read_bytes())
    bad = tmp_path / f"{damage}.arbrec"
    if damage == "cut":
        data = data[: len(data) * 3 // 5]
    elif damage == "crc":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(_with_unreadable_block(bytes(data), block=5))
    bad.write_bytes(bytes(data))
    compiled, python = _both([bad], _default_manager(), BacktestSettings())
    assert python.damage is not None and python.damage.path == str(bad)
    if damage == "records":
        assert "block records unreadable" in python.damage.reason
    assert 0 < python.records == python.damage.records
    _assert_same_backtest(compiled, python)


def test_every_damaged_recording_of_several_is_named(simulated: Path, tmp_path: Path) -> None:
    """Only the first damage found was reported: a second cut recording looked replayed in full."""
    other = tmp_path / "other.arbrec"  # another recording (a copy of one would be its part given twice)
    record_simulated(other, 3_000, block_records=300)
    data = simulated.read_bytes()
    cut, flipped = tmp_path / "cut.arbrec", tmp_path / "flipped.arbrec"
    cut.write_bytes(other.read_bytes()[: other.stat().st_size * 3 // 5])
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    flipped.write_bytes(bytes(damaged))
    result = backtest([cut, flipped], _default_manager())
    assert sorted(d.path for d in result.damages) == [str(cut), str(flipped)]
    assert result.damage == result.damages[0]
    assert sum("RECORDING DAMAGED" in line for line in result.lines()) == 2
    assert sum(note.startswith("recording damaged") for note in result.notes) == 2
    whole = backtest([simulated], _default_manager())
    assert whole.damages == [] and whole.damage is None


def _with_unreadable_block(data: bytes, block: int) -> bytes:
    """``data`` with block number ``block`` re-encoded so that one of its records names market code 200."""
    target = recording_layout.blocks(data)[block]
    raw = bytearray(zstandard.ZstdDecompressor().decompress(target.stored))
    raw[16] = 200  # the first record's market byte
    stored = zstandard.ZstdCompressor().compress(bytes(raw))
    header = block_header(target.magic, stored, target.raw_len, target.records, target.summary)
    return data[: target.offset] + header + target.summary + stored + data[target.end :]


def test_a_native_recording_replays_on_the_compiled_loop(simulated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_python_feed(*args: object) -> None:
        raise AssertionError("the Python feed ran")

    monkeypatch.setattr(player, "_feed", no_python_feed)
    result = backtest([simulated], _default_manager())
    assert result.records == 12_004 and result.opportunities


def test_merged_recordings_take_the_python_feed(
    recorded_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, manager, _, _ = recorded_run
    data = bytearray(path.read_bytes())
    data[8:16] = bytes(8)  # another recording id: merged by time, not read as a part
    data[28:32] = struct.pack("<I", zlib.crc32(bytes(data[:28])))
    second = tmp_path / "second.arbrec"
    second.write_bytes(bytes(data))

    def no_compiled_feed(*args: object) -> None:
        raise AssertionError("the compiled loop ran")

    monkeypatch.setattr(player, "_feed_blocks", no_compiled_feed)
    compiled, python = _both([path, second], manager, BacktestSettings(latency=LatencyModel(), deposits=DEPOSITS))
    assert compiled.records == python.records == 2 * backtest([path], manager, BacktestSettings(compiled=False)).records
    _assert_same_backtest(compiled, python)


def test_a_version_1_recording_replays_as_its_original(simulated: Path, tmp_path: Path) -> None:
    old = tmp_path / "v1.arbrec"
    old.write_bytes(recording_layout.as_version_1(simulated.read_bytes()))
    manager = _default_manager()
    original, compiled, python = (
        backtest([simulated], manager), backtest([old], manager), backtest([old], manager, BacktestSettings(compiled=False))
    )
    assert original.records == compiled.records == python.records == 12_004 and original.orders
    _assert_same_backtest(original, compiled)
    _assert_same_backtest(original, python)


def test_a_rotated_recording_replays_on_the_compiled_loop_like_the_python_feed(tmp_path: Path) -> None:
    path = tmp_path / "rotated.arbrec"
    record_simulated(path, 8000, dislocations_at_s=(0.5,), block_records=500, rotate_bytes=60_000)
    assert len(recording_files(path)) > 3
    compiled, python = _both([path], _default_manager(), BacktestSettings())
    assert python.records == 8004 and python.orders
    _assert_same_backtest(compiled, python)


def test_a_rotation_that_left_an_empty_part_replays_the_whole_parts_before_it(tmp_path: Path) -> None:
    """A recorder that died (or found the disk full) at a rotation leaves the new part without its
    header: the whole parts before it replay as they do alone, on both paths, and the damage names
    the empty part."""
    path = tmp_path / "rotated.arbrec"
    record_simulated(path, 8000, dislocations_at_s=(0.5,), block_records=500, rotate_bytes=60_000)
    parts = recording_files(path)
    whole = backtest(parts, _default_manager())
    empty = parts[-1].with_name(parts[-1].name.replace(f".{len(parts):05d}.", f".{len(parts) + 1:05d}."))
    empty.touch()
    compiled, python = _both([path], _default_manager(), BacktestSettings())
    assert python.damage is not None and (python.damage.path, python.damage.offset) == (str(empty), 0)
    assert python.records == whole.records == 8004 and python.results == whole.results and python.orders
    assert any("damaged" in line for line in python.lines())
    _assert_same_backtest(compiled, python)


def test_a_later_part_backtested_alone_says_which_parts_of_its_recording_were_not_given(tmp_path: Path) -> None:
    """Part 3 alone replayed with no word of parts 1 and 2, which hold the instrument lists and the
    books' first snapshots, and said the recording lists no instruments: the files given list none."""
    path = tmp_path / "rotated.arbrec"
    record_simulated(path, 8000, block_records=500, rotate_bytes=60_000)
    parts = recording_files(path)
    whole = backtest([path], _default_manager())
    assert not any("replayed from part" in note for note in whole.notes)
    later = backtest(parts[2:], _default_manager())
    assert later.damage is None and 0 < later.records < whole.records
    note = (f"{parts[2]}: replayed from part 3 of its recording; parts 1 to 2 not given or missing, and with them "
            "what the recording began with (its instrument lists, the books' first snapshots)")
    assert note in later.notes and f"  note: {note}" in later.lines()
    assert later.report is not None and note in later.report.notes
    assert later.instruments[ExchangeName.GATEIO] == "simulator defaults (the files given list none)"


def _unreadable_lists(path: Path) -> Path:
    """A recording holding only instrument lists that do not parse: a venue's error body, a cut list."""
    recorder = Recorder(path, wall_offset_ns=WALL_OFFSET_NS)
    recorder.record(ExchangeName.GATEIO, RecordKind.REST_RESPONSE, b'{"label":"SERVER_ERROR","message":"busy"}',
                    recv_ns=START_NS)
    recorder.record(ExchangeName.MEXC, RecordKind.REST_RESPONSE, b'[{"id": "BTC_USDT", "base": "BTC"', recv_ns=START_NS)
    assert recorder.close().error is None
    return path


def test_a_recorded_instrument_list_that_does_not_parse_is_named_not_taken_for_none(
    simulated: Path, tmp_path: Path
) -> None:
    """The parse error was thrown away: the backtest said the recording lists no instruments and
    traded on the simulator's ticks, lots and fees as if that were all there was to it."""
    result = backtest([simulated, _unreadable_lists(tmp_path / "lists.arbrec")], _default_manager())
    assert [error.split(":")[0] for error in result.instrument_errors] == ["gateio", "mexc"]
    assert all(" GET " in error for error in result.instrument_errors)  # the parser's reason, naming the request
    assert result.instruments[ExchangeName.GATEIO] == "simulator defaults (the recorded instrument list does not parse)"
    assert result.instruments[ExchangeName.GATEIO_FUTURES] == "simulator defaults (the files given list none)"
    lines = result.lines()
    for error in result.instrument_errors:
        assert f"  RECORDED INSTRUMENT LIST UNREADABLE: {error}" in lines
    assert result.report is not None
    assert sum("recorded instrument list unreadable" in note for note in result.report.notes) == 2


@pytest.mark.parametrize("listed", ["every pair", "ETH only"])
def test_an_unreadable_list_beside_one_that_parses_is_a_note_only_when_that_one_names_every_pair(
    simulated: Path, tmp_path: Path, listed: str
) -> None:
    """Merged recordings: when the list that parsed names every pair recorded, the market trades by
    it and the result stands (the backtest failed as if left on the simulator's terms). When it does
    not (another session's list), the unreadable one may have named the pairs left out: it fails."""
    from arb.exchanges.gateio.sim import _pair_doc
    from arb.sim.cluster import default_instruments

    path = tmp_path / "good-list.arbrec"
    recorder = Recorder(path, wall_offset_ns=WALL_OFFSET_NS)
    pairs = [_pair_doc(i) for i in default_instruments()
             if i.exchange is ExchangeName.GATEIO and (listed == "every pair" or i.symbol.startswith("ETH"))]
    recorder.record(ExchangeName.GATEIO, RecordKind.REST_RESPONSE, msgspec.json.encode(pairs), recv_ns=START_NS)
    assert recorder.close().error is None
    result = backtest([simulated, path, _unreadable_lists(tmp_path / "lists.arbrec")], _default_manager())
    assert result.instruments[ExchangeName.GATEIO] == "recorded instrument list"
    failed = [error.split(":")[0] for error in result.instrument_errors]
    noted = [note.split(": ")[0] for note in result.notes if "gateio GET" in note]
    if listed == "every pair":
        assert failed == ["mexc"]  # left on the defaults
        assert noted == ["recorded instrument list unreadable, another list of the market used"]
    else:
        assert failed == ["gateio", "mexc"] and noted == ["recorded instrument list unreadable, not traded by it"]
        assert "gateio BTC_USDT: no instrument known, its messages are skipped" in result.notes


def test_the_compiled_survey_finds_what_the_python_survey_finds(simulated: Path, tmp_path: Path) -> None:
    path = tmp_path / "mixed.arbrec"
    recorder = Recorder(path, block_records=3)
    recorder.record(ExchangeName.GATEIO, RecordKind.REST_RESPONSE, b'[{"id":"BTC_USDT"}]', recv_ns=5)
    recorder.record(ExchangeName.MEXC, RecordKind.REST_SNAPSHOT, b"{}", recv_ns=6, venue_symbol="BTCUSDT")
    for index, (market, symbol) in enumerate(
        [(ExchangeName.GATEIO, "BTC_USDT"), (ExchangeName.GATEIO, "ETH_USDT"), (ExchangeName.MEXC, ""),
         (ExchangeName.GATEIO, "BTC_USDT"), (ExchangeName.MEXC_FUTURES, "BTC_USDT")]
    ):
        recorder.record(market, RecordKind.WS_TEXT, b"{}", recv_ns=10 + index, venue_symbol=symbol)
    recorder.record(ExchangeName.MEXC, RecordKind.REST_RESPONSE, b"{}", recv_ns=20, venue_symbol="BTCUSDT")
    assert recorder.close().error is None
    version_1 = tmp_path / "v1.arbrec"
    version_1.write_bytes(recording_layout.as_version_1(path.read_bytes()))
    for files in ([path], [simulated], [version_1]):
        assert player._survey(files, True) == player._survey(files, False)


def test_the_survey_decompresses_only_the_first_block_and_those_with_rest_responses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "later-response.arbrec"
    recorder = Recorder(path, block_records=2)
    for index in range(10):
        kind = RecordKind.REST_RESPONSE if index in (5, 6) else RecordKind.WS_TEXT
        recorder.record(ExchangeName.GATEIO, kind, b"[]", recv_ns=index, venue_symbol="BTC_USDT")
    assert recorder.close().error is None
    decompressed: list[int] = []
    real = zstandard.ZstdDecompressor

    class Counting:
        def __init__(self) -> None:
            self._real = real()

        def decompress(self, data: bytes, max_output_size: int = 0) -> bytes:
            decompressed.append(len(data))
            return self._real.decompress(data, max_output_size=max_output_size)

    monkeypatch.setattr(zstandard, "ZstdDecompressor", Counting)
    survey = player._survey([path], True)
    layout = recording_layout.blocks(path.read_bytes())
    assert survey.records == 10 and survey.last_ns == 9
    assert survey.instrument_bodies == {ExchangeName.GATEIO: [b"[]", b"[]"]}
    # Blocks 0 (the first record), 2 and 3 (the responses): not 1 and 4.
    assert decompressed == [len(layout[n].stored) for n in (0, 2, 3)]


def test_the_progress_bar_takes_nothing_from_the_decisions(simulated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(player, "PROGRESS_MIN_RECORDS", 0)
    monkeypatch.setattr(player, "_PROGRESS_RECORDS", 333)  # the compiled loop returns every 333 records
    compiled, python = _both([simulated], _default_manager(), BacktestSettings(progress=True))
    _assert_same_backtest(compiled, python)


def test_gaps_and_malformed_frames_resync_the_same_way_on_both_paths(simulated: Path, tmp_path: Path) -> None:
    path = tmp_path / "faults.arbrec"
    recorder = Recorder(path, block_records=500)
    gaps = malformed = 0
    for index, record in enumerate(read_records(simulated)):
        payload = record.payload
        if index > 2000 and index % 1500 < 4 and record.market is ExchangeName.GATEIO and b'"U":' in payload:
            # a diff from far ahead: a sequence gap
            payload = re.sub(rb'"U":(\d+),"u":(\d+)', lambda m: b'"U":%d,"u":%d' % (int(m[1]) + 50, int(m[2]) + 50), payload)
            gaps += 1
        elif index > 2000 and index % 1700 < 4 and record.market is ExchangeName.MEXC_FUTURES:
            payload = payload.replace(b'"asks":[[', b'"asks":[[-', 1)  # an unreadable level
            malformed += 1
        recorder.record(record.market, record.kind, payload, recv_ns=record.recv_ns, venue_symbol=record.venue_symbol)
    assert recorder.close().error is None and gaps and malformed
    compiled, python = _both([path], _default_manager(), BacktestSettings())
    resyncs = {name: stats.resyncs for name, stats in python.books.items()}
    assert resyncs["gateio BTC/USDT"].get("gap") and any(s.malformed for s in python.books.values())
    _assert_same_backtest(compiled, python)


def test_recorded_stream_drops_desync_the_books_as_the_live_run_saw_them_on_both_paths(tmp_path: Path) -> None:
    """Every stream down for a second: live, each drop desynced its market's books at once, one
    stale-data event per market ("reconnect"). Replayed from the recorded drops the same happens,
    and the engine trades the dislocation after it; without them every book would meet a sequence
    gap on its first message after the outage, eight events that trip the stale-data breaker."""
    config = tmp_path / "arb.toml"
    config.write_text(
        '[engine]\nsymbols = ["BTC/USDT", "ETH/USDT"]\nopportunity_types = ["spot_spot", "spot_futures_hedge"]\n'
    )
    manager = ConfigurationManager(config, environ={})
    manager.load_configuration(dry_run=True)
    results = {}
    for record_drops in (True, False):
        path = tmp_path / f"outage-{record_drops}.arbrec"
        record_simulated(path, 14_000, rate=400, dislocations_at_s=(3.0,), bases=("BTC", "ETH"), outage_s=(1.0, 2.0),
                         record_drops=record_drops)
        results[record_drops] = _both([path], manager, BacktestSettings())
    compiled, python = results[True]
    assert len(python.books) == 8 and all(dict(s.resyncs) == {"reconnect": 1} for s in python.books.values())
    assert python.report is not None and python.report.breaker_trips == [] and python.results
    _assert_same_backtest(compiled, python)
    _, unrecorded = results[False]
    assert all(dict(s.resyncs) == {"gap": 1} for s in unrecorded.books.values())
    assert unrecorded.report is not None and [t.breaker for t in unrecorded.report.breaker_trips] == ["stale_data"]
    assert not unrecorded.results


def test_an_empty_recording_replays_to_nothing_on_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "empty.arbrec"
    assert Recorder(path).close().records == 0
    compiled, python = _both([path], _default_manager(), BacktestSettings())
    assert python.records == 0 and python.damage is None
    _assert_same_backtest(compiled, python)


# --- the engine's decisions, pinned -----------------------------------------------------------

# SHA-256 of (opportunities, orders, results) as msgspec JSON, taken before the per-order cost
# work on the backtest's mirror and matching engine: such work must not move one decision.
# The 0.4 ms value was retaken when the trade loop stopped arming its timer with no hedge open:
# the two legs of some executions (same instant, two markets) now reach the orders list in the
# other order; opportunities, results and the orders as a multiset are unchanged (checked then).
# Both were retaken when ExecutionLeg gained ``error_category``: with that key taken out of the
# encoding, the new records hashed to the values pinned before (checked then; no leg had one).
# And again when it gained ``updated_at_ms``: with that key taken out, both runs hashed to the
# values pinned before (checked then; 1006 legs of each run carry one).
# And again when a book's coming in sync started setting the scanner's caps: until then they
# waited for the first status tick, 1 s into the recording, the end of its first dislocation.
# Both runs now trade that dislocation from its start too: 1002 executions instead of 502.
# And again when the trade loop stopped trading opportunities a later read had withdrawn: both
# runs lost the two executions queued as a dislocation ended (each lost a leg and recovered it,
# -0.25 USDT each); the other 1000 are unchanged but for the simulator's order ids, which the
# missing orders no longer take (checked then).
# And again when the recording's wall clock stopped depending on the machine: the recorder took
# it from this machine's wall-minus-monotonic offset, so a leg's ``updated_at_ms`` (the venue's
# time of its last update) moved with the machine's boot time. Now the recording carries the
# helper's fixed offset: every ``updated_at_ms`` moved by that one constant, nothing else did
# (checked then).
# All four again when ArbitrageOpportunity gained ``futures_reduce_only``: with that key taken out
# of the encoding, every run hashed to the values pinned before (checked then; these recordings
# trade spot only, so no opportunity sets it).
# All four again when ExecutionLeg gained ``fee_asset``: with that key taken out of the encoding,
# every run hashed to the values pinned before (checked then).
# All four again when opportunity ids gained an underscore after their count ("bt1000_btc"): with
# it taken back out of the encoding, every run hashed to the values pinned before (checked then).
# All four again when ExecutionLeg gained ``status``: with that key taken out of the encoding,
# every run hashed to the values pinned before (checked then; every leg here ends "filled").
# All four again when MEXC spot buys started paying their fee in USDT, as the venue charges it,
# rather than in the BTC bought: every MEXC buy leg's fee moved to USDT at the same value (the
# old BTC fee times its average price), and nothing else changed (checked then, field by field).
# All four again when each execution leg began to carry the contract size its quantities are
# counted in (1 on these spot legs): the decisions, with that field left out, were those of the
# build before, field by field (checked then, all four runs).
# These two trade without order budgets (the capacity of the engine, ~1000 executions). Budgets
# (the backtest's default) hold it to what the venues' rate limits allow: pinned below.
PINNED_DECISIONS = {
    "0": "bddb076a6359e7feef9ef80dbf707ccaa68ed024eae4a726a0dda92fbc447226",
    "0.4": "f779f2251cba0f6f58194db9df8127a4613685f350f744d49a1d7221c4b5aa85",
}
PINNED_BUDGETED_DECISIONS = {
    "0": "6865a79aa55582a2cf2174ed8f4fa3b85c3a9693f52b13d12dee3c5c41ec1e62",
    "0.4": "014fd75f506487a83d5957d8eee5a8d45f6bcb6b4912a6a7ead931df52687557",
}


@pytest.fixture(scope="module")
def two_dislocations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four markets, dislocations at 0.5 s and 2 s: about 500 executions, with recoveries."""
    path = tmp_path_factory.mktemp("pinned") / "two.arbrec"
    record_simulated(path, 16_000, dislocations_at_s=(0.5, 2.0), block_records=700)
    return path


@pytest.mark.parametrize("latency_ms", sorted(PINNED_DECISIONS))
def test_the_backtest_takes_the_pinned_decisions(two_dislocations: Path, latency_ms: str) -> None:
    settings = BacktestSettings(latency=LatencyModel.fixed_ms(D(latency_ms)), order_budgets=False)
    result = backtest([two_dislocations], _default_manager(), settings)
    assert len(result.results) > 400 and len(result.orders) > 2 * len(result.results) - 10
    assert {o.market for o in result.orders} == {ExchangeName.GATEIO, ExchangeName.MEXC}
    decisions = msgspec.json.encode((result.opportunities, result.orders, result.results))
    assert hashlib.sha256(decisions).hexdigest() == PINNED_DECISIONS[latency_ms]


@pytest.mark.parametrize("latency_ms", sorted(PINNED_BUDGETED_DECISIONS))
def test_order_budgets_hold_the_backtest_to_the_venues_rate_limits(two_dislocations: Path, latency_ms: str) -> None:
    latency = LatencyModel.fixed_ms(D(latency_ms))
    result = backtest([two_dislocations], _default_manager(), BacktestSettings(latency=latency))
    capacity, window_s = GATEIO_SPOT_ORDER_PLACE_LIMIT
    sent = sorted(o.time_ns - latency.default_ns for o in result.orders if o.market is ExchangeName.GATEIO)
    # Both dislocations are traded while Gate.io's budget lasts, and never past it in any window.
    assert len(sent) > 2 * capacity - 2 * ENTRY_ORDER_BUDGET
    assert max(bisect.bisect_right(sent, t) - bisect.bisect_right(sent, t - int(window_s * 1e9)) for t in sent) == (
        capacity - ENTRY_ORDER_BUDGET + 1  # a recovery order stays in reserve; none was needed
    )
    assert result.summary is not None and result.summary.skipped_for_order_budget > 100
    assert all(r.final_state is ArbitrageState.COMPLETED for r in result.results)
    decisions = msgspec.json.encode((result.opportunities, result.orders, result.results))
    assert hashlib.sha256(decisions).hexdigest() == PINNED_BUDGETED_DECISIONS[latency_ms]


def test_gate_io_spot_budgets_are_kept_per_pair_in_a_backtest(tmp_path: Path) -> None:
    """BTC/USDT and ETH/USDT dislocated together: each pair trades within its own Gate.io budget of
    10 orders a second, so together they send more than one pair's budget allows in a second."""
    path = tmp_path / "pairs.arbrec"
    record_simulated(path, 12_000, dislocations_at_s=(0.5,), bases=("BTC", "ETH"))
    result = backtest([path], _default_manager(), BacktestSettings())
    capacity, window_s = GATEIO_SPOT_ORDER_PLACE_LIMIT
    window_ns = int(window_s * 1e9)

    def busiest_second(sent: list[int]) -> int:
        return max(bisect.bisect_right(sent, t) - bisect.bisect_right(sent, t - window_ns) for t in sent)

    gate = [o for o in result.orders if o.market is ExchangeName.GATEIO]
    per_pair = {symbol: sorted(o.time_ns for o in gate if o.symbol == symbol) for symbol in ("BTC/USDT", "ETH/USDT")}
    assert all(busiest_second(sent) == capacity - ENTRY_ORDER_BUDGET + 1 for sent in per_pair.values())
    assert busiest_second(sorted(o.time_ns for o in gate)) > capacity
    assert all(r.final_state is ArbitrageState.COMPLETED for r in result.results)


def test_fills_reach_the_risk_manager_on_the_recordings_wall_clock(
    simulated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps: list[int] = []
    record_fill = RiskManager.record_fill

    def recording(self: RiskManager, exchange: ExchangeName, fill: Fill, **kwargs: Any) -> None:
        stamps.append(fill.timestamp_ms)
        record_fill(self, exchange, fill, **kwargs)

    monkeypatch.setattr(RiskManager, "record_fill", recording)
    result = backtest([simulated], _default_manager())
    first = next(iter(read_records(simulated)))
    offset_ns = first.wall_ns - first.recv_ns  # the recording's wall clock, not this machine's now
    first_ms, last_ms = (result.start_ns + offset_ns) // 1_000_000, (result.end_ns + offset_ns) // 1_000_000
    assert stamps and all(first_ms <= stamp <= last_ms for stamp in stamps)


def test_the_compiled_loop_sees_the_timer_heap_asyncio_rebuilds(
    two_dislocations: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trade loop timer of a minute, cancelled at each execution: cancelled timers pile up until
    # asyncio replaces its heap with a new list; the loop must be told the new list's first timer.
    # The trade loop arms its timer only while a hedge is open: make it believe one always is.
    monkeypatch.setattr(HedgeBook, "has_positions", lambda self: True)
    config = tmp_path / "arb.toml"
    config.write_text(
        '[engine]\nopportunity_scan_interval_ms = 60000\nopportunity_types = ["spot_spot", "spot_futures_hedge"]\n'
    )
    manager = ConfigurationManager(config, environ={})
    manager.load_configuration(dry_run=True)
    heaps: set[int] = set()
    stale: list[float] = []

    class CheckedRecordLoop(player.RecordLoop):
        def run(self, busy: bool, next_timer_s: float, waited: bool = False, budget: int = 0) -> int:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, player.VirtualTimeLoop)
            _, timers = loop.queues()
            heaps.add(id(timers))
            if next_timer_s != (timers[0].when() if timers else float("inf")):
                stale.append(next_timer_s)
            return super().run(busy, next_timer_s, waited, budget)

    monkeypatch.setattr(player, "RecordLoop", CheckedRecordLoop)
    # Without order budgets: the ~1000 executions cancel enough timers.
    compiled, python = _both([two_dislocations], manager, BacktestSettings(order_budgets=False))
    assert len(heaps) > 1, "the run must make asyncio rebuild its timer heap"
    assert stale == []
    # Hedges traded without reading funding rates (no venue is reached), and the result says so.
    assert any("funding is not modelled" in note for note in python.notes)
    assert len(python.results) > 400
    _assert_same_backtest(compiled, python)


@pytest.mark.parametrize("ratios", [(1, 1, 1, 1), (1, 100, 1, 10_000), (1, 7, 3, 20)])
def test_an_orders_reach_is_the_whole_books_conversion_up_to_its_limit(ratios: tuple[int, int, int, int]) -> None:
    rng = random.Random(ratios[1])
    for _ in range(300):
        mid = 6_500_000 + rng.randrange(-500, 500)
        step = rng.choice((1, 3, 100))
        batch = DeltaBatch(64)
        batch.is_snapshot = True
        for side, sign in ((BID, -1), (ASK, 1)):
            offset = 0
            for _ in range(rng.randrange(0, 120)):
                offset += rng.randrange(1, 3)
                batch.add(side, mid + sign * step * offset, rng.randrange(1, 40_000))
        book = OrderBook("test")
        book.apply_snapshot(batch, 0)
        for side in (BID, ASK):
            whole = player._order_levels(book.top(side, 1000), side, ratios)
            limit = (mid + rng.randrange(-60 * step, 60 * step)) * ratios[0] // ratios[1]
            reach = player._reachable_levels(book, side, ratios, limit)
            assert reach == {t: lots for t, lots in whole.items() if (t <= limit if side == ASK else t >= limit)}
            assert list(reach) == [t for t in whole if t in reach]  # best first, as the whole book's


BUSY_POLLING_BACKTEST = """
import sys
from arb.config import ConfigurationManager
from arb.replay.player import backtest
manager = ConfigurationManager(None, environ={"ARB_BUSY_POLL": "true"})
manager.load_configuration(dry_run=True)
assert manager.config.busy_poll
result = backtest([sys.argv[1]], manager)
print(len(result.opportunities), len(result.orders), len(result.results))
"""


def test_busy_polling_in_the_config_is_ignored_by_the_backtest(simulated: Path, tmp_path: Path) -> None:
    # In a child with a time limit: a busy-polling backtest would never end (its loop moves virtual
    # time only when it has nothing to run).
    child = subprocess.run(
        [sys.executable, "-c", BUSY_POLLING_BACKTEST, str(simulated)],
        capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path,
    )
    plain = backtest([simulated], _default_manager())
    assert plain.results
    assert child.stdout.split() == [str(len(plain.opportunities)), str(len(plain.orders)), str(len(plain.results))]


SIGNALLED_BACKTEST = """
import os, signal, sys
from arb.controller import ArbitrageController
signum, recording, report, moment = sys.argv[1:]
called = getattr(ArbitrageController, moment)
async def signalled(self, *args, **kwargs):  # as the engine starts, or starts trading
    os.kill(os.getpid(), getattr(signal, signum))
    return await called(self, *args, **kwargs)
setattr(ArbitrageController, moment, signalled)
from arb.cli import main
sys.exit(main(["backtest", recording, "--json", "--report", report]))
"""


@pytest.mark.parametrize(("signum", "code", "moment"), [
    ("SIGINT", 130, "run"), ("SIGTERM", 143, "run"), ("SIGUSR1", -signal.SIGUSR1, "run"), ("SIGTERM", 143, "initialize"),
])
def test_a_backtest_stopped_by_a_signal_writes_no_result(tmp_path: Path, signum: str, code: int, moment: str) -> None:
    """The backtest's engine took the signals as a run does: stopped, it replayed the rest of the
    recording untraded and wrote its summary and report as a whole backtest's, exit 0; SIGUSR1
    engaged the kill switch, changing the result unsaid. Only a run has a kill switch."""
    recording = tmp_path / "rec.arbrec"
    record_simulated(recording, 200)
    report = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_BACKTEST, signum, str(recording), str(report), moment],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == code, done.stderr
    assert done.stdout == "" and not (report / "summary.json").exists()
    assert "Traceback" not in done.stderr and "Task was destroyed" not in done.stderr


def test_timers_due_more_than_a_year_into_a_backtest_still_run() -> None:
    # Loop time is float seconds from the start; past 2**24 s a float's step is wider than twice
    # asyncio's 1 ns clock resolution, and a timer due now was never run: the loop spun on it.
    clock = player.VirtualClock(0)
    loop = player.VirtualTimeLoop(clock)
    clock.advance_to(2**25 * 1_000_000_000 + 123)
    steps = 0
    run_once = loop._run_once  # type: ignore[attr-defined]

    def counted() -> None:
        nonlocal steps
        steps += 1
        assert steps < 10_000, "the loop spins on a timer that is due"
        run_once()

    loop._run_once = counted  # type: ignore[attr-defined]
    try:
        start = loop.time()
        for delay in (1e-9, 3e-9, 1e-6, 0.5):
            loop.run_until_complete(asyncio.sleep(delay))
        assert 0.5 <= loop.time() - start < 0.501
    finally:
        loop.close()


def test_a_gap_of_days_between_records_is_crossed_in_one_step(two_dislocations: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The second dislocation two days after the first (as recordings of two days merged): the
    # engine's periodic work runs once at the end of the gap, not once per tick of two days.
    gap_ns = 2 * 86_400 * 1_000_000_000
    path = tmp_path / "gap.arbrec"
    recorder = Recorder(path, block_records=700)
    for record in read_records(two_dislocations):
        recv_ns = record.recv_ns + (gap_ns if record.recv_ns >= START_NS + 1_800_000_000 else 0)
        recorder.record(record.market, record.kind, record.payload, recv_ns=recv_ns, venue_symbol=record.venue_symbol)
    assert recorder.close().error is None
    refreshes = 0
    refresh = BalanceMonitor.refresh

    async def counted(self: BalanceMonitor, *args: Any, **kwargs: Any) -> set[ExchangeName]:
        nonlocal refreshes
        refreshes += 1
        return await refresh(self, *args, **kwargs)

    monkeypatch.setattr(BalanceMonitor, "refresh", counted)
    compiled, python = _both([path], _default_manager(), BacktestSettings())
    _assert_same_backtest(compiled, python)
    assert python.end_ns - python.start_ns > gap_ns
    second = START_NS + gap_ns + 1_800_000_000
    assert [o for o in python.orders if o.time_ns < second] and [o for o in python.orders if o.time_ns > second]
    # Balances are read every 5 s: walked tick by tick, two days would read them ~70,000 times.
    assert refreshes < 1_000


def test_a_backtest_honours_recovery_mode_off(tmp_path: Path) -> None:
    """A configuration with recovery off is backtested with it off: residuals flagged, not recovered."""
    from arb.replay.player import VirtualClock, _controller

    path = tmp_path / "arb.toml"
    path.write_text(CONFIG + "enable_recovery_mode = false\n")
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    controller = _controller(manager, manager.config, ["BTC/USDT"], {}, {}, VirtualClock(), TradeLog())
    assert controller.recovery is not None and controller.recovery.automatic is False


def test_merged_recordings_know_the_pairs_of_every_recordings_instrument_list(tmp_path: Path) -> None:
    """Each market's instruments came from the first recorded list alone: merging a BTC session with
    an ETH one skipped every ETH message as of no known instrument."""
    for base in ("BTC", "ETH"):
        done = subprocess.run(
            [sys.executable, "-m", "arb", "record", "--out", f"{base}.arbrec", "--sim", "--symbols", f"{base}/USDT",
             "--duration", "1.5"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
    manager = _default_manager()
    alone = backtest([tmp_path / "ETH.arbrec"], manager)
    merged = backtest([tmp_path / "BTC.arbrec", tmp_path / "ETH.arbrec"], manager)
    assert alone.symbols == ["ETH/USDT"] and merged.symbols == ["BTC/USDT", "ETH/USDT"]
    assert not [note for note in merged.notes if "no instrument known" in note]
    assert set(merged.instruments.values()) == {"2 recorded instrument lists (each pair by its earliest listing)"}
    eth_books = {name: stats for name, stats in merged.books.items() if "ETH" in name}
    assert eth_books and eth_books == {name: stats for name, stats in alone.books.items()}
