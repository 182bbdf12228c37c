"""Backtest throughput: recorded frames per second through the full replay path, with a per-stage breakdown.

The recording is built once per session with the ``Recorder`` from the simulator's own
generator and venue encoders: BTC/USDT on the four markets (Gate.io spot and perpetual, MEXC
spot and perpetual), 1000 diffs per second each, one REST snapshot per book at the start,
FRAMES diff frames in all (75 s of market time), and two 80 bps dislocations on MEXC spot so
the engine detects, risk-checks and executes.

Group ``backtest stages``: the same file through growing parts of the path.
``read`` (baseline): read, decompress and check every block (``check_block`` walks its
records in C), what the replay's own reads do. ``books``: ``backtest`` with
no tradable symbol configured, so no controller: the survey pass, then the compiled record
loop (``arb_core.replay``) routing every frame into its book (``BookRouter``), on the
``VirtualTimeLoop``. ``full``: ``backtest`` with the default configuration: all of that plus
the scans (in the compiled loop) and the controller (risk, executor, recovery, journal,
balance refreshes). ``full python``: the same with ``BacktestSettings(compiled=False)``,
every record fed through Python (the reference path). The ``full`` runs apply no order
budgets (``EXECUTING``), so the engine trades every opportunity the dislocations show: the
heaviest replay (a backtest's default budgets pass up most of them and replay faster).

extra_info: ``frames_per_s`` over the whole ``backtest`` call, ``replay_frames_per_s`` as
``BacktestResult.records_per_s`` reports it (the survey pass excluded), and for ``full``
the breakdown of one separate instrumented run in seconds. The compiled loop does in one
call per stretch of records what the Python feed did in several calls per record, so the
breakdown is coarser than the Python feed's was: the survey pass (``survey_s``: it reads the
block headers and summaries, and decompresses only the first block and those holding REST
responses), the replay's block reads (``read_s``: read, decompress, check), the
compiled loop (``record_loop_s``: routing, decode + apply, scans that find nothing),
Python's share of the feed coroutine (``handover_s``: the records, opportunities, scans and
router errors the loop hands back, and its waits on the event loop), every other loop
callback (``executor_other_s``: controller tasks, executions, timers) and the rest of the
replay (``event_loop_s``: the loop's own scheduling). ``handovers`` counts the loop's stops
by kind. The accumulators add about 0.2 µs per call, so the instrumented run is a little
slower than the timed ones.

Asserted after timing: every book synchronised once and applied all its frames, each timed
run took the same decisions (opportunities, orders) as an untimed run, and the compiled and
the Python path took the same decisions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

import arb.replay.player as player
from arb_core import replay as compiled
from arb_core.replay import RecordLoop
from arb.config import ConfigurationManager
from arb.replay.player import BacktestResult, BacktestSettings, backtest
from arb.replay.reader import read_records
from simulated_recording import record_simulated

FRAMES = 300_000
RATE = 1_000  # diffs per second per market
ROUNDS = 5
PYTHON_ROUNDS = 3
GROUP = f"backtest stages, {FRAMES // 1000}k frames"
EXECUTING = BacktestSettings(order_budgets=False)  # every opportunity traded (see the module doc)


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backtest") / "four-markets.arbrec"
    records = record_simulated(path, FRAMES, rate=RATE, dislocations_at_s=(5, 40))
    assert records == FRAMES + 4  # one REST snapshot per market
    return path


def _manager(tmp_path: Path, toml: str | None) -> ConfigurationManager:
    path = None
    if toml is not None:
        path = tmp_path / "arb.toml"
        path.write_text(toml)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    return manager


def _decisions(result: BacktestResult) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    opportunities = [
        (o.symbol, o.buy_exchange, o.sell_exchange, o.buy_price, o.sell_price, o.max_quantity)
        for o in result.opportunities
    ]
    orders = [(o.market, o.side, o.price, o.quantity, o.filled, o.time_ns) for o in result.orders]
    return opportunities, orders


def _assert_books(result: BacktestResult) -> None:
    assert result.damage is None and result.records == FRAMES + 4
    assert len(result.books) == 4
    for stats in result.books.values():
        assert stats.snapshots == 1 and stats.applied == FRAMES // 4 and stats.stale == 0


def _report(benchmark: Any, result: BacktestResult) -> None:
    benchmark.extra_info["frames_per_s"] = round(result.records / benchmark.stats.stats.median)
    benchmark.extra_info["replay_frames_per_s"] = round(result.records_per_s)


def test_read(benchmark: Any, recording: Path) -> None:
    benchmark.group = GROUP

    def read() -> int:
        reader = read_records(recording)
        count = sum(count for _, count in reader.blocks())
        assert reader.damage is None
        return count

    count = benchmark.pedantic(read, rounds=ROUNDS, warmup_rounds=0)
    benchmark.extra_info["frames_per_s"] = round(count / benchmark.stats.stats.median)
    assert count == FRAMES + 4


def test_books(benchmark: Any, recording: Path, tmp_path: Path) -> None:
    benchmark.group = GROUP
    manager = _manager(tmp_path, '[engine]\nsymbols = ["ETH/USDT"]\n')  # not recorded: books only
    result = benchmark.pedantic(backtest, args=([recording], manager), rounds=ROUNDS, warmup_rounds=0)
    _report(benchmark, result)
    _assert_books(result)
    assert result.symbols == [] and result.summary is None


# --- the instrumented run ------------------------------------------------------------------


class _Accumulators:
    def __init__(self) -> None:
        self.ns: dict[str, int] = dict.fromkeys(("survey", "read", "loop", "feed", "callbacks"), 0)
        self.stops: Counter[str] = Counter()

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        ns = self.ns
        clock = time.monotonic_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                ns[name] += clock() - start

        return timed

    def iterate(self, blocks: Iterator[tuple[bytes, int]]) -> Iterator[tuple[bytes, int]]:
        ns = self.ns
        clock = time.monotonic_ns
        while True:
            start = clock()
            block = next(blocks, None)
            ns["read"] += clock() - start
            if block is None:
                return
            yield block


_STOPS = {
    getattr(compiled, name): name.removeprefix("STOP_").lower() for name in dir(compiled) if name.startswith("STOP_")
}


def _timed_loop(accumulators: _Accumulators) -> type[RecordLoop]:
    ns, stops, clock = accumulators.ns, accumulators.stops, time.monotonic_ns

    class TimedRecordLoop(RecordLoop):
        def run(self, busy: bool, next_timer_s: float, waited: bool = False, budget: int = 0) -> int:
            start = clock()
            status = super().run(busy, next_timer_s, waited, budget)
            ns["loop"] += clock() - start
            stops[_STOPS[status]] += 1
            return status

    return TimedRecordLoop


class _TimedCoroutine:
    """Awaits ``coroutine``, adding the time of each of its steps to ``ns[name]``."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], accumulators: _Accumulators, name: str) -> None:
        self._coroutine = coroutine
        self._ns = accumulators.ns
        self._name = name

    def __await__(self) -> Generator[Any, Any, Any]:
        send, value = self._coroutine.send, None
        while True:
            start = time.monotonic_ns()
            try:
                future = send(value)
            except StopIteration as done:
                self._ns[self._name] += time.monotonic_ns() - start
                return done.value
            self._ns[self._name] += time.monotonic_ns() - start
            value = yield future


def _instrumented(
    recording: Path, manager: ConfigurationManager, monkeypatch: pytest.MonkeyPatch
) -> tuple[BacktestResult, dict[str, Any]]:
    acc = _Accumulators()
    feed = player._feed_blocks
    monkeypatch.setattr(player, "_survey", acc.wrap("survey", player._survey))
    monkeypatch.setattr(player, "RecordLoop", _timed_loop(acc))
    monkeypatch.setattr(
        player, "_feed_blocks", lambda blocks, *args: _TimedCoroutine(feed(acc.iterate(blocks), *args), acc, "feed")
    )
    monkeypatch.setattr(asyncio.events.Handle, "_run", acc.wrap("callbacks", asyncio.events.Handle._run))
    started = time.monotonic_ns()
    result = backtest([recording], manager, EXECUTING)
    total = time.monotonic_ns() - started
    monkeypatch.undo()
    ns = acc.ns
    replay = total - ns["survey"]
    stages = {
        "survey_s": ns["survey"],
        "read_s": ns["read"],
        "record_loop_s": ns["loop"],
        "handover_s": ns["feed"] - ns["read"] - ns["loop"],
        "executor_other_s": ns["callbacks"] - ns["feed"],
        "event_loop_s": replay - ns["callbacks"],
    }
    breakdown: dict[str, Any] = {name: round(value / 1e9, 3) for name, value in stages.items()}
    breakdown["total_s"] = round(total / 1e9, 3)
    breakdown["handovers"] = dict(acc.stops)
    return result, breakdown


def test_full(benchmark: Any, recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    benchmark.group = GROUP
    manager = _manager(tmp_path, None)
    untimed = backtest([recording], manager, EXECUTING)
    result = benchmark.pedantic(backtest, args=([recording], manager, EXECUTING), rounds=ROUNDS, warmup_rounds=0)
    _report(benchmark, result)
    instrumented, breakdown = _instrumented(recording, manager, monkeypatch)
    benchmark.extra_info.update(breakdown)
    for run in (untimed, result, instrumented):
        _assert_books(run)
    assert untimed.results and untimed.summary is not None
    assert _decisions(result) == _decisions(untimed) == _decisions(instrumented)
    assert [r.opportunity_id for r in result.results] == [r.opportunity_id for r in untimed.results]


def test_full_python(benchmark: Any, recording: Path, tmp_path: Path) -> None:
    benchmark.group = GROUP
    benchmark.name = "full python"
    manager = _manager(tmp_path, None)
    settings = BacktestSettings(compiled=False, order_budgets=False)
    result = benchmark.pedantic(backtest, args=([recording], manager, settings), rounds=PYTHON_ROUNDS, warmup_rounds=0)
    _report(benchmark, result)
    _assert_books(result)
    compiled_run = backtest([recording], manager, EXECUTING)
    assert _decisions(result) == _decisions(compiled_run)
    assert result.opportunities == compiled_run.opportunities and result.books == compiled_run.books
