"""A recording of the simulator's four BTC/USDT markets (and other bases'), as the backtest benchmark builds it (smaller)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import msgspec

from arb.exchanges.gateio.sim import FuturesBookEncoder, SpotBookEncoder
from arb.exchanges.mexc.sim import MexcFuturesDepthEncoder, MexcSpotDepthEncoder
from arb.replay.recorder import Recorder, RecordKind
from arb.sim.cluster import ASSETS, SimConfig, default_instruments, market_specs
from arb.sim.market import Dislocation, SyntheticConfig, SyntheticMarket
from arb.sim.matching import SimExchange
from arb.sim.wire import WIRES
from arb.types import ExchangeName

SECOND = 1_000_000_000
START_NS = SECOND
WALL_OFFSET_NS = 1_700_000_000 * SECOND
TOPICS = {
    ExchangeName.GATEIO: ("spot.order_book_update", "100"),
    ExchangeName.GATEIO_FUTURES: ("futures.order_book_update", "100"),
    ExchangeName.MEXC: ("depth", "100ms"),
    ExchangeName.MEXC_FUTURES: ("depth", ""),
}


def _snapshot_body(market: ExchangeName, wire: Any, engine: Any, now_ms: int) -> bytes:
    instrument = engine.instrument
    book = engine.snapshot(1000)
    if market is ExchangeName.GATEIO or market is ExchangeName.GATEIO_FUTURES:
        encoder = (SpotBookEncoder if market is ExchangeName.GATEIO else FuturesBookEncoder)(
            instrument.venue_symbol, wire.scale(instrument)
        )
        return encoder.snapshot(book.last_update_id, book.bids, book.asks, now_ms, now_ms)
    depth = MexcSpotDepthEncoder if market is ExchangeName.MEXC else MexcFuturesDepthEncoder
    return depth(instrument).snapshot(book.bids, book.asks, book.last_update_id, now_ms)


def record_simulated(
    path: Path, frames: int, *, rate: int = 1000, dislocations_at_s: Sequence[float] = (), step_ns: int = 10_000_000,
    block_records: int = 1000, rotate_bytes: int | None = None, bases: Sequence[str] = ("BTC",),
    outage_s: tuple[float, float] | None = None, record_drops: bool = True,
) -> int:
    """Record ``frames`` diff frames (``rate`` per second per market) after one REST snapshot per
    book, with an 80 bps dislocation on MEXC spot of every base at each of ``dislocations_at_s``;
    the record count. BTC starts at 65000, any other base at the simulator's price for it.

    ``outage_s``: every market's stream is down from the first to the second second: its drop
    recorded at the start (``DISCONNECT``, unless ``record_drops`` is False), nothing received
    until the end, then each book's first message followed by the REST snapshot its resync fetches."""
    instruments = default_instruments(bases)
    venues = {
        exchange: SimExchange(exchange, [i for i in instruments if i.exchange is exchange])
        for exchange in dict.fromkeys(i.exchange for i in instruments)
    }
    markets = []
    for index, (base, specs) in enumerate(market_specs(SimConfig(), instruments).items()):
        specs = [msgspec.structs.replace(s, updates_per_second=rate) for s in specs]
        dislocations = tuple(
            Dislocation(
                exchange=ExchangeName.MEXC, symbol=f"{base}/USDT", start_ns=START_NS + int(at * SECOND),
                duration_ns=SECOND // 2, bps=-80,
            )
            for at in dislocations_at_s
        )
        start_price = D("65000") if base == "BTC" else ASSETS[base].start_price
        config = SyntheticConfig(
            seed=7 + index, start_price=start_price, markets=tuple(specs), volatility_ppm=2, dislocations=dislocations
        )
        engines = [venues[s.exchange].engines[s.symbol] for s in specs]
        markets.append(SyntheticMarket(config, engines, START_NS))
    recorder = Recorder(path, block_records=block_records, rotate_bytes=rotate_bytes, wall_offset_ns=WALL_OFFSET_NS)
    encoders: dict[tuple[ExchangeName, str], tuple[Callable[..., tuple[Any, bytes]], str, RecordKind]] = {}
    wires = {exchange: WIRES[exchange](instruments) for exchange in venues}
    for instrument in instruments:
        exchange = instrument.exchange
        wire = wires[exchange]
        channel, variant = TOPICS[exchange]
        kind = RecordKind.WS_BINARY if exchange is ExchangeName.MEXC else RecordKind.WS_TEXT
        encoders[(exchange, instrument.symbol)] = (
            wire.encoder((channel, instrument.venue_symbol, variant)), instrument.venue_symbol, kind
        )
        engine = venues[exchange].engines[instrument.symbol]
        body = _snapshot_body(exchange, wire, engine, (START_NS + WALL_OFFSET_NS) // 1_000_000)
        recorder.record(exchange, RecordKind.REST_SNAPSHOT, body, recv_ns=START_NS, venue_symbol=instrument.venue_symbol)
    down = None if outage_s is None else (START_NS + int(outage_s[0] * SECOND), START_NS + int(outage_s[1] * SECOND))
    dropped: set[ExchangeName] = set()
    resynced: set[tuple[ExchangeName, str]] = set()
    count = 0
    now = START_NS
    while count < frames:
        now += step_ns
        for market in markets:
            for update in market.step(now):
                encode, venue_symbol, kind = encoders[(update.exchange, update.symbol)]
                engine = venues[update.exchange].engines[update.symbol]
                now_ms = (update.time_ns + WALL_OFFSET_NS) // 1_000_000
                _, payload = encode(update, engine, now_ms)
                if down is not None and down[0] <= update.time_ns < down[1]:
                    if record_drops and update.exchange not in dropped:
                        recorder.record(update.exchange, RecordKind.DISCONNECT, b"", recv_ns=down[0])
                    dropped.add(update.exchange)
                    continue
                recorder.record(update.exchange, kind, payload, recv_ns=update.time_ns, venue_symbol=venue_symbol)
                count += 1
                if down is not None and update.time_ns >= down[1] and (update.exchange, venue_symbol) not in resynced:
                    resynced.add((update.exchange, venue_symbol))
                    body = _snapshot_body(update.exchange, wires[update.exchange], engine, now_ms)
                    recorder.record(update.exchange, RecordKind.REST_SNAPSHOT, body, recv_ns=update.time_ns,
                                    venue_symbol=venue_symbol)
    stats = recorder.close()
    if stats.error is not None:
        raise RuntimeError(stats.error)
    return stats.records
