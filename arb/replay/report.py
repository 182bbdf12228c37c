"""Run and backtest reports: an HTML page with PNG charts, and a JSON summary for scripts.

What a run did is collected while it runs by a ``TradeLog``: every opportunity the
scanner handed to the engine, every execution with its time (through ``LoggingMonitor``,
the engine's ``PerformanceMonitor``), and cross-venue spreads sampled from the books at
a fixed interval, kept as a count per spread value (0.01 bps) so that memory does not grow
with the length of the run. ``report_data`` turns that, the controller's ``RunSummary``, the latency
histograms and the breaker states into one ``ReportData``; ``write_report`` writes
``report.html``, ``summary.json`` and, with matplotlib installed (the ``report`` extra),
one PNG per chart. Without matplotlib the page has the tables and says how to get charts.

Money stays exact: PnL, prices, sizes and margins are ``Decimal`` and JSON carries them as
strings. Charts plot them as floats, which is fine for pictures.
"""

from __future__ import annotations

import asyncio
import html
import importlib.util
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..monitor import PerformanceMonitor, Stage
from ..pipeline import ScannerPipeline, SymbolPlan
from ..risk import BreakerTrip
from ..types import ArbitrageOpportunity, ExecutionResult, amount_text

if TYPE_CHECKING:
    from ..controller import ArbitrageController, RunSummary

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
_CENT = Decimal("0.01")
CHARTS = ("pnl", "opportunities", "spreads", "fill_ratio", "latency", "breakers")
CHART_TITLES = {
    "pnl": "Realized PnL over time",
    "opportunities": "Opportunities by size and margin (scanner hits)",
    "spreads": "Spread distribution per symbol and venue pair",
    "fill_ratio": "Fill ratio per market (by quote value)",
    "latency": "Latency histograms per stage",
    "breakers": "Circuit breaker trips",
}
SPREAD_SAMPLE_INTERVAL_S = 0.1
OPPORTUNITY_ROWS = 200  # the report page's table of opportunities lists the first ones only


class TimedExecution(msgspec.Struct, frozen=True, kw_only=True):
    """An execution result and the monotonic time it finished."""

    time_ns: int
    result: ExecutionResult


class TradeLog:
    """What a run did, collected while it runs (opportunities, executions, sampled spreads).

    ``opportunities_kept``: the report shows the newest that many opportunities (None: all of them,
    as a backtest's result lists them; up to twice as many are held between trims); ``hits``
    counts every one. A standing opportunity is found again on every book update, so a long live
    run keeps a bounded window of them."""

    def __init__(self, opportunities_kept: int | None = None) -> None:
        if opportunities_kept is not None and opportunities_kept < 1:
            raise ValueError(f"opportunities_kept={opportunities_kept}: expected >= 1 or None")
        self.opportunities: list[ArbitrageOpportunity] = []
        self.hits = 0
        self.kept = opportunities_kept
        self.executions: list[TimedExecution] = []
        # "symbol buy->sell" -> spread (best bid on sell minus best ask on buy, bps of that ask) -> samples
        self.spreads: dict[str, Counter[Decimal]] = {}
        self.trips: list[BreakerTrip] = []

    def attach(self, controller: ArbitrageController) -> None:
        """Log every opportunity the scanner hands to ``controller`` and every breaker trip from now on,
        with those in force already (call after ``initialize``)."""
        pipeline = controller.pipeline
        if pipeline is None:
            raise ValueError("TradeLog.attach: the controller has no scanner pipeline yet; call initialize() first")
        risk = controller.risk
        if risk is not None:
            self.trips += [s.trip for s in risk.get_circuit_breaker_status().values() if s.trip is not None]
            alert = risk.on_alert

            def on_alert(trip: BreakerTrip) -> None:
                self.on_trip(trip)
                if alert is not None:
                    alert(trip)

            risk.on_alert = on_alert
        forward = pipeline.on_opportunity
        found, kept = self.opportunities, self.kept

        def on_opportunity(opportunity: ArbitrageOpportunity, plan: SymbolPlan) -> None:
            found.append(opportunity)
            self.hits += 1
            if kept is not None and len(found) >= 2 * kept:
                del found[:-kept]  # once per ``kept`` hits: amortised O(1)
            if forward is not None:
                forward(opportunity, plan)

        pipeline.on_opportunity = on_opportunity

    def sample_spreads(self, pipeline: ScannerPipeline) -> None:
        """Count the spread of every ordered pair of in-sync legs of every scanned symbol."""
        spreads = self.spreads
        for plan in pipeline.symbol_plans().values():
            quotes = [
                (leg.exchange.value, leg.book_price(book.best_ask_price()), leg.book_price(book.best_bid_price()))
                for leg in plan.legs
                if (book := leg.book).in_sync and book.bid_count and book.ask_count
            ]
            for i, (buy, ask, _) in enumerate(quotes):
                if ask <= 0:
                    continue
                for j, (sell, _, bid) in enumerate(quotes):
                    if i != j:
                        counts = spreads.get(key := f"{plan.symbol} {buy}->{sell}")
                        if counts is None:
                            counts = spreads[key] = Counter()
                        counts[((bid - ask) * BPS / ask).quantize(_CENT)] += 1

    async def sample_spreads_every(
        self, pipeline: ScannerPipeline, interval_s: float = SPREAD_SAMPLE_INTERVAL_S
    ) -> None:
        """Sample spreads every ``interval_s`` until cancelled (a backtest runs it on virtual time)."""
        while True:
            await asyncio.sleep(interval_s)
            self.sample_spreads(pipeline)

    def on_trip(self, trip: BreakerTrip) -> None:
        """A ``RiskManager`` alert callback that logs the trip."""
        self.trips.append(trip)


class LoggingMonitor(PerformanceMonitor):
    """A ``PerformanceMonitor`` that also logs each execution, with its time, into a ``TradeLog``."""

    def __init__(self, target_execution_time_ms: int, log: TradeLog, **kwargs: Any) -> None:
        super().__init__(target_execution_time_ms, **kwargs)
        self.trade_log = log

    def record_execution(self, result: ExecutionResult) -> None:
        """Count the execution and log it at the monitor's clock."""
        super().record_execution(result)
        self.trade_log.executions.append(TimedExecution(time_ns=self._clock(), result=result))


class PnlPoint(msgspec.Struct, frozen=True):
    """Cumulative realized PnL after an execution, ``seconds`` from the start."""

    seconds: Decimal
    pnl: Decimal


class OpportunityPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One detected opportunity: size, notional, margin, and whether it was executed."""

    symbol: str
    buy: str
    sell: str
    quantity: Decimal
    notional: Decimal
    margin_bps: Decimal
    executed: bool


class FillRatio(msgspec.Struct, frozen=True, kw_only=True):
    """Requested and filled quote value over every order of one market, each order valued at its
    limit price: its symbols' quantities (base units, lots, contracts) cannot be added up."""

    market: str
    orders: int
    requested: Decimal  # quote
    filled: Decimal  # quote

    @property
    def ratio(self) -> Decimal:
        """Filled over requested (0 when nothing was requested), rounded down: 1 only when all filled."""
        if not self.requested:
            return ZERO
        return (self.filled / self.requested).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


class LatencyStage(msgspec.Struct, frozen=True, kw_only=True):
    """One stage's histogram: non-empty buckets as (upper value ns, count), and percentiles."""

    stage: str
    count: int
    p50_ns: int
    p99_ns: int
    max_ns: int
    buckets: list[tuple[int, int]]


class TripPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One breaker trip, ``seconds`` from the start."""

    breaker: str
    reason: str
    seconds: Decimal


class ReportData(msgspec.Struct, kw_only=True):
    """Everything a report shows; ``to_json`` gives the summary for scripts."""

    title: str
    mode: str
    duration_s: Decimal
    opportunities_detected: int  # taken up by the engine (the run summary's "detected")
    opportunities_executed: int
    executions_succeeded: int
    executions_failed: int
    realized_pnl: Decimal
    pnl: list[PnlPoint]
    opportunities: list[OpportunityPoint]
    spreads: dict[str, dict[Decimal, int]]  # "symbol buy->sell" -> spread in bps -> samples, by spread
    fill_ratios: list[FillRatio]
    latency: list[LatencyStage]
    breaker_trips: list[TripPoint]
    rejected_by_risk: dict[str, int]
    skipped: dict[str, int] = {}  # opportunities passed up untraded, by reason (as the run summary's)
    # Every hit the scanner handed over (``opportunities`` holds them, or a run's newest), including
    # those a newer scan of the same symbol replaced before the engine took them up, which
    # "detected" does not count.
    scanner_hits: int = 0
    notes: list[str] = []  # e.g. where a damaged recording stopped
    open_hedges: int = 0  # hedge positions open at the end
    held_hedge_basis: Decimal = ZERO  # the basis they locked in, part of realized_pnl until closed

    def summary(self) -> dict[str, Any]:
        """The JSON summary: counts, PnL, fill ratios, latency percentiles, trips (Decimals as strings)."""
        return {
            "title": self.title,
            "mode": self.mode,
            "duration_s": str(self.duration_s),
            "scanner_hits": self.scanner_hits,
            "opportunities_detected": self.opportunities_detected,
            "opportunities_executed": self.opportunities_executed,
            "executions_succeeded": self.executions_succeeded,
            "executions_failed": self.executions_failed,
            "realized_pnl": amount_text(self.realized_pnl),
            "open_hedges": self.open_hedges,
            "held_hedge_basis": amount_text(self.held_hedge_basis),
            "fill_ratio": {f.market: str(f.ratio) for f in self.fill_ratios},
            "latency_ns": {s.stage: {"count": s.count, "p50": s.p50_ns, "p99": s.p99_ns, "max": s.max_ns}
                           for s in self.latency if s.count},
            "breaker_trips": [{"breaker": t.breaker, "reason": t.reason, "seconds": str(t.seconds)}
                              for t in self.breaker_trips],
            "rejected_by_risk": dict(self.rejected_by_risk),
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }

    def to_json(self) -> bytes:
        """``summary()`` as JSON bytes."""
        return msgspec.json.encode(self.summary())


def report_data(
    title: str,
    summary: RunSummary,
    log: TradeLog,
    monitor: PerformanceMonitor,
    *,
    start_ns: int,
    notes: Sequence[str] = (),
) -> ReportData:
    """Collect a report from a finished run: its summary, trade log and latency histograms.

    ``start_ns`` is the run's start on the same clock as the log (times become seconds from it).
    """
    executed = {t.result.opportunity_id for t in log.executions}
    cumulative = ZERO
    pnl = [PnlPoint(ZERO, ZERO)]
    for timed in log.executions:
        cumulative += timed.result.realized_profit
        pnl.append(PnlPoint(_seconds(timed.time_ns - start_ns), cumulative))
    kept = log.opportunities if log.kept is None else log.opportunities[-log.kept:]
    opportunities = [
        OpportunityPoint(
            symbol=o.symbol, buy=o.buy_exchange.value, sell=o.sell_exchange.value, quantity=o.max_quantity,
            notional=o.max_quantity * o.buy_price, margin_bps=o.profit_margin_bps, executed=o.opportunity_id in executed,
        )
        for o in kept
    ]
    spreads = {pair: dict(sorted(counts.items())) for pair, counts in log.spreads.items()}
    ratios: dict[str, list[Decimal]] = {}
    for timed in log.executions:
        for leg in timed.result.legs:
            row = ratios.setdefault(leg.exchange.value, [ZERO, ZERO, ZERO])
            # The engine's legs carry their contract size; one without it is a spot order's (1).
            price = leg.limit_price * (ONE if leg.contract_size is None else leg.contract_size)
            row[0] += 1
            row[1] += leg.requested_quantity * price
            row[2] += leg.filled_quantity * price
    latency = []
    for stage in Stage:
        histogram = monitor.histogram(stage)
        p50, p99 = histogram.percentiles((50.0, 99.0))
        latency.append(
            LatencyStage(stage=stage.value, count=histogram.count, p50_ns=p50, p99_ns=p99, max_ns=histogram.max,
                         buckets=histogram.buckets())
        )
    stats = summary.statistics
    return ReportData(
        title=title,
        mode=summary.mode,
        duration_s=summary.duration_s,
        opportunities_detected=stats.opportunities_detected,
        scanner_hits=log.hits,
        opportunities_executed=stats.opportunities_executed,
        executions_succeeded=stats.executions_succeeded,
        executions_failed=stats.executions_failed,
        realized_pnl=stats.total_realized_profit,
        pnl=pnl,
        opportunities=opportunities,
        spreads=spreads,
        fill_ratios=[
            FillRatio(market=market, orders=int(row[0]), requested=row[1], filled=row[2])
            for market, row in sorted(ratios.items())
        ],
        latency=latency,
        breaker_trips=[
            TripPoint(breaker=t.breaker.value, reason=t.reason, seconds=_seconds(t.tripped_at_ns - start_ns))
            for t in log.trips
        ],
        rejected_by_risk={k: v for k, v in summary.rejected_by_risk.items() if v},
        skipped={reason: count for reason, count in (
            ("order_budget", summary.skipped_for_order_budget), ("outdated", summary.skipped_as_outdated),
            ("fills_unseen", summary.skipped_for_unseen_fills), ("withdrawn", summary.skipped_as_withdrawn),
            ("resized", summary.resized_after_trade), ("market_halted", summary.skipped_for_halted_market),
        ) if count},
        notes=list(notes),
        open_hedges=summary.open_hedges,
        held_hedge_basis=summary.held_hedge_basis,
    )


def _seconds(ns: int) -> Decimal:
    return (Decimal(max(ns, 0)) / 1_000_000_000).quantize(Decimal("0.001"))


def charts_available() -> bool:
    """Whether matplotlib (the ``report`` extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def write_report(data: ReportData, directory: str | Path) -> list[Path]:
    """Write ``report.html``, ``summary.json`` and (with matplotlib) one PNG per chart into
    ``directory`` (created if missing), replacing a report there: the charts of an earlier one
    are removed first, and the page and summary replace theirs whole; returns the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name in CHARTS:  # a chart left from an earlier report would sit beside this one's page
        (out / f"{name}.png").unlink(missing_ok=True)
    written: list[Path] = []
    charts: dict[str, Path] = {}
    if charts_available():
        charts = _draw_charts(data, out)
        written += charts.values()
    summary = out / "summary.json"
    _replace(summary, msgspec.json.format(data.to_json(), indent=2) + b"\n")
    page = out / "report.html"
    _replace(page, _html(data, charts).encode("utf-8"))
    return [page, summary, *written]


def _replace(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` whole or not at all (an interrupted write leaves the old file)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


# --- HTML ---------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td>none</td></tr>'}</tbody></table>"


def _html(data: ReportData, charts: dict[str, Path]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(data.title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}img{max-width:100%}"
        ".note{color:#a60}</style></head><body>",
        f"<h1>{e(data.title)}</h1>",
    ]
    parts += [f"<p class='note'>{e(note)}</p>" for note in data.notes]
    parts.append(_table(
        ("mode", "duration s", "scanner hits", "detected", "executed", "succeeded", "failed", "realized PnL",
         "of it in open hedges"),
        [(data.mode, data.duration_s, data.scanner_hits, data.opportunities_detected, data.opportunities_executed,
          data.executions_succeeded, data.executions_failed, amount_text(data.realized_pnl),
          f"{amount_text(data.held_hedge_basis)} ({data.open_hedges} open)")],
    ))
    if not charts:
        parts.append(
            "<p class='note'>Charts need matplotlib: install the report extra "
            "(<code>pip install 'arb[report]'</code>); the tables below hold the same data.</p>"
        )
    sections = {
        "pnl": _table(("seconds", "cumulative PnL"), [(p.seconds, p.pnl) for p in data.pnl]),
        "opportunities": _table(
            ("symbol", "buy", "sell", "quantity", "notional", "margin bps", "executed"),
            [(o.symbol, o.buy, o.sell, o.quantity, o.notional, o.margin_bps, "yes" if o.executed else "no")
             for o in data.opportunities[:OPPORTUNITY_ROWS]],
        ) + (
            f"<p class='note'>The first {OPPORTUNITY_ROWS} of {len(data.opportunities)} opportunities are listed "
            "(the chart plots them all).</p>" if len(data.opportunities) > OPPORTUNITY_ROWS else ""
        ),
        "spreads": _table(
            ("symbol and pair", "samples", "min bps", "median bps", "max bps"),
            [(pair, sum(v.values()), min(v), _median(v), max(v)) for pair, v in sorted(data.spreads.items()) if v],
        ),
        "fill_ratio": _table(
            ("market", "orders", "requested (quote)", "filled (quote)", "ratio"),
            [(f.market, f.orders, f.requested, f.filled, f.ratio) for f in data.fill_ratios],
        ),
        "latency": _table(
            ("stage", "count", "p50 ms", "p99 ms", "max ms"),
            [(s.stage, s.count, _ms(s.p50_ns), _ms(s.p99_ns), _ms(s.max_ns)) for s in data.latency],
        ),
        "breakers": _table(("breaker", "seconds", "reason"), [(t.breaker, t.seconds, t.reason) for t in data.breaker_trips])
        + _table(("risk check", "rejections"), sorted(data.rejected_by_risk.items()))
        + _table(("passed up", "opportunities"), sorted(data.skipped.items())),
    }
    for name in CHARTS:
        parts.append(f"<h2>{e(CHART_TITLES[name])}</h2>")
        if name in charts:
            parts.append(f"<img src='{e(charts[name].name)}' alt='{e(CHART_TITLES[name])}'>")
        parts.append(sections[name])
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _ms(ns: int) -> Decimal:
    return (Decimal(ns) / 1_000_000).quantize(Decimal("0.001"))


# --- charts (matplotlib, imported only here) -------------------------------------------------


def _draw_charts(data: ReportData, out: Path) -> dict[str, Path]:
    # Imported by name: matplotlib is an optional extra, so type checking must not depend on it.
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")

    drawn: dict[str, Path] = {}
    for name in CHARTS:
        figure, axes = plt.subplots(figsize=(8, 4.5), dpi=90)
        try:
            if not _DRAW[name](axes, data):
                axes.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=axes.transAxes)
            axes.set_title(CHART_TITLES[name])
            figure.tight_layout()
            path = out / f"{name}.png"
            figure.savefig(path)
            drawn[name] = path
        finally:
            plt.close(figure)
    return drawn


def _draw_pnl(axes: Any, data: ReportData) -> bool:
    axes.step([float(p.seconds) for p in data.pnl], [float(p.pnl) for p in data.pnl], where="post")
    axes.set_xlabel("seconds")
    axes.set_ylabel("realized PnL (quote)")
    return len(data.pnl) > 1


def _draw_opportunities(axes: Any, data: ReportData) -> bool:
    for executed, colour, label in ((False, "tab:gray", "not executed"), (True, "tab:green", "executed")):
        points = [o for o in data.opportunities if o.executed is executed]
        if points:
            axes.scatter([float(o.notional) for o in points], [float(o.margin_bps) for o in points], s=12,
                         c=colour, label=label)
    axes.set_xlabel("notional (quote)")
    axes.set_ylabel("margin (bps)")
    if data.opportunities:
        axes.legend()
    return bool(data.opportunities)


def _median(counts: dict[Decimal, int]) -> Decimal:
    """The median sample of ``counts`` (spread -> samples, sorted by spread): the upper one of an even count."""
    middle, seen = sum(counts.values()) // 2, 0
    for value, count in counts.items():
        seen += count
        if seen > middle:
            return value
    raise ValueError("no samples")


def _draw_spreads(axes: Any, data: ReportData) -> bool:
    drawn = False
    for pair, counts in sorted(data.spreads.items()):
        if counts:
            axes.hist([float(v) for v in counts], bins=40, weights=list(counts.values()), alpha=0.5, label=pair)
            drawn = True
    axes.set_xlabel("spread (bps): best bid on sell venue - best ask on buy venue")
    axes.set_ylabel("samples")
    if drawn:
        axes.legend(fontsize="small")
    return drawn


def _draw_fill_ratio(axes: Any, data: ReportData) -> bool:
    axes.bar([f.market for f in data.fill_ratios], [float(f.ratio) for f in data.fill_ratios])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("filled / requested (quote value)")
    return bool(data.fill_ratios)


def _draw_latency(axes: Any, data: ReportData) -> bool:
    drawn = False
    for stage in data.latency:
        if stage.buckets:
            axes.step([v / 1e6 for v, _ in stage.buckets], [c for _, c in stage.buckets], where="mid",
                      label=f"{stage.stage} (p50 {stage.p50_ns / 1e6:.3f} ms)")
            drawn = True
    axes.set_xscale("symlog", linthresh=0.01)
    axes.set_xlabel("ms")
    axes.set_ylabel("count")
    if drawn:
        axes.legend(fontsize="small")
    return drawn


def _draw_breakers(axes: Any, data: ReportData) -> bool:
    names = sorted({t.breaker for t in data.breaker_trips})
    for row, name in enumerate(names):
        times = [float(t.seconds) for t in data.breaker_trips if t.breaker == name]
        axes.scatter(times, [row] * len(times), marker="x", s=60)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("seconds")
    return bool(names)


_DRAW: dict[str, Callable[[Any, ReportData], bool]] = {
    "pnl": _draw_pnl,
    "opportunities": _draw_opportunities,
    "spreads": _draw_spreads,
    "fill_ratio": _draw_fill_ratio,
    "latency": _draw_latency,
    "breakers": _draw_breakers,
}

__all__ = [
    "LoggingMonitor",
    "ReportData",
    "TimedExecution",
    "TradeLog",
    "charts_available",
    "report_data",
    "write_report",
]
