"""Gate.io spot currency pairs and USDT perpetual contracts -> ``Instrument``."""

from __future__ import annotations

import logging
from decimal import Decimal

import msgspec

from ...funding import FundingRate
from ...instruments import (
    Instrument,
    InstrumentCatalog,
    InstrumentError,
    SkippedPair,
    SymbolFormat,
    decimals_of,
    decode_entries,
    decode_metadata,
    round_up_to_step,
    unified_symbol,
)
from ...types import ExchangeName
from . import constants
from .schemas import CurrencyPair, CurrencyPairName, FuturesContract, FuturesContractName

SPOT_SYMBOLS = SymbolFormat(venue=ExchangeName.GATEIO.value, separator="_")
FUTURES_SYMBOLS = SymbolFormat(venue=ExchangeName.GATEIO_FUTURES.value, separator="_", perpetual=True)

log = logging.getLogger(__name__)


def to_venue_symbol(symbol: str) -> str:
    """``BTC/USDT`` or ``BTC/USDT:USDT`` -> ``BTC_USDT`` (Gate spells spot and perpetuals alike)."""
    return (FUTURES_SYMBOLS if ":" in symbol else SPOT_SYMBOLS).to_venue(symbol)


def from_venue_symbol(venue_symbol: str, *, futures: bool = False) -> str:
    """``BTC_USDT`` -> ``BTC/USDT`` (spot) or ``BTC/USDT:USDT`` (perpetual)."""
    return (FUTURES_SYMBOLS if futures else SPOT_SYMBOLS).from_venue(venue_symbol)


def instrument_from_pair(pair: CurrencyPair) -> Instrument:
    """The instrument of one spot pair; ``fee`` is a percent ("0.2" -> 0.002)."""
    if pair.id != f"{pair.base}_{pair.quote}":
        raise InstrumentError(f"gateio pair {pair.id!r}: id does not match base {pair.base!r} / quote {pair.quote!r}")
    lot = Decimal(1).scaleb(-pair.amount_precision)
    fee = pair.fee.scaleb(-2)
    return Instrument(
        exchange=ExchangeName.GATEIO,
        symbol=unified_symbol(pair.base, pair.quote),
        venue_symbol=pair.id,
        base=pair.base,
        quote=pair.quote,
        tick_size=Decimal(1).scaleb(-pair.precision),
        lot_size=lot,
        min_size=round_up_to_step(pair.min_base_amount or lot, lot),
        min_notional=pair.min_quote_amount or Decimal(0),
        taker_fee=fee,
        maker_fee=fee,
        price_decimals=pair.precision,
        size_decimals=pair.amount_precision,
    )


def instrument_from_contract(contract: FuturesContract) -> Instrument:
    """The instrument of one USDT perpetual: sizes in whole contracts of ``quanto_multiplier`` base units."""
    base, sep, quote = contract.name.rpartition("_")
    if not sep or not base or not quote:
        raise InstrumentError(f"gateio_futures contract {contract.name!r}: name is not BASE_QUOTE")
    return Instrument(
        exchange=ExchangeName.GATEIO_FUTURES,
        symbol=unified_symbol(base, quote, quote),
        venue_symbol=contract.name,
        base=base,
        quote=quote,
        tick_size=contract.order_price_round,
        lot_size=Decimal(1),
        min_size=max(contract.order_size_min, Decimal(1)),  # whole contracts, at least one
        min_notional=Decimal(0),
        contract_size=contract.quanto_multiplier,
        taker_fee=contract.taker_fee_rate,
        maker_fee=contract.maker_fee_rate,
        price_decimals=decimals_of(contract.order_price_round),
        size_decimals=0,
    )


def parse_currency_pairs(payload: bytes | str) -> InstrumentCatalog:
    """Instruments of a ``GET /spot/currency_pairs`` body; pairs not ``tradable`` are skipped with the reason."""
    source = f"gateio GET {constants.CURRENCY_PAIRS_PATH}"
    entries = decode_metadata(payload, list[msgspec.Raw], source)
    pairs, skipped = decode_entries(entries, CurrencyPair, CurrencyPairName, _skipped_pair, source)
    instruments: list[Instrument] = []
    for pair in pairs:
        if pair.trade_status != constants.TRADE_STATUS_TRADABLE:
            skipped.append(_skipped_pair(pair, f"trade_status={pair.trade_status}"))
            continue
        try:
            instruments.append(instrument_from_pair(pair))
        except InstrumentError as exc:
            skipped.append(_skipped_pair(pair, str(exc)))
    return InstrumentCatalog(ExchangeName.GATEIO, instruments, skipped)


def parse_futures_contracts(payload: bytes | str) -> InstrumentCatalog:
    """Instruments of a ``GET /futures/usdt/contracts`` body; delisting or non-linear contracts are skipped."""
    source = f"gateio GET {constants.FUTURES_CONTRACTS_PATH}"
    entries = decode_metadata(payload, list[msgspec.Raw], source)
    contracts, skipped = decode_entries(entries, FuturesContract, FuturesContractName, _skipped_contract, source)
    instruments: list[Instrument] = []
    for contract in contracts:
        reason = _contract_skip_reason(contract)
        if reason is None:
            try:
                instruments.append(instrument_from_contract(contract))
                continue
            except InstrumentError as exc:
                reason = str(exc)
        skipped.append(_skipped_contract(contract, reason))
    return InstrumentCatalog(ExchangeName.GATEIO_FUTURES, instruments, skipped)


def _skipped_pair(pair: CurrencyPair | CurrencyPairName, reason: str) -> SkippedPair:
    return SkippedPair.of(pair.id, pair.base, pair.quote, None, reason)


def _skipped_contract(contract: FuturesContract | FuturesContractName, reason: str) -> SkippedPair:
    base, _, quote = contract.name.rpartition("_")
    # A contract in delisting takes reduce-only and close orders until it is settled.
    closing_only = contract.in_delisting or contract.status == "delisting"
    rules = _closing_rules(contract) if closing_only else None
    return SkippedPair.of(contract.name, base, quote, quote, reason, closing_only=closing_only, instrument=rules)


def _closing_rules(contract: FuturesContract | FuturesContractName) -> Instrument | None:
    """The rules a linear contract in delisting is still closed by, where its entry gives them."""
    if not isinstance(contract, FuturesContract) or contract.type != "direct":
        return None
    try:
        return instrument_from_contract(contract)
    except InstrumentError:
        return None


_entries = msgspec.json.Decoder(list[msgspec.Raw])
_contract = msgspec.json.Decoder(FuturesContract)


def parse_funding_rates(payload: bytes | str) -> list[FundingRate]:
    """Funding rates of a ``GET /futures/usdt/contracts`` body.

    ``{"name":"BTC_USDT","funding_rate":"0.0001","funding_interval":28800,"funding_next_apply":1684944000,...}``;
    contracts that carry no rate, interval or next settlement time are left out, and so is one that
    does not decode (the catalog's read of the same list names it) or whose rate is not finite or
    interval not positive: the others' rates still count.
    """
    rates = []
    for entry in _entries.decode(payload):
        try:
            contract = _contract.decode(entry)
        except msgspec.DecodeError:
            continue
        if contract.funding_rate is None or not contract.funding_interval or contract.funding_next_apply is None:
            continue
        base, sep, quote = contract.name.rpartition("_")
        if not sep or not base or not quote:
            continue
        try:
            rate = FundingRate(
                exchange=ExchangeName.GATEIO_FUTURES,
                symbol=unified_symbol(base, quote, quote),
                rate=contract.funding_rate,
                interval_s=contract.funding_interval,
                next_settle_ms=contract.funding_next_apply * 1000,
            )
        except ValueError as exc:  # a rate that is not finite, an interval under 0
            log.debug("funding rate left out: %s", exc)
            continue
        rates.append(rate)
    return rates


def _contract_skip_reason(contract: FuturesContract) -> str | None:
    if contract.in_delisting:
        return "in_delisting=true"
    if contract.type != "direct":
        return f"type={contract.type} (only linear 'direct' contracts are traded)"
    if contract.status is not None and contract.status != "trading":
        return f"status={contract.status}"
    return None

