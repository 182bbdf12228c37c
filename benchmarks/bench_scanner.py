"""SpreadScanner speed: one symbol after an update, and a full scan of 500 symbols.

Each group holds the compiled scanner and, as the baseline, the pure-Python
reference scanner (tests/reference/scanner.py) over the very same compiled books.
"""

from collections.abc import Callable
from typing import Any

import pytest

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.scanner import SpreadScanner
from reference import scanner as ref

NOW = 10**12
MAX_AGE = 10**9
BIG = 10**15
DEPTH = 25
CALLS = 20_000  # scan_symbol calls per timed round
medians_ns: dict[str, float] = {}


def depth_book(name: str, best_bid: int, best_ask: int) -> OrderBook:
    """A synced book with DEPTH levels per side, one tick apart, 2-40 lots each."""
    book = OrderBook(name)
    batch = DeltaBatch()
    batch.is_snapshot = True
    batch.first_update_id = batch.last_update_id = 1
    for k in range(DEPTH):
        batch.add(BID, best_bid - k, 2 + (k * 7) % 39)
        batch.add(ASK, best_ask + k, 2 + (k * 11) % 39)
    book.apply_snapshot(batch, NOW - 1_000)
    return book


def register(scanners: tuple[Any, ...], symbol_id: int, edge_ticks: int) -> None:
    """Gate-like spot (0.2 % fee) vs MEXC-like spot (0.05 %) on the same grid.

    ``edge_ticks`` is how far MEXC's best bid sits above Gate's best ask (in 0.01 USDT
    ticks around 60_000.00); 0 leaves no opportunity.
    """
    gate = depth_book(f"gateio:{symbol_id}", 5_999_990, 6_000_000)
    mexc = depth_book(f"mexc:{symbol_id}", 6_000_000 + edge_ticks, 6_000_010 + edge_ticks)
    for scanner in scanners:
        scanner.add_symbol(symbol_id, BIG)
        scanner.add_leg(symbol_id, gate, 1, False, 2_000, 1, 1, 0)
        scanner.add_leg(symbol_id, mexc, 2, False, 500, 1, 1, 0)
        for leg_id in (1, 2):
            scanner.set_limits(symbol_id, leg_id, BIG, BIG)


def per_call_ns(benchmark: Any, run: Callable[[], object], calls: int, rounds: int) -> float:
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    ns = benchmark.stats.stats.median / calls * 1e9
    benchmark.extra_info["ns_per_call"] = round(ns, 1)
    return ns


@pytest.mark.parametrize("edge_ticks", [0, 20_000])
def test_scan_symbol_compiled(benchmark: Any, edge_ticks: int) -> None:
    """scan_symbol on one 2-venue symbol with 25-level books; 20_000 calls per round."""
    benchmark.group = "scanner: scan_symbol, 2 venues x 25 levels"
    scanner = SpreadScanner()
    register((scanner,), 0, edge_ticks)
    scan = scanner.scan_symbol

    def run() -> object:
        result = None
        for _ in range(CALLS):
            result = scan(0, NOW, MAX_AGE)
        return result

    medians_ns[f"scan_symbol[{edge_ticks}]"] = per_call_ns(benchmark, run, CALLS, rounds=15)
    opp = scanner.best(0)
    if edge_ticks:
        # 0.33 % apart against 0.25 % of fees: the walk crosses levels until fees stop it.
        assert opp is not None and opp.profit > 0 and opp.buy_limit_ticks > 6_000_000
    else:
        assert opp is None


def test_scan_symbol_reference(benchmark: Any) -> None:
    """Baseline: the pure-Python reference scanner on the same crossing books; 200 calls per round."""
    benchmark.group = "scanner: scan_symbol, 2 venues x 25 levels"
    compiled, reference = SpreadScanner(), ref.SpreadScanner()
    register((compiled, reference), 0, 20_000)
    scan = reference.scan_symbol
    calls = 200

    def run() -> object:
        result = None
        for _ in range(calls):
            result = scan(0, NOW, MAX_AGE)
        return result

    ns = per_call_ns(benchmark, run, calls, rounds=5)
    if "scan_symbol[20000]" in medians_ns:
        benchmark.extra_info["reference_over_compiled"] = round(ns / medians_ns["scan_symbol[20000]"], 1)
    want = reference.best(0)
    got = compiled.scan_symbol(0, NOW, MAX_AGE)
    assert want is not None and got is not None
    for field in ref.OPPORTUNITY_FIELDS:
        assert getattr(got, field) == getattr(want, field), field


def five_hundred_symbols(scanners: tuple[Any, ...]) -> int:
    """Register 500 symbols, every tenth with an opportunity; returns how many have one."""
    for symbol_id in range(500):
        register(scanners, symbol_id, 20_000 if symbol_id % 10 == 0 else 0)
    return 50


def test_scan_all_compiled(benchmark: Any) -> None:
    """scan_all over 500 symbols x 2 venues (50 of them crossing)."""
    benchmark.group = "scanner: scan_all, 500 symbols x 2 venues"
    scanner = SpreadScanner()
    expected = five_hundred_symbols((scanner,))
    scan_all = scanner.scan_all
    result = benchmark.pedantic(scan_all, args=(NOW, MAX_AGE), rounds=300, iterations=1, warmup_rounds=5)
    medians_ns["scan_all"] = benchmark.stats.stats.median * 1e9
    benchmark.extra_info["ns_per_symbol"] = round(medians_ns["scan_all"] / 500, 1)
    assert len(result) == expected and all(o.symbol_id % 10 == 0 and o.profit > 0 for o in result)


def test_scan_all_reference(benchmark: Any) -> None:
    """Baseline: the reference scanner's scan_all over the same 500 symbols."""
    benchmark.group = "scanner: scan_all, 500 symbols x 2 venues"
    reference = ref.SpreadScanner()
    expected = five_hundred_symbols((reference,))
    result = benchmark.pedantic(reference.scan_all, args=(NOW, MAX_AGE), rounds=5, iterations=1)
    if "scan_all" in medians_ns:
        ratio = benchmark.stats.stats.median * 1e9 / medians_ns["scan_all"]
        benchmark.extra_info["reference_over_compiled"] = round(ratio, 1)
    assert len(result) == expected
