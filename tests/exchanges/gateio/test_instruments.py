"""Tests of arb/exchanges/gateio/instruments.py and schemas.py on the recorded Gate.io payloads."""

import json
import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from arb.exchanges.gateio.instruments import (
    from_venue_symbol,
    instrument_from_contract,
    parse_currency_pairs,
    parse_futures_contracts,
    to_venue_symbol,
)
from arb.exchanges.gateio.schemas import FuturesContract, FuturesOrder, FuturesOrderBook, OrderBook, SpotOrder
from arb.instruments import InstrumentError

D = Decimal


def http_bodies(path: Path) -> dict[str, bytes]:
    """``url -> body`` of every recorded HTTP response line (``<url> -> <ts>: <body>``)."""
    bodies = {}
    for line in path.read_bytes().splitlines():
        if line.startswith(b"https://") and b" -> " in line:
            url, rest = line.split(b" -> ", 1)
            bodies[url.decode()] = rest.split(b": ", 1)[1]
    return bodies


@pytest.fixture(scope="module")
def pairs_body(shared_data: Path) -> bytes:
    return http_bodies(shared_data / "cryptofeed" / "GATEIO.0")["https://api.gateio.ws/api/v4/spot/currency_pairs"]


@pytest.fixture(scope="module")
def contracts_body(shared_data: Path) -> bytes:
    return http_bodies(shared_data / "cryptofeed" / "GATEIO_FUTURES.0")["https://api.gateio.ws/api/v4/futures/usdt/contracts"]


PAIR = {
    "id": "BTC_USDT", "base": "BTC", "quote": "USDT", "fee": "0.2", "min_base_amount": "0.0001",
    "min_quote_amount": "1", "amount_precision": 4, "precision": 2, "trade_status": "tradable",
}
CONTRACT = {
    "name": "BTC_USDT", "quanto_multiplier": "0.0001", "order_price_round": "0.1", "order_size_min": 1,
    "order_size_max": 1000000, "maker_fee_rate": "-0.000152", "taker_fee_rate": "0.00075", "in_delisting": False,
}


def encode(entries: list[dict[str, object]]) -> bytes:
    return json.dumps(entries).encode()


# --- bad payloads --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"precision": "2"}, r"Expected `int`, got `str` - at `\$.precision`"),
        ({"fee": "abc"}, r"Invalid decimal string - at `\$.fee`"),
        ({"amount_precision": None}, r"Expected `int`, got `null` - at `\$.amount_precision`"),
        ({"min_base_amount": ""}, r"Invalid decimal string - at `\$.min_base_amount`"),
        ({"trade_status": None}, r"Expected `str`, got `null` - at `\$.trade_status`"),
        # Numbers arithmetic cannot take: they raised a decimal error out of the parse, naming nothing.
        ({"min_base_amount": "sNaN"}, r"sNaN: not a finite number - at `\$.min_base_amount`"),
        ({"min_base_amount": "1E+999999"}, r"1E\+999999: out of range: .* - at `\$.min_base_amount`"),
        ({"fee": "sNaN"}, r"sNaN: not a finite number - at `\$.fee`"),
        ({"precision": 10_000_000}, r"Expected `int` <= 18 - at `\$.precision`"),
        ({"amount_precision": -10_000_000}, r"Expected `int` >= 0 - at `\$.amount_precision`"),
    ],
)
def test_a_malformed_pair_is_left_out_naming_the_field_and_the_others_are_kept(
    change: dict[str, object], fragment: str
) -> None:
    """One malformed entry made the whole list unreadable: no start-up, and at run time the
    trading-rules watch blind for every pair."""
    catalog = parse_currency_pairs(encode([PAIR, {**PAIR, "id": "ETH_USDT", "base": "ETH", **change}]))
    assert [i.symbol for i in catalog] == ["BTC/USDT"]
    (skip,) = catalog.skipped
    assert (skip.venue_symbol, skip.symbol) == ("ETH_USDT", "ETH/USDT")
    assert re.fullmatch(r"unreadable entry #1 of gateio GET /spot/currency_pairs: " + fragment, skip.reason)
    with pytest.raises(InstrumentError, match="'ETH/USDT' was left out: unreadable entry #1"):
        catalog.get("ETH/USDT")


def test_a_pair_without_a_required_field_or_no_object_at_all_is_left_out() -> None:
    entry = {k: v for k, v in PAIR.items() if k != "trade_status"}
    catalog = parse_currency_pairs(encode([entry, None, PAIR]))  # type: ignore[list-item]
    assert [i.symbol for i in catalog] == ["BTC/USDT"]
    assert [(s.venue_symbol, s.reason.split(": ", 1)[1]) for s in catalog.skipped] == [
        ("BTC_USDT", "Object missing required field `trade_status`"), ("", "Expected `object`, got `null`")
    ]


def test_one_malformed_pair_of_the_recorded_list_leaves_only_it_out(pairs_body: bytes) -> None:
    pairs = json.loads(pairs_body)
    whole = parse_currency_pairs(pairs_body)
    n, pair = next((n, p) for n, p in enumerate(pairs) if p["trade_status"] == "tradable")
    pairs[n] = {**pair, "min_base_amount": ""}
    catalog = parse_currency_pairs(json.dumps(pairs).encode())
    assert len(catalog) == len(whole) - 1 and len(catalog.skipped) == len(whole.skipped) + 1
    assert catalog.skipped[0].venue_symbol == pair["id"] and "min_base_amount" in catalog.skipped[0].reason


def test_not_a_list_is_refused() -> None:
    with pytest.raises(InstrumentError, match=r"Expected `array`, got `object`"):
        parse_currency_pairs(b'{"label":"TOO_BUSY"}')


def test_a_malformed_contract_is_left_out_naming_the_field() -> None:
    catalog = parse_futures_contracts(encode([
        {**CONTRACT, "name": "ETH_USDT", "order_size_min": [1], "in_delisting": True}, CONTRACT
    ]))
    assert [i.symbol for i in catalog] == ["BTC/USDT:USDT"]
    (skip,) = catalog.skipped
    assert (skip.venue_symbol, skip.symbol, skip.closing_only) == ("ETH_USDT", "ETH/USDT:USDT", True)
    assert re.fullmatch(r"unreadable entry #0 of gateio GET /futures/usdt/contracts: .* - at `\$.order_size_min`",
                        skip.reason)
    with pytest.raises(InstrumentError, match=r"Expected `array`, got `object`"):
        parse_futures_contracts(b'{"label":"TOO_BUSY"}')


def test_contract_sizes_written_as_strings_read_as_their_numbers() -> None:
    """Gate writes contract sizes as strings in newer payloads: one so written made the whole
    contracts list unreadable, and with it every futures market of the venue."""
    (contract,) = parse_futures_contracts(encode([{**CONTRACT, "order_size_min": "3", "order_size_max": "1000000"}]))
    assert contract.min_size == D(3) and contract.min_size == parse_futures_contracts(
        encode([{**CONTRACT, "order_size_min": 3}])).get(contract.symbol).min_size
    (half,) = parse_futures_contracts(encode([{**CONTRACT, "order_size_min": "0.5"}]))
    assert (half.min_size, half.lot_size) == (D(1), D(1))  # the engine trades whole contracts


def test_inconsistent_entries_are_skipped_with_the_reason() -> None:
    catalog = parse_currency_pairs(
        encode([{**PAIR, "id": "BTCUSDT"}, {**PAIR, "id": "ETH_USDT", "base": "ETH", "precision": -1}, PAIR])
    )
    assert [i.venue_symbol for i in catalog] == ["BTC_USDT"]
    reasons = {s.venue_symbol: s.reason for s in catalog.skipped}
    assert "id does not match base 'BTC' / quote 'USDT'" in reasons["BTCUSDT"]
    assert reasons["ETH_USDT"].endswith("Expected `int` >= 0 - at `$.precision`")
    # A minimum of more than 28 digits of lots: its check raised a decimal error, which lost every pair.
    huge = {**PAIR, "id": "DUST_USDT", "base": "DUST", "amount_precision": 18, "min_base_amount": "10000000000"}
    catalog = parse_currency_pairs(encode([huge, PAIR]))
    assert [i.venue_symbol for i in catalog] == ["BTC_USDT"]
    assert "than can be counted" in {s.venue_symbol: s.reason for s in catalog.skipped}["DUST_USDT"]
    contracts = parse_futures_contracts(
        encode([{**CONTRACT, "quanto_multiplier": "0"}, {**CONTRACT, "name": "ETH_USD", "type": "inverse"}])
    )
    assert len(contracts) == 0
    assert [s.reason for s in contracts.skipped] == [
        "instrument gateio_futures BTC/USDT:USDT: contract_size=0 must be a positive number",
        "type=inverse (only linear 'direct' contracts are traded)",
    ]


# --- recorded data -------------------------------------------------------------------


def test_every_recorded_pair_parses(pairs_body: bytes) -> None:
    raw = json.loads(pairs_body)
    catalog = parse_currency_pairs(pairs_body)
    assert len(raw) == 1458
    assert len(catalog) == sum(1 for p in raw if p["trade_status"] == "tradable") == 1408
    assert {s.reason for s in catalog.skipped} == {"trade_status=untradable", "trade_status=sellable"}
    assert len(catalog) + len(catalog.skipped) == len(raw)
    for instrument in catalog:
        assert instrument.price_to_ticks(instrument.tick_size) == 1
        assert instrument.size_to_lots(instrument.min_size) >= 1


def test_recorded_pair_values(pairs_body: bytes) -> None:
    catalog = parse_currency_pairs(pairs_body)
    btc = catalog.get("BTC/USDT")
    assert (btc.venue_symbol, btc.tick_size, btc.lot_size, btc.min_size, btc.min_notional) == (
        "BTC_USDT", D("0.01"), D("0.0001"), D("0.0001"), D("1"),
    )
    assert btc.taker_fee == btc.maker_fee == D("0.002")  # "fee": "0.2" is a percent
    assert btc.wire_scale() == (2, 1, 4, 1)
    eth = catalog.by_venue_symbol("ETH_USDT")
    assert (eth.min_size, eth.size_decimals) == (D("0.001"), 4)
    ink = catalog.get("INK/USDT")  # no min_base_amount: one lot
    assert ink.min_size == ink.lot_size
    discounted = [i for i in catalog if i.taker_fee == D("0.0002")]
    assert len(discounted) == 1  # the one pair with "fee": "0.02"
    with pytest.raises(InstrumentError, match="'SAL/USDT' was left out: trade_status=untradable"):
        catalog.get("SAL/USDT")


@pytest.mark.parametrize(
    ("change", "closing_only"),
    [
        ({"in_delisting": True}, True),
        ({"status": "delisting"}, True),  # newer payloads say it in ``status``
        ({"status": "delisted"}, False),
        ({"type": "inverse"}, False),
    ],
)
def test_a_contract_left_out_as_delisting_still_takes_closing_orders(change: dict[str, object], closing_only: bool) -> None:
    catalog = parse_futures_contracts(encode([{**CONTRACT, "type": "direct", **change}]))
    assert len(catalog) == 0 and catalog.closing_only("BTC/USDT:USDT") is closing_only


def test_a_contract_in_delisting_keeps_the_rules_its_closes_go_by() -> None:
    """Listed again on request (a restart holding hedges there), by its own grid; an inverse
    contract in delisting, or one another reason left out, is not."""
    catalog = parse_futures_contracts(encode([
        {**CONTRACT, "in_delisting": True},
        {**CONTRACT, "name": "ETH_USDT", "in_delisting": True, "type": "inverse"},
        {**CONTRACT, "name": "SOL_USDT", "status": "delisted"},
    ]))
    closing = catalog.with_closing_only(["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"])
    assert [i.symbol for i in closing] == ["BTC/USDT:USDT"] and closing.closing_only("BTC/USDT:USDT")
    listed = instrument_from_contract(msgspec.json.decode(encode(CONTRACT), type=FuturesContract))
    assert closing.get("BTC/USDT:USDT") == listed
    assert catalog.with_closing_only(["ETH/USDT:USDT"]) is catalog


def test_every_recorded_contract_parses(contracts_body: bytes) -> None:
    catalog = parse_futures_contracts(contracts_body)
    assert len(catalog) == 301
    assert [(s.venue_symbol, s.reason) for s in catalog.skipped] == [("COCOS_USDT", "in_delisting=true")]
    assert catalog.closing_only("COCOS/USDT:USDT") and not catalog.closing_only("BTC/USDT:USDT")
    btc = catalog.get("BTC/USDT:USDT")
    assert (btc.tick_size, btc.lot_size, btc.contract_size, btc.min_size) == (D("0.1"), D(1), D("0.0001"), D(1))
    assert (btc.maker_fee, btc.taker_fee) == (D("-0.000152"), D("0.00075"))
    assert btc.wire_scale() == (1, 1, 0, 1)
    assert btc.base_quantity_of(-25) == D("-0.0025")
    odd = next(i for i in catalog if i.contract_size == D("9.6"))
    assert odd.base_quantity_of(10) == D("96")
    finest = min(catalog, key=lambda i: i.tick_size)
    assert finest.tick_size == D("1E-12") and finest.price_decimals == 12


def test_recorded_spot_books_are_not_always_on_the_order_grid(shared_data: Path, pairs_body: bytes) -> None:
    """Resting orders can be finer than today's order precision: book levels need a finer scale than orders.

    In the 2021 recording every snapshot has amounts with more decimals than ``amount_precision``
    (up to 10), and ZKS_ETH / NEO_BTC have prices finer than ``precision``; all fit 10 decimals.
    """
    catalog = parse_currency_pairs(pairs_body)
    bodies = http_bodies(shared_data / "cryptofeed" / "GATEIO.http.0.0")
    assert len(bodies) == 10
    off_grid_prices: dict[str, int] = {}
    for url, body in bodies.items():
        book = msgspec.json.decode(body, type=OrderBook)
        instrument = catalog.by_venue_symbol(url.split("currency_pair=")[1].split("&")[0])
        assert book.id is not None and book.asks and book.bids
        off_sizes = 0
        for price, amount in book.asks + book.bids:
            assert (price.scaleb(10) % 1, amount.scaleb(10) % 1) == (0, 0)
            try:
                instrument.price_to_ticks(price)
            except InstrumentError:
                off_grid_prices[instrument.venue_symbol] = off_grid_prices.get(instrument.venue_symbol, 0) + 1
            try:
                instrument.size_to_lots(amount)
            except InstrumentError as exc:
                assert "is not a multiple of lot_size" in str(exc)
                off_sizes += 1
        assert off_sizes > 0, instrument.venue_symbol
    assert off_grid_prices == {"ZKS_ETH": 7, "NEO_BTC": 7}


def test_recorded_futures_books_are_on_the_instrument_grid(shared_data: Path, contracts_body: bytes) -> None:
    catalog = parse_futures_contracts(contracts_body)
    bodies = http_bodies(shared_data / "cryptofeed" / "GATEIO_FUTURES.http.0.0")
    assert len(bodies) == 10
    for url, body in bodies.items():
        book = msgspec.json.decode(body, type=FuturesOrderBook)
        instrument = catalog.by_venue_symbol(url.split("contract=")[1].split("&")[0])
        assert book.id is not None
        for level in book.asks + book.bids:
            instrument.price_to_ticks(level.p)
            instrument.size_to_lots(level.s)


def test_recorded_order_replies_decode(shared_data: Path) -> None:
    ccxt = json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())
    order = msgspec.convert(ccxt["gate_futures_market_order_response"], FuturesOrder)
    assert (order.size, order.left, order.fill_price, order.finish_as) == (D(100), D(0), D("0.005416"), "filled")
    assert order.tkfr == D("0.0005") and order.create_time == D("1768397866.662")
    ws = json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_text())
    spot = msgspec.convert(ws["spot_ws_api_order_place_result"]["data"]["result"], SpotOrder)
    assert (spot.id, spot.text, spot.amount, spot.left, spot.status) == ("1700664330", "t-my-custom-id", D(1), D(1), "open")


def test_symbol_helpers() -> None:
    assert to_venue_symbol("BTC/USDT") == to_venue_symbol("BTC/USDT:USDT") == "BTC_USDT"
    assert from_venue_symbol("QTUM3S_USDT") == "QTUM3S/USDT"
    assert from_venue_symbol("BTC_USDT", futures=True) == "BTC/USDT:USDT"
