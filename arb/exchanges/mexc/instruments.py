"""MEXC spot exchangeInfo symbols and contract details -> ``Instrument``."""

from __future__ import annotations

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
from .schemas import (
    ContractDetail,
    ContractDetailName,
    ContractDetailResponse,
    ContractFundingRateResponse,
    DefaultSymbols,
    ExchangeInfo,
    ExchangeInfoSymbol,
    ExchangeInfoSymbolName,
)

SPOT_SYMBOLS = SymbolFormat(venue=ExchangeName.MEXC.value, separator="", quote_assets=constants.SPOT_QUOTE_ASSETS)
FUTURES_SYMBOLS = SymbolFormat(venue=ExchangeName.MEXC_FUTURES.value, separator="_", perpetual=True)


def to_venue_symbol(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT`` (spot); ``BTC/USDT:USDT`` -> ``BTC_USDT`` (contract)."""
    return (FUTURES_SYMBOLS if ":" in symbol else SPOT_SYMBOLS).to_venue(symbol)


def from_venue_symbol(venue_symbol: str, *, futures: bool = False) -> str:
    """``BTCUSDT`` -> ``BTC/USDT``; ``BTC_USDT`` (futures) -> ``BTC/USDT:USDT``.

    Spot names are split on known quote assets; prefer ``InstrumentCatalog.by_venue_symbol``.
    """
    return (FUTURES_SYMBOLS if futures else SPOT_SYMBOLS).from_venue(venue_symbol)


def instrument_from_symbol(info: ExchangeInfoSymbol) -> Instrument:
    """The instrument of one exchangeInfo symbol (whatever its trading status).

    Tick = 10**-quotePrecision, lot = 10**-baseAssetPrecision, minimum size =
    ``baseSizePrecision`` rounded up to a lot, minimum notional = ``quoteAmountPrecision``;
    fees from ``makerCommission``/``takerCommission`` or the documented default, charged in the
    quote asset on both sides (a buy pays notional + fee and receives the whole base).
    """
    if info.symbol != f"{info.baseAsset}{info.quoteAsset}":
        raise InstrumentError(
            f"mexc symbol {info.symbol!r}: does not match baseAsset {info.baseAsset!r} + quoteAsset {info.quoteAsset!r}"
        )
    lot = Decimal(1).scaleb(-info.baseAssetPrecision)
    return Instrument(
        exchange=ExchangeName.MEXC,
        symbol=unified_symbol(info.baseAsset, info.quoteAsset),
        venue_symbol=info.symbol,
        base=info.baseAsset,
        quote=info.quoteAsset,
        tick_size=Decimal(1).scaleb(-info.quotePrecision),
        lot_size=lot,
        min_size=round_up_to_step(info.baseSizePrecision, lot),
        min_notional=info.quoteAmountPrecision,
        taker_fee=constants.DEFAULT_SPOT_TAKER_FEE if info.takerCommission is None else info.takerCommission,
        maker_fee=constants.DEFAULT_SPOT_MAKER_FEE if info.makerCommission is None else info.makerCommission,
        price_decimals=info.quotePrecision,
        size_decimals=info.baseAssetPrecision,
        fees_in_quote=constants.SPOT_FEES_IN_QUOTE,
    )


def parse_exchange_info(payload: bytes | str) -> InstrumentCatalog:
    """Instruments of a ``GET /api/v3/exchangeInfo`` body; symbols that cannot be traded by API are skipped."""
    source = f"mexc GET {constants.EXCHANGE_INFO_PATH}"
    info = decode_metadata(payload, ExchangeInfo, source)
    symbols, skipped = decode_entries(info.symbols, ExchangeInfoSymbol, ExchangeInfoSymbolName, _skipped_symbol, source)
    instruments: list[Instrument] = []
    for entry in symbols:
        reason = _symbol_skip_reason(entry)
        if reason is None:
            try:
                instruments.append(instrument_from_symbol(entry))
                continue
            except InstrumentError as exc:
                reason = str(exc)
        skipped.append(_skipped_symbol(entry, reason))
    return InstrumentCatalog(ExchangeName.MEXC, instruments, skipped)


def _skipped_symbol(entry: ExchangeInfoSymbol | ExchangeInfoSymbolName, reason: str) -> SkippedPair:
    return SkippedPair.of(entry.symbol, entry.baseAsset, entry.quoteAsset, None, reason)


def parse_default_symbols(payload: bytes | str) -> frozenset[str]:
    """The venue symbols of a ``GET /api/v3/defaultSymbols`` body: the pairs that take API orders
    (the venue refuses orders on the others with code 10007, "symbol not support api"). An empty
    list is refused as unreadable: it would take every pair out of trading."""
    source = f"mexc GET {constants.DEFAULT_SYMBOLS_PATH}"
    reply = decode_metadata(payload, DefaultSymbols, source)
    if reply.code != 200 or reply.data is None:
        raise InstrumentError(f"{source}: code {reply.code} {reply.msg or ''}".rstrip())
    if not reply.data:
        raise InstrumentError(f"{source}: an empty list (no pair open to API orders)")
    return frozenset(reply.data)


def instrument_from_contract(detail: ContractDetail) -> Instrument:
    """The instrument of one USDT perpetual: sizes in contracts of ``contractSize`` base units, step ``volUnit``."""
    settle = detail.settleCoin or detail.quoteCoin
    if detail.symbol != f"{detail.baseCoin}_{detail.quoteCoin}" or settle != detail.quoteCoin:
        raise InstrumentError(
            f"mexc_futures contract {detail.symbol!r}: not a linear {detail.baseCoin}_{detail.quoteCoin} "
            f"contract settled in {detail.quoteCoin} (settleCoin {settle!r})"
        )
    return Instrument(
        exchange=ExchangeName.MEXC_FUTURES,
        symbol=unified_symbol(detail.baseCoin, detail.quoteCoin, settle),
        venue_symbol=detail.symbol,
        base=detail.baseCoin,
        quote=detail.quoteCoin,
        tick_size=detail.priceUnit,
        lot_size=detail.volUnit,
        min_size=round_up_to_step(detail.minVol, detail.volUnit),
        min_notional=Decimal(0),
        contract_size=detail.contractSize,
        taker_fee=detail.takerFeeRate,
        maker_fee=detail.makerFeeRate,
        price_decimals=decimals_of(detail.priceUnit),
        size_decimals=decimals_of(detail.volUnit),
    )


def parse_contract_detail(payload: bytes | str) -> InstrumentCatalog:
    """Instruments of a ``GET /api/v1/contract/detail`` body; contracts not in state 0 (enabled) are skipped.

    ``apiAllowed`` is not a reason to skip: MEXC futures serve as market data even where
    the account cannot trade them.
    """
    source = f"mexc GET {constants.CONTRACT_DETAIL_PATH}"
    reply = decode_metadata(payload, ContractDetailResponse, source)
    data = bytes(reply.data).strip()
    if not reply.success or data == b"null":
        raise InstrumentError(f"{source}: venue replied success={reply.success} code={reply.code} {reply.message or ''}")
    entries = decode_metadata(data, list[msgspec.Raw], source) if data.startswith(b"[") else [reply.data]
    details, skipped = decode_entries(entries, ContractDetail, ContractDetailName, _skipped_contract, source)
    instruments: list[Instrument] = []
    for detail in details:
        reason = None if detail.state == constants.CONTRACT_STATE_ENABLED else f"state={detail.state}"
        if reason is None:
            try:
                instruments.append(instrument_from_contract(detail))
                continue
            except InstrumentError as exc:
                reason = str(exc)
        skipped.append(_skipped_contract(detail, reason))
    return InstrumentCatalog(ExchangeName.MEXC_FUTURES, instruments, skipped)


def _skipped_contract(detail: ContractDetail | ContractDetailName, reason: str) -> SkippedPair:
    return SkippedPair.of(detail.symbol, detail.baseCoin, detail.quoteCoin, detail.settleCoin or detail.quoteCoin, reason)


_funding_reply = msgspec.json.Decoder(ContractFundingRateResponse)


def parse_contract_funding_rate(payload: bytes | str) -> list[FundingRate]:
    """The funding rate in a ``GET /api/v1/contract/funding_rate/{symbol}`` body (``collectCycle`` in hours).

    Raises ValueError when the venue answers ``success: false``.
    """
    reply = _funding_reply.decode(payload)
    data = reply.data
    if not reply.success or data is None:
        raise ValueError(f"funding rate: success={reply.success} code={reply.code} {reply.message or ''}".strip())
    base, sep, quote = data.symbol.rpartition("_")
    if not sep or not base or not quote:
        raise ValueError(f"funding rate: contract {data.symbol!r} is not BASE_QUOTE")
    return [
        FundingRate(
            exchange=ExchangeName.MEXC_FUTURES,
            symbol=unified_symbol(base, quote, quote),
            rate=data.fundingRate,
            interval_s=data.collectCycle * 3600,
            next_settle_ms=data.nextSettleTime,
        )
    ]


def _symbol_skip_reason(entry: ExchangeInfoSymbol) -> str | None:
    if entry.status not in constants.SYMBOL_STATUS_ONLINE:
        return f"status={entry.status}"
    if not entry.isSpotTradingAllowed:
        return "isSpotTradingAllowed=false"
    if str(entry.tradeSideType) != constants.TRADE_SIDE_ALL:
        return f"tradeSideType={entry.tradeSideType} (not both sides)"
    return None

