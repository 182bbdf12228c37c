"""arb.sim.market synthetic source: determinism, sequence continuity, uncrossed books, real dislocations."""

from decimal import Decimal as D

import msgspec
import pytest
from sim.simdata import perp, spot

from arb.sim.market import STARTED_KEPT, Dislocation, MarketSpec, SyntheticConfig, SyntheticMarket
from arb.sim.matching import BookUpdate, OrderType, SimExchange
from arb.types import ExchangeName, OrderSide
from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.scanner import SpreadScanner

GATE, MEXC, GATE_F = ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES
SYM, PERP = "BTC/USDT", "BTC/USDT:USDT"
SECOND = 1_000_000_000


def venues() -> tuple[SimExchange, SimExchange, SimExchange]:
    return (
        SimExchange(GATE, [spot(GATE)]),
        SimExchange(MEXC, [spot(MEXC, venue_symbol="BTCUSDT")]),
        SimExchange(GATE_F, [perp()]),
    )


def config(seed: int = 7, **overrides: object) -> SyntheticConfig:
    fields: dict[str, object] = dict(
        seed=seed,
        start_price=D("60000"),
        markets=(
            MarketSpec(exchange=GATE, symbol=SYM, spread_ticks=4, depth_levels=60, updates_per_second=2_000),
            MarketSpec(exchange=MEXC, symbol=SYM, depth_levels=50, noise_ticks=3, lag_ns=3_000_000, updates_per_second=1_000),
            MarketSpec(exchange=GATE_F, symbol=PERP, depth_levels=400, basis_bps=2, base_size_lots=50, updates_per_second=500),
        ),
    )
    fields.update(overrides)
    return SyntheticConfig(**fields)  # type: ignore[arg-type]


def market(cfg: SyntheticConfig) -> tuple[SyntheticMarket, tuple[SimExchange, SimExchange, SimExchange]]:
    exchanges = venues()
    engines = [engine for venue in exchanges for engine in venue.engines.values()]
    return SyntheticMarket(cfg, engines, 0), exchanges


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="no engine for mexc_futures"):
        market(config(markets=(MarketSpec(exchange=ExchangeName.MEXC_FUTURES, symbol=PERP),)))
    with pytest.raises(ValueError, match=">= 1"):
        market(config(markets=(MarketSpec(exchange=GATE, symbol=SYM, spread_ticks=0),)))
    with pytest.raises(ValueError, match="walk_interval_ns"):
        market(config(walk_interval_ns=0))


def test_same_seed_same_market_and_other_seed_differs() -> None:
    runs = []
    for seed in (7, 7, 8):
        source, _ = market(config(seed))
        runs.append([source.step(t * 10_000_000) for t in range(1, 40)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_sequence_ids_continue_books_never_cross_and_mirror_replays_match() -> None:
    source, exchanges = market(config(random_dislocations_per_minute=600))
    mirrors: dict[tuple[ExchangeName, str], OrderBook] = {}
    last_id: dict[tuple[ExchangeName, str], int] = {}
    for venue in exchanges:
        for symbol, engine in venue.engines.items():
            snap = engine.snapshot(10_000)
            batch = DeltaBatch()
            batch.is_snapshot = True
            batch.first_update_id = batch.last_update_id = snap.last_update_id
            for price, size in snap.bids:
                batch.add(BID, price, size)
            for price, size in snap.asks:
                batch.add(ASK, price, size)
            mirror = mirrors[(venue.exchange, symbol)] = OrderBook("mirror")
            mirror.apply_snapshot(batch, 0)
            last_id[(venue.exchange, symbol)] = snap.last_update_id
    count = 0
    previous_time = 0
    for t in range(1, 101):
        for update in source.step(t * 10_000_000):
            assert isinstance(update, BookUpdate) and update.time_ns >= previous_time
            previous_time = update.time_ns
            key = (update.exchange, update.symbol)
            assert update.first_update_id == last_id[key] + 1
            assert update.last_update_id == last_id[key] + len(update.levels)  # one id per changed level
            last_id[key] = update.last_update_id
            assert all(isinstance(x, int) for level in update.levels for x in level)
            batch = DeltaBatch()
            batch.first_update_id, batch.last_update_id = update.first_update_id, update.last_update_id
            for level in update.levels:
                batch.add(*level)
            mirrors[key].apply_batch(batch, update.time_ns)  # raises on a gap or a crossed book
            count += 1
    assert count == 100 * (20 + 10 + 5)
    for venue in exchanges:
        for symbol, engine in venue.engines.items():
            book, mirror = engine.book, mirrors[(venue.exchange, symbol)]
            assert book.top(BID, 1000) == mirror.top(BID, 1000) and book.top(ASK, 1000) == mirror.top(ASK, 1000)
            assert 0 < book.best_bid_price() < book.best_ask_price()
            assert 0 < book.depth(BID) <= 400 and 0 < book.depth(ASK) <= 400
    assert source.dislocations_started  # 600/min over 1 s: some fired


def test_futures_quote_on_their_own_grid_near_spot() -> None:
    source, (gate, _, futures) = market(config())
    source.step(SECOND)
    spot_mid = (gate.engine(SYM).book.best_bid_price() + gate.engine(SYM).book.best_ask_price()) // 2  # 0.01 ticks
    perp_mid = (futures.engine(PERP).book.best_bid_price() + futures.engine(PERP).book.best_ask_price()) // 2  # 0.1
    assert abs(perp_mid * 10 - spot_mid) * 10_000 < spot_mid * 5  # within 5 bps (basis 2 bps)


def scanner_for(a: OrderBook, b: OrderBook) -> SpreadScanner:
    # Both spot grids: tick 0.01, lot 0.0001; taker fees 0.1 % = 1000 ppm each.
    scanner = SpreadScanner()
    scanner.add_symbol(1, 10**12)
    scanner.add_leg(1, a, 0, False, 1_000, 1, 1, 0)
    scanner.add_leg(1, b, 1, False, 1_000, 1, 1, 0)
    scanner.set_limits(1, 0, 10**12, 10**12)
    scanner.set_limits(1, 1, 10**12, 10**12)
    return scanner


def test_dislocation_creates_an_opportunity_net_of_fees_only_while_it_lasts() -> None:
    jump = Dislocation(exchange=MEXC, symbol=SYM, start_ns=SECOND, duration_ns=SECOND // 2, bps=60)
    source, (gate, mexc, _) = market(config(dislocations=(jump,)))
    scanner = scanner_for(gate.engine(SYM).book, mexc.engine(SYM).book)
    source.step(SECOND - 1)
    assert scanner.scan_symbol(1, SECOND, 10 * SECOND) is None
    source.step(SECOND + 100_000_000)
    opportunity = scanner.scan_symbol(1, SECOND + 100_000_000, 10 * SECOND)
    assert opportunity is not None and (opportunity.buy_leg, opportunity.sell_leg) == (0, 1)
    assert opportunity.profit > 0 and opportunity.profit_bps >= 20  # 60 bps jump - 20 bps fees - spreads
    source.step(2 * SECOND)
    assert scanner.scan_symbol(1, 2 * SECOND, 10 * SECOND) is None
    assert list(source.dislocations_started) == [jump]


def test_dislocations_are_forgotten_once_over_so_a_long_run_does_not_slow_down() -> None:
    """Every random dislocation stayed in the list each book update looks through: after a day at
    the dry run's default rate (30 a minute) an update cost ~150 times what it did at the start."""
    later = Dislocation(exchange=MEXC, symbol=SYM, start_ns=301 * SECOND, duration_ns=SECOND, bps=60)
    quiet = [spec.__class__(**{**msgspec.structs.asdict(spec), "updates_per_second": 10}) for spec in config().markets]
    source, _ = market(config(
        markets=tuple(quiet), dislocations=(later,), random_dislocations_per_minute=600,
        random_dislocation_ns=SECOND // 2,
    ))
    for t in range(1, 301):  # five minutes: about 3,000 random dislocations
        source.step(t * SECOND)
        assert len(source._dislocations) <= 30  # those within the last half second, and the later one
    assert later in source._dislocations
    assert len(source.dislocations_started) == STARTED_KEPT and later not in source.dislocations_started  # the latest
    source.step(302 * SECOND)
    assert later in source.dislocations_started and later not in source._dislocations


def test_taker_consumption_removes_market_liquidity_that_the_generator_then_refills() -> None:
    source, (gate, _, _) = market(config())
    engine = gate.engine(SYM)
    gate.deposit("u", "USDT", "1000000")
    best = engine.book.best_ask()
    assert best is not None
    gate.place_order("u", SYM, OrderSide.BUY, OrderType.MARKET, best[1], 1)
    assert engine.book.best_ask_price() > best[0] or engine.market_levels[ASK].get(best[0], 0) == 0
    source.step(SECOND)
    assert engine.book.depth(ASK) >= 50
