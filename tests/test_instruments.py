"""Tests of arb/instruments.py: Instrument invariants, tick/lot conversions, symbols, catalogs."""

from decimal import Decimal, localcontext

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arb.errors import ArbitrageEngineError
from arb.instruments import (
    INT64_MAX,
    INT64_MIN,
    Instrument,
    InstrumentCatalog,
    InstrumentError,
    SkippedPair,
    SymbolFormat,
    decimals_of,
    decode_metadata,
    round_down_to_step,
    round_up_to_step,
    split_symbol,
    trading_rules_changed,
    unified_symbol,
)
from arb.types import ExchangeName, OrderSide

D = Decimal


def make(**overrides: object) -> Instrument:
    fields: dict[str, object] = dict(
        exchange=ExchangeName.GATEIO,
        symbol="BTC/USDT",
        venue_symbol="BTC_USDT",
        base="BTC",
        quote="USDT",
        tick_size=D("0.05"),
        lot_size=D("0.0001"),
        min_size=D("0.0001"),
        min_notional=D("1"),
        taker_fee=D("0.002"),
        maker_fee=D("0.002"),
        price_decimals=2,
        size_decimals=4,
    )
    fields.update(overrides)
    return Instrument(**fields)  # type: ignore[arg-type]


def futures(**overrides: object) -> Instrument:
    fields: dict[str, object] = dict(
        exchange=ExchangeName.GATEIO_FUTURES,
        symbol="BTC/USDT:USDT",
        lot_size=D(1),
        min_size=D(1),
        min_notional=D(0),
        contract_size=D("0.0001"),
        tick_size=D("0.1"),
        price_decimals=1,
        size_decimals=0,
    )
    fields.update(overrides)
    return make(**fields)


# --- bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"tick_size": D("0.005")}, "tick_size=0.005 needs more than price_decimals=2"),
        ({"lot_size": D("0.00001")}, "lot_size=0.00001 needs more than size_decimals=4"),
        ({"tick_size": D(0)}, "tick_size=0 must be a positive number"),
        ({"tick_size": D("-0.01")}, "tick_size=-0.01 must be a positive number"),
        ({"lot_size": D("NaN")}, "lot_size=NaN must be a positive number"),
        ({"contract_size": D(0)}, "contract_size=0 must be a positive number"),
        ({"min_size": D("0.00015")}, "min_size=0.00015 is not a multiple of lot_size=0.0001"),
        ({"min_notional": D(-1)}, "min_notional=-1 must be zero or positive"),
        ({"taker_fee": D(1)}, "taker_fee=1 is not a fee fraction"),
        ({"maker_fee": D("-1.5")}, "maker_fee=-1.5 is not a fee fraction"),
        ({"price_decimals": -1}, "price_decimals=-1 outside 0..18"),
        ({"size_decimals": 19}, "size_decimals=19 outside 0..18"),
        ({"symbol": "BTC-USDT"}, "symbol should be 'BTC/USDT'"),
        ({"symbol": "BTC/USDT:USDT"}, "symbol should be 'BTC/USDT'"),
    ],
)
def test_invalid_instrument_is_refused_naming_it(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(InstrumentError, match="instrument gateio") as info:
        make(**overrides)
    assert fragment in str(info.value)
    assert isinstance(info.value, ArbitrageEngineError)


def test_futures_symbol_must_carry_settle() -> None:
    with pytest.raises(InstrumentError, match="symbol should be 'BTC/USDT:USDT'"):
        futures(symbol="BTC/USDT")


@pytest.mark.parametrize(
    ("price", "fragment"),
    [
        (D("19137.74"), "price 19137.74 is not a multiple of tick_size 0.05"),
        (D("19137.751"), "price 19137.751 is not a multiple of tick_size 0.05"),
        (D("1E-30"), "is not a multiple of tick_size"),
        (D("NaN"), "is not a finite Decimal"),
        (D("Infinity"), "is not a finite Decimal"),
        (19137.75, "(float) is not a finite Decimal"),
        (19137, "(int) is not a finite Decimal"),
        ("19137.75", "(str) is not a finite Decimal"),
        (D("1e30"), "outside the int64 range"),
    ],
)
def test_price_to_ticks_refuses_off_grid_and_non_decimal(price: object, fragment: str) -> None:
    with pytest.raises(InstrumentError, match="instrument gateio BTC/USDT") as info:
        make().price_to_ticks(price)  # type: ignore[arg-type]
    assert fragment in str(info.value)


@pytest.mark.parametrize("ticks", [True, 1.0, D(1), INT64_MAX + 1, INT64_MIN - 1, "5"])
def test_ticks_and_lots_must_be_int64(ticks: object) -> None:
    instrument = make()
    with pytest.raises(InstrumentError, match="is not an int64"):
        instrument.ticks_to_price(ticks)  # type: ignore[arg-type]
    with pytest.raises(InstrumentError, match="is not an int64"):
        instrument.lots_to_size(ticks)  # type: ignore[arg-type]


def test_size_to_lots_refuses_a_fraction_of_a_lot() -> None:
    with pytest.raises(InstrumentError, match=r"size 0.00015 is not a multiple of lot_size 0.0001"):
        make().size_to_lots(D("0.00015"))


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC/", "/USDT", "BTC/USDT:", "A/B/C", ""])
def test_split_symbol_refuses_malformed(symbol: str) -> None:
    with pytest.raises(InstrumentError, match="is not of the form BASE/QUOTE"):
        split_symbol(symbol)


@pytest.mark.parametrize(("base", "quote"), [("", "USDT"), ("BTC", "US/DT"), ("BTC", " USDT"), ("B:TC", "USDT")])
def test_unified_symbol_refuses_bad_assets(base: str, quote: str) -> None:
    with pytest.raises(InstrumentError, match="is empty or contains"):
        unified_symbol(base, quote)


def test_symbol_format_refuses_wrong_market_kind() -> None:
    spot = SymbolFormat(venue="gateio", separator="_")
    perp = SymbolFormat(venue="gateio_futures", separator="_", perpetual=True)
    with pytest.raises(InstrumentError, match="is not a spot BASE/QUOTE symbol"):
        spot.to_venue("BTC/USDT:USDT")
    with pytest.raises(InstrumentError, match="is not a linear perpetual"):
        perp.to_venue("BTC/USDT")
    with pytest.raises(InstrumentError, match="is not a linear perpetual"):
        perp.to_venue("BTC/USD:BTC")
    with pytest.raises(InstrumentError, match="cannot split venue symbol 'BTCUSDT'"):
        spot.from_venue("BTCUSDT")
    with pytest.raises(InstrumentError, match="cannot split venue symbol 'XYZ'"):
        SymbolFormat(venue="mexc", separator="", quote_assets=("USDT",)).from_venue("XYZ")


def test_catalog_refuses_duplicates_and_foreign_instruments() -> None:
    with pytest.raises(InstrumentError, match="duplicate instrument BTC_USDT"):
        InstrumentCatalog(ExchangeName.GATEIO, [make(), make()])
    with pytest.raises(InstrumentError, match="catalog given instrument BTC/USDT:USDT of gateio_futures"):
        InstrumentCatalog(ExchangeName.GATEIO, [futures()])


def test_catalog_lookup_says_why_a_pair_is_missing() -> None:
    catalog = InstrumentCatalog(
        ExchangeName.GATEIO, [make()], [SkippedPair("SAL_USDT", "SAL/USDT", "trade_status=untradable")]
    )
    with pytest.raises(InstrumentError, match="instrument 'SAL/USDT' was left out: trade_status=untradable"):
        catalog.get("SAL/USDT")
    with pytest.raises(InstrumentError, match="instrument 'SAL_USDT' was left out"):
        catalog.by_venue_symbol("SAL_USDT")
    with pytest.raises(InstrumentError, match="gateio: no instrument 'ETH/USDT'"):
        catalog.get("ETH/USDT")
    assert catalog.get("BTC/USDT") is catalog.by_venue_symbol("BTC_USDT")
    assert "BTC/USDT" in catalog and len(catalog) == 1 and list(catalog) == [make()]


def test_catalog_replaced_swaps_one_instrument_and_keeps_the_rest() -> None:
    eth = make(symbol="ETH/USDT", venue_symbol="ETH_USDT", base="ETH")
    skipped = [SkippedPair("SAL_USDT", "SAL/USDT", "trade_status=untradable")]
    catalog = InstrumentCatalog(ExchangeName.GATEIO, [make(), eth], skipped, fees_from_account=True)
    cheaper = make(taker_fee=D("0.001"))
    copy = catalog.replaced(cheaper)
    assert copy.get("BTC/USDT") is cheaper and copy.by_venue_symbol("BTC_USDT") is cheaper
    assert copy.get("ETH/USDT") is eth and copy.skipped == catalog.skipped and copy.fees_from_account
    assert catalog.get("BTC/USDT") == make()  # the original is left as it was
    with pytest.raises(InstrumentError, match="no instrument 'XRP/USDT'"):
        catalog.replaced(make(symbol="XRP/USDT", venue_symbol="XRP_USDT", base="XRP"))


def test_decode_metadata_names_source_and_json_path() -> None:
    class Pair(msgspec.Struct):
        precision: int

    with pytest.raises(InstrumentError, match=r"venue GET /pairs: Expected `int`, got `str` - at `\$\[1\].precision`"):
        decode_metadata(b'[{"precision":2},{"precision":"x"}]', list[Pair], "venue GET /pairs")
    with pytest.raises(InstrumentError, match="venue GET /pairs: "):
        decode_metadata(b"not json", list[Pair], "venue GET /pairs")


# --- behaviour -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick", "decimals", "lot", "size_decimals", "expected"),
    [
        (D("0.05"), 2, D("0.0001"), 4, (2, 5, 4, 1)),
        (D("0.01"), 2, D(1), 0, (2, 1, 0, 1)),
        (D("10"), 0, D("100"), 0, (0, 10, 0, 100)),
        (D("0.5"), 1, D("0.25"), 2, (1, 5, 2, 25)),
        (D("1E-8"), 8, D("1E-8"), 8, (8, 1, 8, 1)),
        (D("0.010"), 3, D("0.0001"), 4, (3, 10, 4, 1)),
    ],
)
def test_wire_scale(tick: Decimal, decimals: int, lot: Decimal, size_decimals: int, expected: tuple[int, ...]) -> None:
    instrument = make(tick_size=tick, price_decimals=decimals, lot_size=lot, size_decimals=size_decimals, min_size=lot)
    assert instrument.wire_scale() == expected
    price_decimals, tick_units, size_dec, lot_units = expected
    assert D(tick_units).scaleb(-price_decimals) == tick
    assert D(lot_units).scaleb(-size_dec) == lot


def test_conversions_on_a_known_book_level() -> None:
    instrument = make()
    assert instrument.price_to_ticks(D("19137.75")) == 382755
    assert instrument.price_to_ticks(D("19137.7500000")) == 382755  # trailing zeros as venues send them
    assert instrument.ticks_to_price(382755) == D("19137.75")
    assert instrument.format_price(382755) == "19137.75"
    assert instrument.size_to_lots(D("0.61350000")) == 6135
    assert instrument.lots_to_size(6135) == D("0.6135")
    assert instrument.price_to_ticks(D(0)) == 0
    assert instrument.price_to_ticks(D("-0.05")) == -1


def test_formatting_never_uses_exponent_notation() -> None:
    tiny = make(tick_size=D("1E-10"), price_decimals=10, lot_size=D(1000), size_decimals=0, min_size=D(1000))
    assert str(tiny.ticks_to_price(1)) != "0.0000000001"  # why format_* exists
    assert tiny.format_price(1) == "0.0000000001"
    assert tiny.format_size(3) == "3000"


def test_base_quantity_of_futures_contracts() -> None:
    contract = futures()
    assert contract.base_quantity_of(25) == D("0.0025")
    assert contract.base_quantity_of(-3) == D("-0.0003")  # Gate sells are negative sizes
    assert make().base_quantity_of(6135) == D("0.6135")
    assert contract.is_futures and not make().is_futures
    assert contract.base_lot == D("0.0001") == contract.base_quantity_of(1)
    assert make().base_lot == make().lot_size == make().base_quantity_of(1)


def test_the_fee_asset_of_a_fill_follows_the_market() -> None:
    """Spot fees in the asset received (Gate.io: base on a buy) unless the market charges them in
    quote on both sides (MEXC); futures in the settle asset."""
    gate, mexc = make(), make(exchange=ExchangeName.MEXC, venue_symbol="BTCUSDT", fees_in_quote=True)
    assert not gate.fees_in_quote  # the default, for instruments built without it
    assert (gate.fee_asset(OrderSide.BUY), gate.fee_asset(OrderSide.SELL)) == ("BTC", "USDT")
    assert (mexc.fee_asset(OrderSide.BUY), mexc.fee_asset(OrderSide.SELL)) == ("USDT", "USDT")
    assert futures().fee_asset(OrderSide.BUY) == futures(fees_in_quote=True).fee_asset(OrderSide.BUY) == "USDT"


def test_symbols_round_trip() -> None:
    assert unified_symbol("BTC", "USDT") == "BTC/USDT"
    assert unified_symbol("BTC", "USDT", "USDT") == "BTC/USDT:USDT"
    assert split_symbol("BTC/USDT:USDT") == ("BTC", "USDT", "USDT")
    assert split_symbol("ETH/BTC") == ("ETH", "BTC", None)
    concatenated = SymbolFormat(venue="mexc", separator="", quote_assets=("USDT", "USDC", "USD1", "BTC"))
    assert concatenated.to_venue("BTC/USDC") == "BTCUSDC"
    assert concatenated.from_venue("ETHBTC") == "ETH/BTC"
    assert concatenated.from_venue("WLFIUSD1") == "WLFI/USD1"


def test_helpers() -> None:
    assert [decimals_of(D(s)) for s in ("0.0005", "0.5", "10", "1E+2", "0.010", "1")] == [4, 1, 0, 0, 2, 0]
    assert round_up_to_step(D("0.0001"), D("0.01")) == D("0.01")
    assert round_up_to_step(D("0.001"), D("0.0001")) == D("0.001")
    assert round_up_to_step(D("0.0015"), D("0.001")) == D("0.002")
    assert round_up_to_step(D(0), D("0.001")) == D("0.001")


@pytest.mark.parametrize(("value", "step"), [
    ("2.99999999999999999999999999999", "1"),
    ("123456789012.1234567890123456789", "1E-18"),
    ("0.000000000000000000000000000099999", "1E-31"),
])
def test_rounding_to_a_step_never_crosses_the_value_however_many_digits_it_has(value: str, step: str) -> None:
    """In the default 28 digits the quotient rounded to nearest first: 2.99...9 (29 digits) came out
    as 3 rounded "down", the one place a sell quantity could be rounded up past what is held."""
    down, up = round_down_to_step(D(value), D(step)), round_up_to_step(D(value), D(step))
    assert down <= D(value) <= up
    with localcontext() as wide:
        wide.prec = 80
        assert up - down <= D(step) and (down / D(step)) % 1 == 0 and (up / D(step)) % 1 == 0


# --- properties ----------------------------------------------------------------------

steps = st.sampled_from(
    [(D("0.05"), 2), (D("0.01"), 2), (D("1E-10"), 10), (D("0.5"), 1), (D(10), 0), (D("0.0001"), 4), (D("25"), 0)]
)


@given(step=steps, ticks=st.integers(min_value=-(2**62), max_value=2**62))
def test_ticks_round_trip(step: tuple[Decimal, int], ticks: int) -> None:
    tick, decimals = step
    instrument = make(tick_size=tick, price_decimals=decimals)
    price = instrument.ticks_to_price(ticks)
    assert price == tick * ticks
    assert instrument.price_to_ticks(price) == ticks
    assert instrument.price_to_ticks(D(instrument.format_price(ticks))) == ticks


@given(step=steps, lots=st.integers(min_value=INT64_MIN // 100, max_value=INT64_MAX // 100))
def test_lots_round_trip(step: tuple[Decimal, int], lots: int) -> None:
    lot, decimals = step
    instrument = make(lot_size=lot, size_decimals=decimals, min_size=lot)
    size = instrument.lots_to_size(lots)
    assert size == lot * lots
    assert instrument.size_to_lots(size) == lots


@given(step=steps, value=st.decimals(allow_nan=False, allow_infinity=False, places=12, min_value=-(10**6), max_value=10**6))
def test_price_to_ticks_is_exact_or_refuses(step: tuple[Decimal, int], value: Decimal) -> None:
    tick, decimals = step
    instrument = make(tick_size=tick, price_decimals=decimals)
    if value % tick == 0:
        assert instrument.ticks_to_price(instrument.price_to_ticks(value)) == value
    else:
        with pytest.raises(InstrumentError, match="is not a multiple of tick_size"):
            instrument.price_to_ticks(value)


def test_steps_written_differently_convert_alike() -> None:
    """Equal steps however written (0.1, 0.10, 1E-1) and the same step at other decimals give the same results."""
    sizes = [make(lot_size=lot, min_size=lot, size_decimals=decimals) for lot, decimals in (
        (D("0.1"), 4), (D("0.10"), 4), (D("1E-1"), 4), (D("0.1000"), 4), (D("0.1"), 1), (D("0.1"), 7)
    )]
    for instrument in sizes:
        assert instrument.size_to_lots(D("2.3")) == 23
        assert instrument.lots_to_size(23) == D("2.3")
    assert [str(i.lots_to_size(23)) for i in sizes] == ["2.3000"] * 4 + ["2.3", "2.3000000"]
    assert [i.wire_scale()[2:] for i in sizes] == [(4, 1000)] * 4 + [(1, 1), (7, 1_000_000)]


def test_trading_rules_changed_names_every_change_of_the_grid_and_not_fees_or_minimums() -> None:
    traded = make()
    assert trading_rules_changed(traded, make()) is None
    # A new rate is taken as the engine runs, whichever way it goes.
    assert trading_rules_changed(traded, make(taker_fee=D("0.0025"))) is None
    assert trading_rules_changed(traded, make(taker_fee=D("0.001"), maker_fee=D("0.003"))) is None
    assert trading_rules_changed(traded, make(min_size=D("0.001"), min_notional=D("5"))) is None  # taken as it runs
    assert trading_rules_changed(traded, make(tick_size=D("0.1"), price_decimals=1, min_notional=D("5"))) == (
        "trading rules changed (tick_size 0.05 -> 0.1, price_decimals 2 -> 1); "
        "restart the engine to trade it by the new rules"
    )
    assert "contract_size 0.0001 -> 0.001" in (trading_rules_changed(futures(), futures(contract_size=D("0.001"))) or "")
