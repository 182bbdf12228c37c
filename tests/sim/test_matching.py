"""arb.sim.matching: bad inputs, hand-checked fills and fees, and hypothesis properties of the ledger."""

import math
import random
from collections import Counter
from collections.abc import Callable
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim.simdata import perp, spot

from arb.exchanges.errors import ErrorCategory
from arb.sim.matching import (
    Fill,
    Liquidity,
    OrderEvent,
    OrderRejected,
    OrderStatus,
    OrderType,
    SimExchange,
    TimeInForce,
    from_atoms,
    to_atoms,
)
from arb.types import ExchangeName, OrderSide
from arb_core.book import ASK, BID

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
SYM, PERP = "BTC/USDT", "BTC/USDT:USDT"


def spot_venue() -> SimExchange:
    """Gate spot with market asks 100.00 x 1.0, 100.01 x 2.0 and bids 99.99 x 1.0, 99.98 x 2.0; alice funded."""
    venue = SimExchange(ExchangeName.GATEIO, [spot()])
    venue.engine(SYM).apply_market_levels(
        [(ASK, 10_000, 10_000), (ASK, 10_001, 20_000), (BID, 9_999, 10_000), (BID, 9_998, 20_000)], 1
    )
    venue.deposit("alice", "USDT", "10000")
    venue.deposit("alice", "BTC", "5")
    return venue


def mexc_spot_venue() -> SimExchange:
    """``spot_venue``'s book and funds on MEXC spot, which charges fees in quote on both sides."""
    venue = SimExchange(ExchangeName.MEXC, [spot(ExchangeName.MEXC, venue_symbol="BTCUSDT", fees_in_quote=True)])
    venue.engine(SYM).apply_market_levels(
        [(ASK, 10_000, 10_000), (ASK, 10_001, 20_000), (BID, 9_999, 10_000), (BID, 9_998, 20_000)], 1
    )
    venue.deposit("alice", "USDT", "10000")
    venue.deposit("alice", "BTC", "5")
    return venue


def rejected(category: ErrorCategory, call: object, *args: object, **kwargs: object) -> OrderRejected:
    with pytest.raises(OrderRejected) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    assert info.value.category is category, info.value
    return info.value


# -- bad inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "category"),
    [("100.001", ErrorCategory.PRECISION), ("abc", ErrorCategory.INVALID_REQUEST), ("-1", ErrorCategory.INVALID_REQUEST),
     ("NaN", ErrorCategory.INVALID_REQUEST), ("0", ErrorCategory.INVALID_REQUEST)],
)
def test_wire_price_off_grid_or_malformed_is_rejected(price: str, category: ErrorCategory) -> None:
    rejected(category, spot_venue().engine(SYM).price_ticks, price)


def test_wire_size_off_lot_is_precision_and_good_values_convert() -> None:
    engine = spot_venue().engine(SYM)
    rejected(ErrorCategory.PRECISION, engine.size_lots, "0.00001")
    assert (engine.price_ticks("100.01"), engine.size_lots(D("0.25"))) == (10_001, 2_500)


def test_request_validation() -> None:
    venue = spot_venue()
    place = venue.place_order
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", "ETH/USDT", BUY, LIMIT, 1, 2, price_ticks=1)
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", SYM, BUY, LIMIT, 0, 2, price_ticks=10_000)
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", SYM, BUY, LIMIT, 10, 2)  # no price
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", SYM, BUY, MARKET, 10, 2, price_ticks=10_000)
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", SYM, BUY, MARKET, 10, 2, time_in_force=TimeInForce.GTC)
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", SYM, SELL, MARKET, 0, 2, quote_amount=D("10"))
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", SYM, BUY, LIMIT, 1_000, 2, price_ticks=9_000, reduce_only=True)
    rejected(ErrorCategory.MIN_NOTIONAL, place, "alice", SYM, BUY, LIMIT, 100, 2, price_ticks=9_000)  # 0.9 USDT < 1
    rejected(ErrorCategory.MIN_NOTIONAL, place, "alice", SYM, BUY, MARKET, 0, 2, quote_amount=D("0.5"))
    rejected(ErrorCategory.PRECISION, place, "alice", SYM, BUY, MARKET, 0, 2, quote_amount=D("1e-40"))
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, place, "alice", SYM, BUY, LIMIT, 2_000_000, 2, price_ticks=9_000)
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, place, "bob", SYM, SELL, MARKET, 10, 2)
    rejected(ErrorCategory.ORDER_REJECTED, place, "alice", SYM, BUY, LIMIT, 1_000, 2, price_ticks=10_000, time_in_force=TimeInForce.POST_ONLY)
    place("alice", SYM, BUY, LIMIT, 1_000, 2, price_ticks=9_000, client_id="c1")
    rejected(ErrorCategory.INVALID_REQUEST, place, "alice", SYM, BUY, LIMIT, 1_000, 2, price_ticks=9_000, client_id="c1")
    assert [e.client_id for e in venue.open_orders("alice")] == ["c1"]  # rejections used no order


def test_unknown_orders() -> None:
    venue = spot_venue()
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.get_order, "alice", 99)
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.get_order_by_client_id, "alice", SYM, "nope")
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.cancel_order, "alice", SYM, 3, order_id=99)
    order = venue.place_order("alice", SYM, BUY, LIMIT, 1_000, 2, price_ticks=9_000).order
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.get_order, "bob", order.order_id)
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.cancel_order, "bob", SYM, 3, order_id=order.order_id)
    venue.cancel_order("alice", SYM, 3, order_id=order.order_id)
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.cancel_order, "alice", SYM, 4, order_id=order.order_id)


def test_bad_construction_and_amounts() -> None:
    with pytest.raises(ValueError, match="leverage"):
        SimExchange(ExchangeName.GATEIO, [spot()], leverage=0)
    with pytest.raises(ValueError, match="gateio_futures"):
        SimExchange(ExchangeName.GATEIO, [perp()])
    with pytest.raises(ValueError, match="reserved"):
        spot_venue().deposit("fees", "USDT", "1")
    with pytest.raises(ValueError, match="negative"):
        spot_venue().deposit("bob", "USDT", "-1")
    with pytest.raises(ValueError, match="not a number"):
        to_atoms("x")
    with pytest.raises(ValueError, match="at least one level"):
        spot_venue().engine(SYM).apply_market_levels([], 1)
    assert from_atoms(to_atoms("1.25")) == D("1.25")


# -- hand-checked behaviour -------------------------------------------------------------------------


def test_ioc_buy_walks_levels_pays_taker_fee_in_base_and_removes_liquidity() -> None:
    venue = spot_venue()
    result = venue.place_order("alice", SYM, BUY, LIMIT, 15_000, 5, price_ticks=10_001, time_in_force=TimeInForce.IOC)
    assert [(f.price_ticks, f.size_lots, f.liquidity) for f in result.fills] == [
        (10_000, 10_000, Liquidity.TAKER), (10_001, 5_000, Liquidity.TAKER)]
    assert result.fills[0].fee_asset == "BTC" and from_atoms(result.fills[0].fee_atoms) == D("0.001")
    assert result.order.status is OrderStatus.FILLED
    assert result.book_update is not None and result.book_update.levels == ((ASK, 10_000, 0), (ASK, 10_001, 15_000))
    assert venue.engine(SYM).book.top(ASK, 2) == [(10_001, 15_000)]
    free = venue.balances("alice")
    assert free["USDT"] == (D("10000") - D("100") - D("50.005"), D(0))
    assert free["BTC"] == (D("5") + D("1.5") * D("0.999"), D(0))


def test_a_mexc_spot_buy_pays_notional_and_fee_in_quote_and_receives_the_whole_base() -> None:
    """MEXC: "a user buys 0.1 BTC with 5000 USDT ... used 5010 USDT to buy 0.1 BTC"; a sell gets
    the notional less the fee, in quote too."""
    venue = mexc_spot_venue()
    result = venue.place_order("alice", SYM, BUY, LIMIT, 15_000, 5, price_ticks=10_001, time_in_force=TimeInForce.IOC)
    assert [(f.fee_asset, from_atoms(f.fee_atoms)) for f in result.fills] == [
        ("USDT", D("0.1")), ("USDT", D("0.050005"))]  # 0.1 % of 100 and of 50.005
    assert result.order.fee_asset == "USDT" and from_atoms(result.order.fee_atoms) == D("0.150005")
    free = venue.balances("alice")
    assert free["USDT"] == (D("10000") - D("150.005") - D("0.150005"), D(0))
    assert free["BTC"] == (D("6.5"), D(0))
    sell = venue.place_order("alice", SYM, SELL, LIMIT, 10_000, 6, price_ticks=9_999, time_in_force=TimeInForce.IOC)
    assert [(f.fee_asset, from_atoms(f.fee_atoms)) for f in sell.fills] == [("USDT", D("0.09999"))]
    assert venue.balances("alice")["USDT"][0] == free["USDT"][0] + D("99.99") - D("0.09999")
    assert venue.balances("alice")["BTC"] == (D("5.5"), D(0))
    assert venue.ledger.fees.free == {"USDT": to_atoms(D("0.150005") + D("0.09999"))}


def test_a_mexc_spot_buy_needs_its_fee_in_quote_on_top_of_the_notional() -> None:
    venue = mexc_spot_venue()
    venue.deposit("bob", "USDT", "100")  # 1 BTC at 100.00 costs 100.1 with the fee
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, venue.place_order, "bob", SYM, BUY, LIMIT, 10_000, 2,
             price_ticks=10_000, time_in_force=TimeInForce.IOC)
    venue.deposit("bob", "USDT", "0.1")
    venue.place_order("bob", SYM, BUY, LIMIT, 10_000, 3, price_ticks=10_000, time_in_force=TimeInForce.IOC)
    assert venue.balances("bob") == {"USDT": (D(0), D(0)), "BTC": (D(1), D(0))}


def test_a_resting_mexc_spot_buy_locks_its_fee_in_quote_and_pays_it_when_it_fills() -> None:
    """A resting buy locks its notional and its fee at the larger of the taker (0.1 %) and maker
    (0.05 %) rates; a fill as maker pays the maker fee from it and releases the rest."""
    venue = mexc_spot_venue()
    engine = venue.engine(SYM)
    venue.deposit("bob", "USDT", "200.1")
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, venue.place_order, "bob", SYM, BUY, LIMIT, 20_000, 2,
             price_ticks=9_999)  # 199.98 + 0.19998 of fee at the taker rate
    venue.place_order("alice", SYM, BUY, LIMIT, 20_000, 3, price_ticks=9_999, client_id="bid")
    locked = D("199.98") + D("0.19998")
    assert venue.balances("alice")["USDT"] == (D("10000") - locked, locked)
    venue.drain_events()
    engine.apply_market_levels([(BID, 9_999, 0), (ASK, 9_999, 25_000)], 7)
    (fill,) = [e for e in venue.drain_events() if isinstance(e, Fill)]
    assert fill.liquidity is Liquidity.MAKER and (fill.fee_asset, from_atoms(fill.fee_atoms)) == ("USDT", D("0.09999"))
    assert venue.balances("alice") == {"USDT": (D("10000") - D("199.98") - D("0.09999"), D(0)), "BTC": (D(7), D(0))}
    venue.place_order("alice", SYM, BUY, LIMIT, 10_000, 8, price_ticks=9_000, client_id="low")
    venue.cancel_order("alice", SYM, 9, client_id="low")
    assert venue.balances("alice")["USDT"] == (D("10000") - D("199.98") - D("0.09999"), D(0))
    # Fees raised after a buy rested on all of its account's USDT: the fee is capped at what the
    # account holds, never taking it below zero.
    venue.deposit("bob", "USDT", "0.09999")  # 200.19999: the notional and its fee at 0.1 %
    venue.place_order("bob", SYM, BUY, LIMIT, 20_000, 10, price_ticks=9_999, client_id="all in")
    totals = venue.ledger.total("USDT")
    engine.set_fees(D("0.004"), D("0.004"))
    engine.apply_market_levels([(ASK, 9_999, 20_000)], 11)
    assert venue.balances("bob") == {"USDT": (D(0), D(0)), "BTC": (D(2), D(0))}
    assert venue.ledger.total("USDT") == totals  # what bob did not pay, the fee account did not get


def test_market_buy_by_quote_amount_spends_at_most_the_amount() -> None:
    venue = spot_venue()
    result = venue.place_order("alice", SYM, BUY, MARKET, 0, 5, quote_amount=D("150"))
    assert [(f.price_ticks, f.size_lots) for f in result.fills] == [(10_000, 10_000), (10_001, 4_999)]
    assert result.order.status is OrderStatus.FILLED and result.order.filled_lots == 14_999
    assert from_atoms(result.order.filled_quote_atoms) <= D("150")


def test_an_immediate_or_market_spot_order_needs_funds_for_its_whole_size_not_what_fills() -> None:
    """The book holds 3 BTC of asks: an IOC buy of 150 BTC at 100.01 would fill 3, yet needs the
    whole 15001.5 USDT at its limit, as a GTC of it would; likewise a FOK that fills nothing, a
    sell (its whole size), a market buy (what its whole size walks to) and a capped fill."""
    venue = spot_venue()
    engine = venue.engine(SYM)
    ioc, fok = TimeInForce.IOC, TimeInForce.FOK
    refusal = rejected(ErrorCategory.INSUFFICIENT_BALANCE, venue.place_order, "alice", SYM, BUY, LIMIT, 1_500_000, 2,
                       price_ticks=10_001, time_in_force=ioc)
    assert "needs 15001.5 USDT, has 10000" in str(refusal)
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, venue.place_order, "alice", SYM, BUY, LIMIT, 1_500_000, 2,
             price_ticks=10_001, time_in_force=fok)
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, engine.take, "alice", BUY, 1_500_000, 10_001, {10_000: 10_000}, 2)
    refusal = rejected(ErrorCategory.INSUFFICIENT_BALANCE, venue.place_order, "alice", SYM, SELL, LIMIT, 60_000, 2,
                       price_ticks=9_998, time_in_force=ioc)  # 6 BTC, 3 of them on the bids
    assert "needs 6 BTC, has 5" in str(refusal)
    venue.deposit("bob", "USDT", "200")  # the asks' 3 BTC cost 300.02
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, venue.place_order, "bob", SYM, BUY, MARKET, 40_000, 2, time_in_force=fok)
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, venue.place_order, "bob", SYM, BUY, MARKET, 30_000, 2, max_fill_lots=10_000)
    assert venue.balances("alice") == {"BTC": (D(5), D(0)), "USDT": (D(10000), D(0))}
    assert venue.balances("bob") == {"USDT": (D(200), D(0))} and engine.market_levels[ASK] == {10_000: 10_000, 10_001: 20_000}
    # Funded for the whole: the IOC fills what the book holds and expires the rest.
    venue.deposit("alice", "USDT", "5001.5")
    result = venue.place_order("alice", SYM, BUY, LIMIT, 1_500_000, 3, price_ticks=10_001, time_in_force=ioc)
    assert (result.order.filled_lots, result.order.status) == (30_000, OrderStatus.EXPIRED)


def test_resting_order_locks_rests_behind_market_size_and_fills_as_maker_when_market_moves_through() -> None:
    venue = spot_venue()
    engine = venue.engine(SYM)
    result = venue.place_order("alice", SYM, BUY, LIMIT, 20_000, 5, price_ticks=9_999, client_id="bid")
    assert result.book_update is not None and result.book_update.levels == ((BID, 9_999, 30_000),)
    assert venue.balances("alice")["USDT"] == (D("10000") - D("199.98"), D("199.98"))
    venue.drain_events()
    # The market pulls its bid at 99.99 and offers 2.5 BTC there: the user's resting bid is
    # crossed and fills at its own price as maker; 0.5 BTC of the market's ask remains.
    update = engine.apply_market_levels([(BID, 9_999, 0), (ASK, 9_999, 25_000)], 7)
    assert sorted(update.levels) == [(BID, 9_999, 0), (ASK, 9_999, 5_000)]
    events = venue.drain_events()
    fills = [e for e in events if isinstance(e, Fill)]
    assert [(f.price_ticks, f.size_lots, f.liquidity) for f in fills] == [(9_999, 20_000, Liquidity.MAKER)]
    assert from_atoms(fills[0].fee_atoms) == D("0.001")  # 0.05 % maker of 2 BTC, charged in BTC
    order = venue.get_order_by_client_id("alice", SYM, "bid")
    assert order.status is OrderStatus.FILLED and isinstance(events[-1], OrderEvent)
    assert venue.balances("alice")["USDT"] == (D("10000") - D("199.98"), D(0))


def test_user_orders_share_level_after_market_size_in_time_priority() -> None:
    venue = spot_venue()
    venue.deposit("bob", "BTC", "1")
    venue.deposit("carol", "USDT", "1000")
    venue.place_order("alice", SYM, SELL, LIMIT, 3_000, 2, price_ticks=10_000, client_id="a")
    venue.place_order("bob", SYM, SELL, LIMIT, 3_000, 3, price_ticks=10_000, client_id="b")
    result = venue.place_order("carol", SYM, BUY, LIMIT, 14_000, 4, price_ticks=10_000, time_in_force=TimeInForce.IOC)
    assert [f.size_lots for f in result.fills] == [10_000, 3_000, 1_000]
    makers = [e for e in venue.drain_events() if isinstance(e, Fill) and e.liquidity is Liquidity.MAKER]
    assert [(f.user, f.size_lots) for f in makers] == [("alice", 3_000), ("bob", 1_000)]
    assert venue.get_order_by_client_id("bob", SYM, "b").status is OrderStatus.PARTIALLY_FILLED
    assert venue.engine(SYM).book.best_ask() == (10_000, 2_000)


def test_fok_all_or_nothing_and_ioc_never_rests() -> None:
    venue = spot_venue()
    fok = venue.place_order("alice", SYM, BUY, LIMIT, 40_000, 2, price_ticks=10_001, time_in_force=TimeInForce.FOK)
    assert (fok.order.status, fok.order.filled_lots, fok.fills, fok.book_update) == (OrderStatus.EXPIRED, 0, (), None)
    assert fok.order.reason == "fok"
    ioc = venue.place_order("alice", SYM, BUY, LIMIT, 40_000, 3, price_ticks=10_001, time_in_force=TimeInForce.IOC)
    assert (ioc.order.status, ioc.order.filled_lots, ioc.order.reason) == (OrderStatus.EXPIRED, 30_000, "ioc")
    assert venue.open_orders("alice") == [] and venue.balances("alice")["USDT"][1] == 0


def test_cancel_releases_lock_and_removes_level() -> None:
    venue = spot_venue()
    order = venue.place_order("alice", SYM, SELL, LIMIT, 5_000, 2, price_ticks=10_050, client_id="x").order
    assert venue.balances("alice")["BTC"] == (D("4.5"), D("0.5"))
    event, update = venue.cancel_order("alice", SYM, 3, client_id="x")
    assert (event.order_id, event.status, event.reason) == (order.order_id, OrderStatus.CANCELED, "canceled")
    assert update is not None and update.levels == ((ASK, 10_050, 0),)
    assert venue.balances("alice")["BTC"] == (D("5"), D(0))


def test_partial_fill_cap_expires_the_rest() -> None:
    venue = spot_venue()
    result = venue.place_order("alice", SYM, BUY, LIMIT, 20_000, 2, price_ticks=10_001, max_fill_lots=12_000)
    assert (result.order.filled_lots, result.order.status, result.order.reason) == (12_000, OrderStatus.EXPIRED, "partial_fill")
    assert venue.open_orders("alice") == []


def test_futures_open_close_pnl_fees_rebate_and_reduce_only() -> None:
    venue = SimExchange(ExchangeName.GATEIO_FUTURES, [perp()], leverage=10)
    engine = venue.engine(PERP)
    engine.apply_market_levels([(ASK, 600_000, 1_000), (BID, 599_990, 1_000)], 1)
    venue.deposit("alice", "USDT", "100")
    rejected(ErrorCategory.ORDER_REJECTED, venue.place_order, "alice", PERP, SELL, MARKET, 10, 2, reduce_only=True)
    opened = venue.place_order("alice", PERP, BUY, MARKET, 100, 2)  # 100 x 0.0001 BTC at 60000 = 600 USDT
    assert from_atoms(opened.fills[0].fee_atoms) == D("0.3") and opened.fills[0].fee_asset == "USDT"
    assert venue.position("alice", PERP) == (100, D("60000"), D("60"), D(0))
    engine.apply_market_levels([(BID, 599_990, 0), (BID, 610_000, 1_000), (ASK, 600_000, 0), (ASK, 610_010, 5)], 3)
    closed = venue.place_order("alice", PERP, SELL, MARKET, 500, 4, reduce_only=True)
    assert [f.size_lots for f in closed.fills] == [100]  # clipped to the position
    assert venue.position("alice", PERP) == (0, None, D(0), D("10"))
    assert venue.balances("alice")["USDT"] == (D("100") - D("0.3") + D("10") - D("0.305"), D(0))
    maker = venue.place_order("alice", PERP, SELL, LIMIT, 10, 5, price_ticks=610_010)  # joins the ask, rests
    engine.apply_market_levels([(ASK, 610_010, 0), (BID, 610_010, 20)], 6)  # the market's bid lifts the user's ask
    fill = next(e for e in venue.drain_events() if isinstance(e, Fill) and e.order_id == maker.order.order_id)
    assert fill.liquidity is Liquidity.MAKER and from_atoms(fill.fee_atoms) == D("-0.01525025")  # 0.025 % of 61.001


def test_funding_is_settled_on_every_open_position_at_the_mid_in_the_venues_favour() -> None:
    venue = SimExchange(ExchangeName.GATEIO_FUTURES, [perp()], leverage=10)
    engine = venue.engine(PERP)
    assert venue.settle_funding(PERP, D("0.0001"), 5) == []  # an empty book: no price, nothing settled
    engine.apply_market_levels([(ASK, 600_010, 1_000), (BID, 599_990, 1_000)], 1)  # mid 60000
    for user in ("long", "short", "poor"):
        venue.deposit(user, "USDT", "1000")
    venue.place_order("long", PERP, BUY, MARKET, 333, 2)  # 333 x 0.0001 BTC: 1998 USDT at the mid
    venue.place_order("short", PERP, SELL, MARKET, 333, 3)
    venue.place_order("poor", PERP, BUY, MARKET, 100, 4)
    venue.ledger.account("poor").free["USDT"] = to_atoms("0.05")  # less than the 0.0738 it owes
    totals = venue.ledger.total("USDT")
    before = {user: venue.balances(user)["USDT"][0] for user in ("long", "short", "poor")}
    entries = venue.settle_funding(PERP, D("0.000123"), 1_700_000_000_123)
    by_user = {user: venue.ledger.account(user).funding for user in ("long", "short", "poor")}
    assert [len(found) for found in by_user.values()] == [1, 1, 1] and len(entries) == 3
    # 1998 x 0.000123 = 0.245754: the long pays it, the short receives it (exact here).
    assert from_atoms(by_user["long"][0].change_atoms) == D("-0.245754")
    assert from_atoms(by_user["short"][0].change_atoms) == D("0.245754")
    assert from_atoms(by_user["poor"][0].change_atoms) == D("-0.05")  # capped at what it holds
    assert venue.balances("long")["USDT"][0] == before["long"] - D("0.245754")
    assert by_user["short"][0].balance_atoms == to_atoms(venue.balances("short")["USDT"][0])
    assert {e.wall_ms for e in entries} == {1_700_000_000_123} and len({e.entry_id for e in entries}) == 3
    assert venue.ledger.total("USDT") == totals  # paid to and taken from the market account
    # A rate whose payment is not a whole atom rounds a payment up and a receipt down.
    long_entry, short_entry = venue.settle_funding(PERP, D(1) / D(3) * D("0.001"), 6)[:2]
    assert -long_entry.change_atoms > short_entry.change_atoms > 0
    with pytest.raises(ValueError, match="not a futures market"):
        spot_venue().settle_funding(SYM, D("0.0001"), 7)


def test_spot_fees_round_to_the_atom_in_the_venues_favour() -> None:
    rate = D("0.0012345678901234567890123456789")  # a fee that is no whole number of atoms
    venue = SimExchange(ExchangeName.GATEIO, [spot(taker_fee=rate, maker_fee=-rate)])
    engine = venue.engine(SYM)
    engine.apply_market_levels([(ASK, 10_000, 10_000), (BID, 9_990, 10_000)], 1)
    venue.deposit("alice", "USDT", "10000")
    venue.deposit("alice", "BTC", "5")
    taker = venue.place_order("alice", SYM, BUY, LIMIT, 1_000, 2, price_ticks=10_000, time_in_force=TimeInForce.IOC)
    exact = Fraction(to_atoms(D("0.1"))) * Fraction(rate)  # on the 0.1 BTC it got, charged in BTC
    assert exact.denominator > 1 and taker.fills[0].fee_atoms == math.ceil(exact)
    venue.place_order("alice", SYM, SELL, LIMIT, 1_000, 3, price_ticks=10_001)  # rests, then the market takes it
    venue.drain_events()
    engine.apply_market_levels([(BID, 10_001, 1_000)], 4)
    maker = next(e for e in venue.drain_events() if isinstance(e, Fill))
    exact = Fraction(to_atoms(D("100.01") * D("0.1"))) * Fraction(-rate)  # a rebate on the USDT it got
    assert exact.denominator > 1 and maker.liquidity is Liquidity.MAKER and maker.fee_atoms == math.ceil(exact) < 0


# -- properties -------------------------------------------------------------------------------------

ASSETS = ("BTC", "USDT")
USERS = ("u1", "u2")

order_op = st.tuples(
    st.just("order"), st.sampled_from(USERS), st.sampled_from([BUY, SELL]),
    st.sampled_from([(LIMIT, TimeInForce.GTC), (LIMIT, TimeInForce.IOC), (LIMIT, TimeInForce.FOK),
                     (LIMIT, TimeInForce.POST_ONLY), (MARKET, TimeInForce.IOC), (MARKET, TimeInForce.FOK)]),
    st.integers(1, 30_000), st.integers(-20, 20),
)
cancel_op = st.tuples(st.just("cancel"), st.sampled_from(USERS), st.integers(0, 30))
market_op = st.tuples(st.just("market"), st.sampled_from([BID, ASK]), st.integers(0, 15), st.integers(0, 30_000))
ops = st.lists(st.one_of(order_op, cancel_op, market_op), min_size=1, max_size=40)
funding_op = st.tuples(st.just("funding"), st.decimals(D("-0.01"), D("0.01"), places=6))
futures_ops = st.lists(st.one_of(order_op, cancel_op, market_op, funding_op), min_size=1, max_size=40)


def check_invariants(venue: SimExchange, totals: dict[str, int]) -> None:
    ledger = venue.ledger
    for asset in ASSETS:
        assert ledger.total(asset) == totals[asset]  # conservation incl. fees and market
    engines = list(venue.engines.values())
    for user in USERS:
        account = ledger.account(user)
        assert all(v >= 0 for v in account.free.values()), account.free
        assert all(v >= 0 for v in account.locked.values()), account.locked
        assert all(p.margin_atoms >= 0 for p in account.positions.values())
        locked: dict[str, int] = {}
        for engine in engines:
            for order in engine._orders.values():
                if order.user == user and order.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                    locked[order.lock_asset] = locked.get(order.lock_asset, 0) + order.locked_atoms
                    assert order.locked_atoms == order.remaining * order.lock_per_lot
                else:
                    assert order.user != user or order.locked_atoms == 0  # released on fill/cancel/expiry
        assert {a: v for a, v in account.locked.items() if v} == {a: v for a, v in locked.items() if v}
    for engine in engines:
        bid, ask = engine.book.best_bid_price(), engine.book.best_ask_price()
        assert not (bid and ask and bid >= ask)


def run_ops(venue: SimExchange, symbol: str, operations: list[tuple[object, ...]]) -> None:
    engine = venue.engine(symbol)
    totals = {asset: venue.ledger.total(asset) for asset in ASSETS}
    now = 10
    for op in operations:
        now += 1
        if op[0] == "order":
            _, user, side, (kind, tif), size, offset = op
            best_bid, best_ask = engine.book.best_bid_price(), engine.book.best_ask_price()
            price = (best_ask if side is BUY else best_bid) + offset if kind is LIMIT else 0
            if kind is LIMIT and price <= 0:
                continue
            try:
                result = venue.place_order(user, symbol, side, kind, size, now, price_ticks=price, time_in_force=tif)  # type: ignore[arg-type]
            except OrderRejected as exc:
                assert exc.category in (ErrorCategory.INSUFFICIENT_BALANCE, ErrorCategory.ORDER_REJECTED, ErrorCategory.MIN_NOTIONAL)
                continue
            for fill in result.fills:
                if side is BUY:
                    assert fill.price_ticks >= best_ask and (kind is MARKET or fill.price_ticks <= price)
                else:
                    assert fill.price_ticks <= best_bid and (kind is MARKET or fill.price_ticks >= price)
            if tif in (TimeInForce.IOC, TimeInForce.FOK):
                assert result.order.status in (OrderStatus.FILLED, OrderStatus.EXPIRED)
            if tif is TimeInForce.FOK:
                assert result.order.filled_lots in (0, result.order.size_lots)
            if tif is TimeInForce.POST_ONLY:
                assert result.fills == ()
        elif op[0] == "funding":
            free = {user: venue.ledger.account(user).free.get("USDT", 0) for user in USERS}
            entries = venue.settle_funding(symbol, op[1], now)  # type: ignore[arg-type]
            for user in USERS:
                account = venue.ledger.account(user)
                settled = [entry for entry in entries if entry in account.funding]
                assert len(settled) == (1 if account.positions.get(symbol) and account.positions[symbol].contracts else 0)
                assert account.free.get("USDT", 0) - free[user] == sum(entry.change_atoms for entry in settled)
                assert all(entry.balance_atoms == account.free["USDT"] for entry in settled)
        elif op[0] == "cancel":
            _, user, index = op
            open_orders = venue.open_orders(user)  # type: ignore[arg-type]
            if open_orders:
                venue.cancel_order(user, symbol, now, order_id=open_orders[index % len(open_orders)].order_id)  # type: ignore[arg-type]
        else:
            _, side, distance, size = op
            own = engine.market_levels
            if side == BID:
                top = min(own[ASK], default=engine.book.best_ask_price() or 10_010)
                price = top - 1 - distance
            else:
                top = max(own[BID], default=engine.book.best_bid_price() or 9_990)
                price = top + 1 + distance
            if price > 0:
                engine.apply_market_levels([(side, price, size)], now)  # type: ignore[list-item]
        check_invariants(venue, totals)


@pytest.mark.parametrize("make_venue", [spot_venue, mexc_spot_venue], ids=["fees in the asset received", "fees in quote"])
@settings(max_examples=200, deadline=None)
@given(ops)
def test_spot_properties(make_venue: Callable[[], SimExchange], operations: list[tuple[object, ...]]) -> None:
    venue = make_venue()
    for user in USERS:
        venue.deposit(user, "USDT", "300")
        venue.deposit(user, "BTC", "2")
    run_ops(venue, SYM, operations)


@settings(max_examples=300, deadline=None)
@given(futures_ops)
def test_futures_properties(operations: list[tuple[object, ...]]) -> None:
    venue = SimExchange(ExchangeName.GATEIO_FUTURES, [perp(maker_fee=D("-0.00025"))], leverage=5)
    venue.engine(PERP).apply_market_levels([(ASK, 10_000, 5_000), (BID, 9_990, 5_000)], 1)
    for user in USERS:
        venue.deposit(user, "USDT", "50")
    run_ops(venue, PERP, operations)


# -- replacing the market's liquidity (the backtest's mirror) --------------------------------------


def _random_book(rng: random.Random, mid: int) -> tuple[dict[int, int], dict[int, int]]:
    """Market bids below ``mid``, asks above, best first, with gaps."""
    bids = {mid - 1 - rng.randrange(3) - 3 * i: rng.randrange(1, 30_000) for i in range(rng.randrange(0, 12))}
    asks = {mid + 1 + rng.randrange(3) + 3 * i: rng.randrange(1, 30_000) for i in range(rng.randrange(0, 12))}
    return bids, asks


def test_set_market_levels_makes_the_markets_size_exactly_the_levels_given() -> None:
    rng = random.Random(5)
    venue = spot_venue()
    engine = venue.engine(SYM)
    for step in range(200):
        bids, asks = _random_book(rng, 10_000 + rng.randrange(-30, 30))
        engine.set_market_levels(bids, asks, step)
        assert engine.market_levels == (bids, asks)
        assert engine.book.top(BID, 100) == sorted(bids.items(), reverse=True)
        assert engine.book.top(ASK, 100) == sorted(asks.items())


def test_set_market_levels_crosses_resting_orders_as_apply_market_levels_does() -> None:
    venue = spot_venue()
    engine = venue.engine(SYM)
    resting = venue.place_order("alice", SYM, BUY, LIMIT, 5_000, 2, price_ticks=9_999)
    assert resting.order.status is OrderStatus.NEW and engine.has_resting_orders
    with pytest.raises(ValueError, match="resting user orders"):
        engine.take("alice", SELL, 5_000, 9_998, {}, 3)
    venue.drain_events()
    engine.set_market_levels({9_998: 10_000}, {9_999: 3_000, 10_001: 4_000}, 3)  # an ask reaches the bid at 99.99
    fills = [e for e in venue.drain_events() if isinstance(e, Fill)]
    assert [(f.price_ticks, f.size_lots, f.liquidity) for f in fills] == [(9_999, 3_000, Liquidity.MAKER)]
    assert engine.market_levels == ({9_998: 10_000}, {10_001: 4_000})


def _within(levels: dict[int, int], taker: int, limit: int) -> dict[int, int]:
    return {p: s for p, s in levels.items() if (p <= limit if taker == ASK else p >= limit)}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("futures", [False, True], ids=["spot", "futures"])
def test_an_immediate_order_taking_its_reach_fills_as_after_mirroring_the_whole_book(seed: int, futures: bool) -> None:
    # The backtest's two ways to fill: mirror the whole book into the engine and place (any
    # order, and every order while one rests), or let an immediate order take its reach (the
    # engine's own market levels then stay stale). Orders, fills, balances, positions and private
    # events must not tell them apart, also for the resting orders and fills that come later, nor
    # which orders they refuse, and why.
    rng = random.Random(seed)
    if futures:
        instrument, symbol, assets = perp(), PERP, ("USDT",)
    else:
        instrument, symbol, assets = spot(), SYM, ("USDT", "BTC")
    whole, reach = (SimExchange(instrument.exchange, [instrument], leverage=5) for _ in range(2))
    funds = {"USDT": "1500"} if futures else {"USDT": "1000", "BTC": "10"}  # a few orders' worth
    for venue in (whole, reach):
        for asset, amount in funds.items():
            venue.deposit("alice", asset, amount)
    fills = rests = 0
    refused_takes: Counter[ErrorCategory] = Counter()
    for step in range(300):
        mid = 10_000 + rng.randrange(-40, 40)
        bids, asks = _random_book(rng, mid)
        side = rng.choice((BUY, SELL))
        limit = mid + rng.randrange(-15, 16)
        roll = rng.random()
        if roll < 0.05:
            size = rng.randrange(0, 100)  # no size at all, or on spot under the 1 USDT minimum
        elif roll < 0.2:
            size = rng.randrange(60_000, 300_000)  # past the balance, where the book holds that much
        else:
            size = rng.randrange(200, 60_000)
        # Now and then the last step's client id: refused as a duplicate where that order was placed.
        client_id = f"o{step - 1}" if step and rng.random() < 0.05 else f"o{step}"
        resting = whole.engine(symbol).has_resting_orders
        assert reach.engine(symbol).has_resting_orders is resting
        if resting and rng.random() < 0.3:
            open_id = whole.open_orders("alice")[0].order_id
            events = [venue.cancel_order("alice", symbol, step, order_id=open_id)[0] for venue in (whole, reach)]
            assert events[0] == events[1]
            continue
        tif = rng.choice((TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTC))
        results = []
        for venue in (whole, reach):
            try:
                if venue is reach and tif is not TimeInForce.GTC and not resting:
                    taker, levels = (ASK, asks) if side is BUY else (BID, bids)
                    results.append(
                        venue.engine(symbol).take("alice", side, size, limit, _within(levels, taker, limit), step,
                                                  time_in_force=tif, client_id=client_id)
                    )
                else:
                    venue.engine(symbol).set_market_levels(bids, asks, step)
                    results.append(
                        venue.place_order("alice", symbol, side, LIMIT, size, step, price_ticks=limit,
                                          time_in_force=tif, client_id=client_id)
                    )
            except OrderRejected as exc:
                results.append(exc.category)  # type: ignore[arg-type]
        first, second = results
        if isinstance(first, ErrorCategory):
            assert second is first
            refused_takes[first] += tif is not TimeInForce.GTC and not resting
        else:
            assert not isinstance(second, ErrorCategory)
            assert first.order == second.order and first.fills == second.fills
            fills += len(first.fills)
            rests += first.order.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
        assert whole.balances("alice") == reach.balances("alice")
        assert whole.drain_events() == reach.drain_events()
        if futures:
            assert whole.position("alice", symbol) == reach.position("alice", symbol)
        assert whole.open_orders("alice") == reach.open_orders("alice")
    assert fills > 100 and rests > 5
    assert refused_takes[ErrorCategory.INSUFFICIENT_BALANCE] and refused_takes[ErrorCategory.INVALID_REQUEST]
    assert futures or refused_takes[ErrorCategory.MIN_NOTIONAL]
    for asset in assets:
        assert whole.ledger.total(asset) == reach.ledger.total(asset) == 0


def test_take_refuses_what_is_not_an_immediate_orders_liquidity() -> None:
    venue = spot_venue()
    engine = venue.engine(SYM)
    with pytest.raises(ValueError, match="IOC or FOK"):
        engine.take("alice", BUY, 1_000, 10_001, {10_000: 500}, 2, time_in_force=TimeInForce.GTC)
    for levels in ({10_002: 500}, {10_001: 500, 10_000: 500}, {10_000: 0}, {10_000: -1}):
        with pytest.raises(ValueError, match="not liquidity"):
            engine.take("alice", BUY, 1_000, 10_001, levels, 2)
    with pytest.raises(ValueError, match="not liquidity"):
        engine.take("alice", SELL, 1_000, 9_998, {9_998: 500, 9_999: 500}, 2)
    # Rejected as place would, before anything changes.
    rejected(ErrorCategory.MIN_NOTIONAL, engine.take, "alice", BUY, 50, 10_000, {10_000: 500}, 2)
    rejected(ErrorCategory.INSUFFICIENT_BALANCE, engine.take, "alice", BUY, 9_000_000, 10_000, {10_000: 9_000_000}, 2)
    taken = engine.take("alice", BUY, 15_000, 10_001, {10_000: 10_000, 10_001: 2_000}, 3, client_id="x")
    assert [(f.price_ticks, f.size_lots) for f in taken.fills] == [(10_000, 10_000), (10_001, 2_000)]
    assert taken.order.status is OrderStatus.EXPIRED and taken.order.reason == "ioc" and taken.book_update is None
    assert venue.get_order("alice", taken.order.order_id) == venue.get_order_by_client_id("alice", SYM, "x")
    rejected(ErrorCategory.INVALID_REQUEST, engine.take, "alice", BUY, 1_000, 10_000, {}, 4, client_id="x")
    assert engine.market_levels[ASK] == {10_000: 10_000, 10_001: 20_000}  # the book's own liquidity is untouched


# -- order history -----------------------------------------------------------------------------------


def test_open_orders_are_the_resting_ones_oldest_first_through_fills_cancels_and_market_moves() -> None:
    venue = spot_venue()
    venue.deposit("bob", "USDT", "10000")
    engine = venue.engine(SYM)
    rng = random.Random(5)
    for n in range(400):
        user = rng.choice(("alice", "bob"))
        action = rng.random()
        if action < 0.5:
            price = rng.randrange(9_990, 10_010)
            side = BUY if price < 10_000 else SELL
            tif = rng.choice((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC))
            try:
                venue.place_order(user, SYM, side, LIMIT, rng.randrange(1, 20) * 1000, n, price_ticks=price, time_in_force=tif)
            except OrderRejected:
                pass
        elif action < 0.7 and venue.open_orders(user):
            venue.cancel_order(user, SYM, n, order_id=rng.choice(venue.open_orders(user)).order_id)
        else:
            mid = rng.randrange(9_992, 10_008)
            engine.set_market_levels({mid - 1: 10_000}, {mid + 1: 10_000}, n)
        for who in ("alice", "bob"):
            known = [o for o in engine._orders.values() if o.user == who and o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)]
            assert [e.order_id for e in venue.open_orders(who)] == [o.order_id for o in known]
    assert venue.open_orders("alice") and venue.open_orders("bob")


def test_an_engine_forgets_its_oldest_finished_orders_and_keeps_the_open_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import arb.sim.matching as matching

    monkeypatch.setattr(matching, "FINISHED_ORDERS_KEPT", 8)
    venue = spot_venue()
    resting = [
        venue.place_order("alice", SYM, BUY, LIMIT, 1000, n, price_ticks=9_000 + n, time_in_force=TimeInForce.GTC,
                          client_id=f"rest{n}").order
        for n in range(3)
    ]
    finished = [
        venue.place_order("alice", SYM, BUY, LIMIT, 1000, 10 + n, price_ticks=9_000, time_in_force=TimeInForce.IOC,
                          client_id=f"ioc{n}").order
        for n in range(20)
    ]
    assert len(venue.engine(SYM)._orders) <= 8
    assert [e.order_id for e in venue.open_orders("alice")] == [o.order_id for o in resting]
    for order in resting:
        assert venue.get_order("alice", order.order_id).status is OrderStatus.NEW
    assert venue.get_order("alice", finished[-1].order_id).status is OrderStatus.EXPIRED
    assert venue.get_order_by_client_id("alice", SYM, "ioc19").order_id == finished[-1].order_id
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.get_order, "alice", finished[0].order_id)
    rejected(ErrorCategory.UNKNOWN_ORDER, venue.get_order_by_client_id, "alice", SYM, "ioc0")
    # A forgotten order's client id is free again, as on a venue past its order history.
    again = venue.place_order("alice", SYM, BUY, LIMIT, 1000, 50, price_ticks=9_000, time_in_force=TimeInForce.IOC,
                              client_id="ioc0")
    assert again.order.order_id > finished[-1].order_id


def test_open_orders_alone_past_the_bound_are_all_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import arb.sim.matching as matching

    monkeypatch.setattr(matching, "FINISHED_ORDERS_KEPT", 8)
    venue = spot_venue()
    orders = [
        venue.place_order("alice", SYM, BUY, LIMIT, 1000, n, price_ticks=9_000 + n, time_in_force=TimeInForce.GTC).order
        for n in range(20)
    ]
    assert [e.order_id for e in venue.open_orders("alice")] == [o.order_id for o in orders]


def test_an_orders_state_carries_the_fees_of_all_its_fills_so_far() -> None:
    venue = spot_venue()
    venue.deposit("bob", "BTC", "5")
    placed = venue.place_order("alice", SYM, BUY, LIMIT, 30_000, 1, price_ticks=10_000, time_in_force=TimeInForce.GTC)
    assert placed.order.fee_asset == "BTC" and placed.order.fee_atoms == sum(f.fee_atoms for f in placed.fills) > 0
    venue.drain_events()
    venue.place_order("bob", SYM, SELL, LIMIT, 5_000, 2, price_ticks=10_000, time_in_force=TimeInForce.IOC)
    maker_fees = [e.fee_atoms for e in venue.drain_events() if isinstance(e, Fill) and e.order_id == placed.order.order_id]
    state = venue.get_order("alice", placed.order.order_id)
    assert state.status is OrderStatus.PARTIALLY_FILLED and state.filled_lots > placed.order.filled_lots
    assert maker_fees and state.fee_atoms == sum(f.fee_atoms for f in placed.fills) + sum(maker_fees)
    fresh = venue.place_order("alice", SYM, BUY, LIMIT, 1000, 3, price_ticks=9_000, time_in_force=TimeInForce.GTC)
    assert (fresh.order.fee_atoms, fresh.order.fee_asset) == (0, "")


# -- update ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", [ExchangeName.GATEIO, ExchangeName.MEXC], ids=lambda e: e.value)
def test_a_change_takes_one_update_id_per_level_and_the_next_change_follows_on(exchange: ExchangeName) -> None:
    """Gate.io's ``U..u`` and MEXC spot's ``fromVersion..toVersion`` span the events of one push."""
    engine = SimExchange(exchange, [spot(exchange)]).engine(SYM)
    start = engine.book.last_update_id
    first = engine.apply_market_levels([(ASK, 10_000, 1), (ASK, 10_001, 2), (BID, 9_999, 3)], 1)
    assert (first.first_update_id, first.last_update_id) == (start + 1, start + 3)
    second = engine.apply_market_levels([(ASK, 10_000, 4)], 2)
    assert (second.first_update_id, second.last_update_id) == (start + 4, start + 4)
    assert engine.snapshot(10).last_update_id == engine.book.last_update_id == start + 4


def test_a_mexc_contract_change_takes_one_version_whatever_its_levels() -> None:
    """MEXC contract depth, subscribed unmerged, steps ``version`` by one per push."""
    engine = SimExchange(ExchangeName.MEXC_FUTURES, [perp(ExchangeName.MEXC_FUTURES)]).engine(PERP)
    start = engine.book.last_update_id
    first = engine.apply_market_levels([(ASK, 1_000, 1), (ASK, 1_001, 2), (BID, 999, 3)], 1)
    second = engine.apply_market_levels([(ASK, 1_000, 4)], 2)
    assert [(u.first_update_id, u.last_update_id) for u in (first, second)] == [(start + 1,) * 2, (start + 2,) * 2]
