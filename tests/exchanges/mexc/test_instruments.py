"""Tests of arb/exchanges/mexc/instruments.py and schemas.py on the docs' and ccxt's MEXC payloads."""

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arb.exchanges.mexc import constants
from arb.exchanges.mexc.instruments import (
    from_venue_symbol,
    instrument_from_symbol,
    parse_contract_detail,
    parse_default_symbols,
    parse_exchange_info,
    to_venue_symbol,
)
from arb.exchanges.mexc.schemas import ContractDepth, DepthSnapshot, ExchangeInfoSymbol, OrderResponse
from arb.instruments import InstrumentError
from arb.sim.cluster import default_instruments
from arb.types import ExchangeName, OrderSide

D = Decimal

# Synthesized from the contract docs' field list (values as in protocols.md: contractSize 0.0001,
# takerFeeRate 0.0006, makerFeeRate 0.0002); JSON numbers, as the contract API sends them.
CONTRACT_DETAIL = (
    b'{"success":true,"code":0,"data":[{"symbol":"BTC_USDT","baseCoin":"BTC","quoteCoin":"USDT",'
    b'"settleCoin":"USDT","contractSize":0.0001,"priceUnit":0.1,"priceScale":1,"volUnit":1,"volScale":0,'
    b'"minVol":1,"maxVol":1000000,"takerFeeRate":0.0006,"makerFeeRate":0.0002,"state":0,"apiAllowed":false},'
    b'{"symbol":"LUNA_USDT","baseCoin":"LUNA","quoteCoin":"USDT","settleCoin":"USDT","contractSize":1,'
    b'"priceUnit":0.0001,"volUnit":1,"minVol":1,"maxVol":10,"takerFeeRate":0.0006,"makerFeeRate":0.0002,"state":3}]}'
)


@pytest.fixture(scope="module")
def docs(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "examples" / "mexc_docs_examples.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ccxt(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())  # type: ignore[no-any-return]


def exchange_info(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"timezone": "CST", "serverTime": 1, "symbols": list(entries)}).encode()


# --- bad payloads --------------------------------------------------------------------


def test_a_malformed_symbol_is_left_out_naming_the_field_and_the_others_are_kept(docs: dict[str, Any]) -> None:
    """One malformed entry made the whole exchangeInfo unreadable, every MEXC spot pair with it."""
    entry = docs["spot_exchangeInfo_symbol_entry"]
    bad = {**entry, "symbol": "ABCUSDT", "baseAsset": "ABC", "baseAssetPrecision": "2"}
    catalog, alone = parse_exchange_info(exchange_info(bad, entry)), parse_exchange_info(exchange_info(entry))
    assert list(catalog) == list(alone)
    skip, *others = catalog.skipped
    assert tuple(others) == alone.skipped
    assert (skip.venue_symbol, skip.symbol) == ("ABCUSDT", "ABC/USDT")
    assert skip.reason == (
        "unreadable entry #0 of mexc GET /api/v3/exchangeInfo: Expected `int`, got `str` - at `$.baseAssetPrecision`"
    )
    with pytest.raises(InstrumentError, match=r"exchangeInfo: Object missing required field `symbols`"):
        parse_exchange_info(b"{}")


@pytest.mark.parametrize(("value", "problem"), [("sNaN", "not a finite number"), ("1E+999999", "out of range")])
def test_a_symbol_whose_minimum_arithmetic_cannot_take_is_left_out(
    docs: dict[str, Any], value: str, problem: str
) -> None:
    """A minimum size that is a signalling NaN or overflows raised a decimal error out of the
    parse, naming nothing, and every MEXC spot pair was lost with it."""
    entry = {**docs["spot_exchangeInfo_symbol_entry"], "isSpotTradingAllowed": True}
    bad = {**entry, "symbol": "ABCUSDT", "baseAsset": "ABC", "baseSizePrecision": value}
    catalog = parse_exchange_info(exchange_info(bad, entry))
    assert [i.venue_symbol for i in catalog] == [entry["symbol"]]
    (skip,) = catalog.skipped
    assert skip.venue_symbol == "ABCUSDT"
    assert skip.reason.startswith(f"unreadable entry #0 of mexc GET /api/v3/exchangeInfo: {value}: {problem}")
    assert skip.reason.endswith(" - at `$.baseSizePrecision`")


@pytest.mark.parametrize(("change", "reason"), [
    ({"quotePrecision": 10_000_000}, "Expected `int` <= 18 - at `$.quotePrecision`"),
    ({"baseAssetPrecision": -1}, "Expected `int` >= 0 - at `$.baseAssetPrecision`"),
])
def test_a_symbol_with_a_precision_no_step_can_have_is_left_out(
    docs: dict[str, Any], change: dict[str, int], reason: str
) -> None:
    """A precision of ten million decimals raised a decimal error out of the parse (10**-n as a
    step), naming nothing, and every MEXC spot pair was lost with it."""
    entry = {**docs["spot_exchangeInfo_symbol_entry"], "isSpotTradingAllowed": True}
    bad = {**entry, "symbol": "ABCUSDT", "baseAsset": "ABC", **change}
    catalog = parse_exchange_info(exchange_info(bad, entry))
    assert [i.venue_symbol for i in catalog] == [entry["symbol"]]
    (skip,) = catalog.skipped
    assert skip.reason == f"unreadable entry #0 of mexc GET /api/v3/exchangeInfo: {reason}"


def test_symbol_not_matching_its_assets_is_refused(docs: dict[str, Any]) -> None:
    info = msgspec.convert({**docs["spot_exchangeInfo_symbol_entry"], "symbol": "TOMO3L_USDT"}, ExchangeInfoSymbol)
    with pytest.raises(InstrumentError, match="mexc symbol 'TOMO3L_USDT': does not match"):
        instrument_from_symbol(info)


def test_failed_contract_reply_is_an_error() -> None:
    with pytest.raises(InstrumentError, match="venue replied success=False code=1001 contract not exist"):
        parse_contract_detail(b'{"success":false,"code":1001,"message":"contract not exist"}')
    with pytest.raises(InstrumentError, match="venue replied success=True code=0"):
        parse_contract_detail(b'{"success":true,"code":0,"data":null}')


def test_a_malformed_contract_is_left_out_and_the_others_are_kept() -> None:
    """One contract the venue lists wrongly made the whole futures catalog unreadable."""
    catalog = parse_contract_detail(CONTRACT_DETAIL.replace(b'"contractSize":0.0001', b'"contractSize":"x"'))
    (btc, luna) = catalog.skipped
    assert btc.venue_symbol == "BTC_USDT" and "unreadable entry #0" in btc.reason and "`$.contractSize`" in btc.reason
    assert luna.venue_symbol == "LUNA_USDT" and luna.reason == "state=3"
    btc_only = CONTRACT_DETAIL[CONTRACT_DETAIL.index(b"[") + 1:CONTRACT_DETAIL.index(b"},{") + 1]
    one = parse_contract_detail(b'{"success":true,"code":0,"data":' + btc_only + b"}")
    assert [i.symbol for i in one] == ["BTC/USDT:USDT"]  # a single object, as a one-symbol request answers


def test_a_contract_whose_step_is_zero_is_left_out_and_the_others_are_kept() -> None:
    """A volUnit of 0 raised a decimal error out of the parse (the minimum rounded to it), naming
    nothing, and every MEXC contract was lost with it."""
    catalog = parse_contract_detail(CONTRACT_DETAIL.replace(b'"volUnit":1,"volScale"', b'"volUnit":0,"volScale"'))
    (btc, luna) = catalog.skipped
    assert (btc.venue_symbol, btc.reason) == ("BTC_USDT", "step 0 is not positive")
    assert luna.venue_symbol == "LUNA_USDT"


def test_unknown_quote_asset_cannot_be_split() -> None:
    with pytest.raises(InstrumentError, match="cannot split venue symbol 'BTCXYZ'"):
        from_venue_symbol("BTCXYZ")


# --- docs and recorded payloads ------------------------------------------------------


def test_docs_exchange_info_entry(docs: dict[str, Any]) -> None:
    entry = docs["spot_exchangeInfo_symbol_entry"]
    catalog = parse_exchange_info(exchange_info(entry))
    assert len(catalog) == 0  # the docs' example is not API-tradable
    assert [(s.venue_symbol, s.symbol, s.reason) for s in catalog.skipped] == [
        ("TOMO3LUSDT", "TOMO3L/USDT", "isSpotTradingAllowed=false")
    ]
    instrument = instrument_from_symbol(msgspec.convert(entry, ExchangeInfoSymbol))
    assert (instrument.symbol, instrument.venue_symbol) == ("TOMO3L/USDT", "TOMO3LUSDT")
    assert (instrument.tick_size, instrument.lot_size) == (D("0.001"), D("0.01"))
    assert instrument.min_size == D("0.01")  # baseSizePrecision 0.0001 rounded up to a whole lot
    assert instrument.min_notional == D(5)
    assert instrument.taker_fee == instrument.maker_fee == D("0.002")
    assert instrument.wire_scale() == (3, 1, 2, 1)


def test_spot_fees_are_charged_in_quote_on_both_sides_on_the_venue_and_its_simulator(docs: dict[str, Any]) -> None:
    """MEXC charges a spot buy's fee in quote ("used 5010 USDT to buy 0.1 BTC"), not in the base
    bought; the simulated MEXC's instruments say the same, so it charges as the venue does."""
    instrument = instrument_from_symbol(msgspec.convert(docs["spot_exchangeInfo_symbol_entry"], ExchangeInfoSymbol))
    assert instrument.fees_in_quote and instrument.fee_asset(OrderSide.BUY) == "USDT"
    simulated = [i for i in default_instruments() if i.exchange is ExchangeName.MEXC]
    assert simulated and all(i.fees_in_quote for i in simulated)
    assert not any(i.fees_in_quote for i in default_instruments() if i.exchange is ExchangeName.GATEIO)


def test_tradable_and_untradable_symbols(docs: dict[str, Any]) -> None:
    base = {**docs["spot_exchangeInfo_symbol_entry"], "isSpotTradingAllowed": True}
    btc = {**base, "symbol": "BTCUSDT", "baseAsset": "BTC", "status": "1", "baseAssetPrecision": 6,
           "quotePrecision": 2, "baseSizePrecision": "0.000001", "quoteAmountPrecision": "1"}
    del btc["makerCommission"], btc["takerCommission"]
    catalog = parse_exchange_info(exchange_info(
        btc,
        {**base, "symbol": "AUSDT", "baseAsset": "A", "status": "2"},
        {**base, "symbol": "BUSDT", "baseAsset": "B", "tradeSideType": "3"},
        {**base, "symbol": "CUSDT", "baseAsset": "C", "tradeSideType": 1},
    ))
    assert sorted(i.venue_symbol for i in catalog) == ["BTCUSDT", "CUSDT"]
    assert {s.venue_symbol: s.reason for s in catalog.skipped} == {
        "AUSDT": "status=2",
        "BUSDT": "tradeSideType=3 (not both sides)",
    }
    instrument = catalog.by_venue_symbol("BTCUSDT")
    assert instrument.taker_fee == constants.DEFAULT_SPOT_TAKER_FEE
    assert (instrument.tick_size, instrument.lot_size, instrument.min_size) == (D("0.01"), D("0.000001"), D("0.000001"))
    with pytest.raises(InstrumentError, match="'A/USDT' was left out: status=2"):
        catalog.get("A/USDT")


def test_depth_snapshots_decode(docs: dict[str, Any], ccxt: dict[str, Any]) -> None:
    snapshot = msgspec.convert(docs["spot_depth_snapshot_GET_api_v3_depth"], DepthSnapshot)
    assert snapshot.version == 1112416 and snapshot.bids == [(D("15.00000"), D("49999.00000"))]
    recorded = msgspec.convert(ccxt["mexc_spot_depth_response"], DepthSnapshot)
    assert recorded.version == 20453289489  # a string on the wire
    assert recorded.asks == [(D("45995.48"), D("13.457322"))]
    contract = msgspec.convert(docs["contract_depth_snapshot_GET_api_v1_contract_depth"], ContractDepth)
    assert contract.asks[1] == [D("3968.6"), D(160), D(4)] and contract.version == 1


def test_order_response_decodes(docs: dict[str, Any]) -> None:
    order = msgspec.convert(docs["spot_new_order_response_POST_api_v3_order"], OrderResponse)
    assert (order.orderId, order.price, order.origQty, order.transactTime) == (
        "06a480e69e604477bfb48dddd5f0b750", D("0.1"), D(50), 1666676533741,
    )


def test_contract_detail() -> None:
    catalog = parse_contract_detail(CONTRACT_DETAIL)
    btc = catalog.get("BTC/USDT:USDT")  # apiAllowed=false still gives market data
    assert (btc.venue_symbol, btc.tick_size, btc.lot_size, btc.contract_size) == ("BTC_USDT", D("0.1"), D(1), D("0.0001"))
    assert (btc.taker_fee, btc.maker_fee) == (D("0.0006"), D("0.0002"))  # JSON numbers decoded exactly
    assert btc.base_quantity_of(3) == D("0.0003")
    assert [(s.venue_symbol, s.reason) for s in catalog.skipped] == [("LUNA_USDT", "state=3")]
    single = CONTRACT_DETAIL.replace(b'"data":[', b'"data":').rsplit(b",{", 1)[0] + b"}"
    assert len(parse_contract_detail(single)) == 1


def test_symbol_helpers() -> None:
    assert to_venue_symbol("BTC/USDT") == "BTCUSDT"
    assert to_venue_symbol("BTC/USDT:USDT") == "BTC_USDT"
    assert from_venue_symbol("ETHBTC") == "ETH/BTC"
    assert from_venue_symbol("BTCUSDC") == "BTC/USDC"
    assert from_venue_symbol("BTC_USDT", futures=True) == "BTC/USDT:USDT"


def test_default_symbols_name_the_pairs_open_to_api_orders() -> None:
    """``GET /api/v3/defaultSymbols`` as the API reference shows it; an error answer is refused by name."""
    body = b'{"code":200,"data":["GENE1USDT","SNTUSDT","BTCUSDT"],"msg":null}'
    assert parse_default_symbols(body) == {"GENE1USDT", "SNTUSDT", "BTCUSDT"}
    with pytest.raises(InstrumentError, match=r"mexc GET /api/v3/defaultSymbols: code 500 busy"):
        parse_default_symbols(b'{"code":500,"data":null,"msg":"busy"}')
    with pytest.raises(InstrumentError, match="defaultSymbols"):
        parse_default_symbols(b'{"code":200,"data":[1]}')
    with pytest.raises(InstrumentError, match="an empty list"):
        parse_default_symbols(b'{"code":200,"data":[],"msg":null}')


def test_a_catalog_limited_to_the_api_pairs_says_why_it_left_the_others_out(docs: dict[str, Any]) -> None:
    base = {**docs["spot_exchangeInfo_symbol_entry"], "isSpotTradingAllowed": True, "status": "1"}
    catalog = parse_exchange_info(exchange_info(
        {**base, "symbol": "AUSDT", "baseAsset": "A"}, {**base, "symbol": "BUSDT", "baseAsset": "B"},
    ))
    limited = catalog.limited_to(frozenset({"AUSDT"}), "not open to API orders")
    assert [i.venue_symbol for i in limited] == ["AUSDT"]
    with pytest.raises(InstrumentError, match="'B/USDT' was left out: not open to API orders"):
        limited.get("B/USDT")
    assert catalog.limited_to(frozenset({"AUSDT", "BUSDT"}), "unused") is catalog
