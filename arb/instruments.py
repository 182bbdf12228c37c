"""Instrument metadata and the project's only Decimal <-> integer tick/lot conversions.

The compiled core sees prices as int64 ticks and sizes as int64 lots. Everything that
crosses between those integers and venue ``Decimal`` values goes through ``Instrument``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Annotated, TypeVar

import msgspec

from .errors import ArbitrageEngineError
from .types import ExchangeName, OrderSide, number_problem

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DECIMALS = 18
# A venue's count of decimal places (a price's or an amount's precision), 10**-n taken as its step.
DecimalPlaces = Annotated[int, msgspec.Meta(ge=0, le=MAX_DECIMALS)]

# Wide enough for any int64 times any step; trapping Inexact turns "not a whole
# number of steps" into an exception instead of a silent rounding.
_EXACT = Context(prec=80, traps=[InvalidOperation, Inexact, Overflow])
# Each step of a rounding to a grid rounds the same way as the whole, so no input, however many
# digits it has, comes out on the wrong side of it (the default 28 digits could round 2.99...9 up).
_DOWN = Context(prec=80, rounding=ROUND_FLOOR, traps=[InvalidOperation, Overflow])
_UP = Context(prec=80, rounding=ROUND_CEILING, traps=[InvalidOperation, Overflow])

T = TypeVar("T")
N = TypeVar("N")
S = TypeVar("S", bound=msgspec.Struct)


class InstrumentError(ArbitrageEngineError, ValueError):
    """Bad instrument metadata, a value off the tick/lot grid, or an unknown symbol."""


def decimals_of(step: Decimal) -> int:
    """Decimal places needed to write ``step`` exactly: 0.0005 -> 4, 0.5 -> 1, 10 -> 0."""
    exponent = step.normalize().as_tuple().exponent
    if not isinstance(exponent, int):
        raise InstrumentError(f"step {step!r} is not a finite number")
    return max(0, -exponent)


@functools.lru_cache(maxsize=1024)  # a function of the values only; one entry per pair of lot grids
def common_step(a: Decimal, b: Decimal) -> Decimal:
    """The smallest positive quantity that is a whole multiple of both ``a`` and ``b``."""
    exponent = min(int(a.normalize().as_tuple().exponent), int(b.normalize().as_tuple().exponent), 0)
    ia, ib = int(a.scaleb(-exponent)), int(b.scaleb(-exponent))
    return Decimal(math.lcm(ia, ib)).scaleb(exponent).normalize()


def round_down_to_step(value: Decimal, step: Decimal) -> Decimal:
    """The largest whole multiple of ``step`` that is <= ``value`` (a quantity both grids can trade)."""
    down = _DOWN
    return down.multiply(down.divide(value, step).to_integral_value(ROUND_FLOOR, down), step)


def round_up_to_step(value: Decimal, step: Decimal) -> Decimal:
    """The smallest whole multiple of ``step`` that is >= ``value`` (for venue minimums); raises
    InstrumentError when ``step`` is not positive."""
    if not step > 0:
        raise InstrumentError(f"step {step} is not positive")
    up = _UP
    steps = up.divide(value, step).to_integral_value(ROUND_CEILING, up)
    return up.multiply(steps, step).normalize(up) if steps else step.normalize()


def _scaled(value: Decimal, decimals: int) -> int:
    """``value * 10**decimals`` as an exact int; raises ArithmeticError if it is not whole."""
    return int(value.scaleb(decimals, _EXACT).to_integral_exact(context=_EXACT))


@functools.lru_cache(maxsize=1024)  # a function of the values only; one entry per distinct step
def _step_units(step: Decimal, decimals: int) -> int:
    """A tick or lot size in units of its last decimal (``_scaled``), for the per-order conversions."""
    return _scaled(step, decimals)


def unified_symbol(base: str, quote: str, settle: str | None = None) -> str:
    """The project's symbol: ``BTC/USDT`` for spot, ``BTC/USDT:USDT`` for a perpetual settled in USDT."""
    for part, name in ((base, "base"), (quote, "quote"), (settle, "settle")):
        if part is not None and (not part or "/" in part or ":" in part or part != part.strip()):
            raise InstrumentError(f"{name} asset {part!r} is empty or contains '/', ':' or spaces")
    return f"{base}/{quote}" if settle is None else f"{base}/{quote}:{settle}"


def split_symbol(symbol: str) -> tuple[str, str, str | None]:
    """``(base, quote, settle)`` of a unified symbol; settle is None for spot."""
    pair, colon, settle = symbol.partition(":")
    base, slash, quote = pair.partition("/")
    if not slash or not base or not quote or "/" in quote or (colon and not settle):
        raise InstrumentError(f"symbol {symbol!r} is not of the form BASE/QUOTE or BASE/QUOTE:SETTLE")
    return base, quote, settle if colon else None


def pair_symbol(symbol: str) -> str:
    """``BASE/QUOTE`` of a spot or perpetual unified symbol: the pair its spot and perpetual share."""
    base, quote, _ = split_symbol(symbol)
    return f"{base}/{quote}"


class SymbolFormat(msgspec.Struct, frozen=True, kw_only=True):
    """How one market spells pair names on the wire (``BTCUSDT``, ``BTC_USDT``).

    Perpetuals are linear: the settle asset is the quote asset. A format without a
    separator needs ``quote_assets`` to split names; the venue's metadata stays the
    authority for exotic pairs (see ``InstrumentCatalog.by_venue_symbol``).
    """

    venue: str
    separator: str
    perpetual: bool = False
    quote_assets: tuple[str, ...] = ()

    def to_venue(self, symbol: str) -> str:
        """The venue spelling of a unified symbol."""
        base, quote, settle = split_symbol(symbol)
        if self.perpetual != (settle is not None) or (settle is not None and settle != quote):
            kind = "a linear perpetual BASE/QUOTE:QUOTE" if self.perpetual else "a spot BASE/QUOTE"
            raise InstrumentError(f"{self.venue}: symbol {symbol!r} is not {kind} symbol")
        return f"{base}{self.separator}{quote}"

    def from_venue(self, venue_symbol: str) -> str:
        """The unified symbol of a venue pair name."""
        if self.separator:
            base, sep, quote = venue_symbol.rpartition(self.separator)
        else:
            quote = next((q for q in sorted(self.quote_assets, key=len, reverse=True) if venue_symbol.endswith(q)), "")
            base, sep = venue_symbol[: len(venue_symbol) - len(quote)], quote
        if not sep or not base or not quote:
            raise InstrumentError(f"{self.venue}: cannot split venue symbol {venue_symbol!r} into base and quote")
        return unified_symbol(base, quote, quote if self.perpetual else None)


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """Trading rules of one market and the conversions between Decimal and integer ticks/lots.

    Sizes are in the venue's order unit: base asset on spot, contracts on futures
    (``contract_size`` base units each). ``tick_size = tick_units * 10**-price_decimals``
    and ``lot_size = lot_units * 10**-size_decimals`` exactly.
    """

    exchange: ExchangeName
    symbol: str  # unified: "BTC/USDT", "BTC/USDT:USDT"
    venue_symbol: str  # as on the wire: "BTCUSDT", "BTC_USDT"
    base: str
    quote: str
    tick_size: Decimal  # price step, quote per base unit
    lot_size: Decimal  # size step, in the order unit
    min_size: Decimal  # smallest order, order unit, a whole number of lots
    min_notional: Decimal  # smallest order value in quote (0 when the venue has none)
    contract_size: Decimal = Decimal(1)  # base units per order unit (1 on spot)
    taker_fee: Decimal  # fraction, 0.002 = 0.2 %
    maker_fee: Decimal  # fraction; negative is a rebate
    price_decimals: int
    size_decimals: int
    # Spot fees are charged in the quote on both sides (MEXC: a buy pays notional + fee and receives
    # the full base), rather than in the asset received (Gate.io: base on a buy). Futures pay fees in
    # the settle asset whatever this says.
    fees_in_quote: bool = False

    def __post_init__(self) -> None:
        where = f"instrument {self.exchange.value} {self.symbol}"
        expected = unified_symbol(self.base, self.quote, self.quote if self.exchange.is_futures else None)
        if self.symbol != expected:
            raise InstrumentError(f"{where}: symbol should be {expected!r} for base/quote {self.base}/{self.quote}")
        for name, decimals in (("price_decimals", self.price_decimals), ("size_decimals", self.size_decimals)):
            if not 0 <= decimals <= MAX_DECIMALS:
                raise InstrumentError(f"{where}: {name}={decimals} outside 0..{MAX_DECIMALS}")
        for name, value in (
            ("tick_size", self.tick_size),
            ("lot_size", self.lot_size),
            ("contract_size", self.contract_size),
        ):
            if not value.is_finite() or value <= 0:
                raise InstrumentError(f"{where}: {name}={value} must be a positive number")
        for name, value in (("min_size", self.min_size), ("min_notional", self.min_notional)):
            if not value.is_finite() or value < 0:
                raise InstrumentError(f"{where}: {name}={value} must be zero or positive")
        for name, value in (("taker_fee", self.taker_fee), ("maker_fee", self.maker_fee)):
            if not value.is_finite() or not -1 < value < 1:
                raise InstrumentError(f"{where}: {name}={value} is not a fee fraction in (-1, 1)")
        for step_name, step, decimals_name, decimals in (
            ("tick_size", self.tick_size, "price_decimals", self.price_decimals),
            ("lot_size", self.lot_size, "size_decimals", self.size_decimals),
        ):
            try:
                _scaled(step, decimals)
            except ArithmeticError:
                raise InstrumentError(
                    f"{where}: {step_name}={step} needs more than {decimals_name}={decimals} decimals"
                ) from None
        try:
            off_grid = bool(self.min_size % self.lot_size)
        except ArithmeticError:  # DivisionImpossible: the quotient has more than 28 digits
            raise InstrumentError(
                f"{where}: min_size={self.min_size} is more lots of lot_size={self.lot_size} than can be counted"
            ) from None
        if off_grid:
            raise InstrumentError(f"{where}: min_size={self.min_size} is not a multiple of lot_size={self.lot_size}")

    @property
    def is_futures(self) -> bool:
        """Whether sizes are contracts of a perpetual."""
        return self.exchange.is_futures

    def fee_asset(self, side: OrderSide) -> str:
        """The asset a fill on ``side`` is charged its fee in: the quote (the settle asset) on futures
        and where ``fees_in_quote``, else the asset the spot fill receives (base on a buy)."""
        if side is OrderSide.BUY and not self.is_futures and not self.fees_in_quote:
            return self.base
        return self.quote

    @property
    def base_lot(self) -> Decimal:
        """One lot in base units (``lot_size * contract_size``): the finest base quantity an order trades."""
        return _EXACT.multiply(self.lot_size, self.contract_size)

    def wire_scale(self) -> tuple[int, int, int, int]:
        """``(price_decimals, tick_units, size_decimals, lot_units)`` for the compiled wire decoders."""
        return (
            self.price_decimals,
            _scaled(self.tick_size, self.price_decimals),
            self.size_decimals,
            _scaled(self.lot_size, self.size_decimals),
        )

    def price_to_ticks(self, price: Decimal) -> int:
        """``price`` in ticks; raises InstrumentError if it is not a whole number of ticks."""
        return self._to_steps(price, "price", self.price_decimals, self.tick_size, "tick_size")

    def ticks_to_price(self, ticks: int) -> Decimal:
        """The exact Decimal price of ``ticks``."""
        return self._from_steps(ticks, "ticks", self.price_decimals, self.tick_size)

    def size_to_lots(self, size: Decimal) -> int:
        """``size`` (order unit) in lots; raises InstrumentError if it is not a whole number of lots."""
        return self._to_steps(size, "size", self.size_decimals, self.lot_size, "lot_size")

    def lots_to_size(self, lots: int) -> Decimal:
        """The exact Decimal size (order unit) of ``lots``."""
        return self._from_steps(lots, "lots", self.size_decimals, self.lot_size)

    def base_quantity_of(self, lots: int) -> Decimal:
        """Base-asset quantity of ``lots``: the size itself on spot, contracts x contract_size on futures."""
        return _EXACT.multiply(self.lots_to_size(lots), self.contract_size)

    def format_price(self, ticks: int) -> str:
        """``ticks`` as a plain decimal string for a request body (never exponent notation)."""
        return f"{self.ticks_to_price(ticks):f}"

    def format_size(self, lots: int) -> str:
        """``lots`` as a plain decimal string for a request body (never exponent notation)."""
        return f"{self.lots_to_size(lots):f}"

    def _to_steps(self, value: Decimal, what: str, decimals: int, step: Decimal, step_name: str) -> int:
        if not isinstance(value, Decimal) or not value.is_finite():
            raise InstrumentError(
                f"instrument {self.exchange.value} {self.symbol}: {what} {value!r} "
                f"({type(value).__name__}) is not a finite Decimal"
            )
        try:
            units = _scaled(value, decimals)
        except ArithmeticError:
            units = None
        step_units = _step_units(step, decimals)
        if units is None or units % step_units:
            raise InstrumentError(
                f"instrument {self.exchange.value} {self.symbol}: {what} {value} is not a multiple of "
                f"{step_name} {step}"
            )
        steps = units // step_units
        if not INT64_MIN <= steps <= INT64_MAX:
            raise InstrumentError(
                f"instrument {self.exchange.value} {self.symbol}: {what} {value} is outside the int64 range"
            )
        return steps

    def _from_steps(self, steps: int, what: str, decimals: int, step: Decimal) -> Decimal:
        if not isinstance(steps, int) or isinstance(steps, bool) or not INT64_MIN <= steps <= INT64_MAX:
            raise InstrumentError(
                f"instrument {self.exchange.value} {self.symbol}: {what} {steps!r} is not an int64"
            )
        return Decimal(steps * _step_units(step, decimals)).scaleb(-decimals, _EXACT)


class SkippedPair(msgspec.Struct, frozen=True):
    """A pair the venue lists that was left out of a catalog, and why."""

    venue_symbol: str
    symbol: str  # unified, "" when base/quote are unusable
    reason: str
    closing_only: bool = False  # the venue still takes orders that reduce a position (a contract being delisted)
    # A closing-only market's rules as the venue still lists them (None: unreadable): what closes it.
    instrument: Instrument | None = None

    @classmethod
    def of(
        cls, venue_symbol: str, base: str, quote: str, settle: str | None, reason: str, *, closing_only: bool = False,
        instrument: Instrument | None = None,
    ) -> SkippedPair:
        """A skipped entry, with its unified symbol when base/quote allow one."""
        try:
            symbol = unified_symbol(base, quote, settle)
        except InstrumentError:
            symbol = ""
        return cls(venue_symbol, symbol, reason, closing_only, instrument)


def decode_metadata(payload: bytes | str, type_: type[T], source: str) -> T:
    """Decode a venue metadata payload, turning a schema mismatch into an InstrumentError naming ``source``
    and the JSON path of the bad field."""
    try:
        return msgspec.json.decode(payload, type=type_)
    except msgspec.DecodeError as exc:
        raise InstrumentError(f"{source}: {exc}") from exc


def decode_entries(
    entries: Iterable[msgspec.Raw], type_: type[S], names: type[N], skipped_of: Callable[[N, str], SkippedPair],
    source: str,
) -> tuple[list[S], list[SkippedPair]]:
    """Decode each entry of a venue's instrument list as ``type_`` on its own, so that one malformed
    entry does not make the whole list unreadable: it is left out as ``skipped_of(names, why)``,
    ``names`` being a wire type of the fields that name an entry, every one with a default. A number
    that is not finite or out of range (``number_problem``) is malformed too: arithmetic on it raises."""
    decoded: list[S] = []
    skipped: list[SkippedPair] = []
    for n, raw in enumerate(entries):
        try:
            decoded.append(_checked_numbers(msgspec.json.decode(raw, type=type_)))
        except msgspec.DecodeError as exc:
            try:
                named = msgspec.json.decode(raw, type=names)
            except msgspec.DecodeError:
                named = names()
            skipped.append(skipped_of(named, f"unreadable entry #{n} of {source}: {exc}"))
    return decoded, skipped


def _checked_numbers(entry: S) -> S:
    """``entry``; a ValidationError naming the field, as a decode error does, if a Decimal in it is
    not an amount, price or rate."""
    for field in entry.__struct_fields__:
        value = getattr(entry, field)
        if isinstance(value, Decimal) and (problem := number_problem(value)):
            raise msgspec.ValidationError(f"{value}: {problem} - at `$.{field}`")
    return entry


# What the engine's order grid, book scales and venue requests are built from: any change needs a restart.
_GRID_FIELDS = (
    "venue_symbol", "base", "quote", "tick_size", "lot_size", "contract_size", "price_decimals", "size_decimals",
)
# What the engine takes as it runs (``ScannerPipeline.update_terms``): the market's minimums, and the
# account's fee rates where both reads come from the same source.
MINIMUM_FIELDS = ("min_size", "min_notional")
FEE_FIELDS = ("taker_fee", "maker_fee")


def trading_rules_changed(traded: Instrument, listed: Instrument) -> str | None:
    """Why ``traded`` (the rules the engine trades a market by) can no longer be traded as the venue
    now lists the market (``listed``); None when they still hold: a changed grid, contract size or
    symbol does not hold. Minimums and fee rates are not: the engine takes new ones as it runs.
    """
    changes = [
        f"{name} {getattr(traded, name)} -> {getattr(listed, name)}"
        for name in _GRID_FIELDS
        if getattr(traded, name) != getattr(listed, name)
    ]
    if not changes:
        return None
    return f"trading rules changed ({', '.join(changes)}); restart the engine to trade it by the new rules"


class InstrumentCatalog:
    """The instruments of one market, looked up by unified or venue symbol, and the pairs left out (with why)."""

    __slots__ = ("exchange", "skipped", "fees_from_account", "_by_symbol", "_by_venue_symbol")

    def __init__(
        self, exchange: ExchangeName, instruments: Iterable[Instrument], skipped: Iterable[SkippedPair] = (),
        *, fees_from_account: bool = False,
    ) -> None:
        self.exchange = exchange
        self.skipped: tuple[SkippedPair, ...] = tuple(skipped)
        # Whether the fees are the account's own rates (its tier) rather than the venue's listed ones.
        self.fees_from_account = fees_from_account
        self._by_symbol: dict[str, Instrument] = {}
        self._by_venue_symbol: dict[str, Instrument] = {}
        for instrument in instruments:
            if instrument.exchange is not exchange:
                raise InstrumentError(
                    f"{exchange.value}: catalog given instrument {instrument.symbol} of {instrument.exchange.value}"
                )
            if instrument.symbol in self._by_symbol or instrument.venue_symbol in self._by_venue_symbol:
                raise InstrumentError(f"{exchange.value}: duplicate instrument {instrument.venue_symbol}")
            self._by_symbol[instrument.symbol] = instrument
            self._by_venue_symbol[instrument.venue_symbol] = instrument

    def __len__(self) -> int:
        return len(self._by_symbol)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_symbol.values())

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def get(self, symbol: str) -> Instrument:
        """The instrument of a unified symbol; raises InstrumentError saying why it is missing."""
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise InstrumentError(self._missing(symbol)) from None

    def replaced(self, instrument: Instrument) -> InstrumentCatalog:
        """A copy of this catalog with ``instrument`` in place of the one of its symbol."""
        self.get(instrument.symbol)
        return InstrumentCatalog(
            self.exchange, [instrument if i.symbol == instrument.symbol else i for i in self],
            self.skipped, fees_from_account=self.fees_from_account,
        )

    def limited_to(self, venue_symbols: frozenset[str], reason: str) -> InstrumentCatalog:
        """A copy of this catalog keeping only the instruments of ``venue_symbols``; the others are
        left out for ``reason``."""
        kept = [i for i in self if i.venue_symbol in venue_symbols]
        if len(kept) == len(self):
            return self
        left_out = [
            SkippedPair(i.venue_symbol, i.symbol, reason) for i in self if i.venue_symbol not in venue_symbols
        ]
        return InstrumentCatalog(
            self.exchange, kept, (*self.skipped, *left_out), fees_from_account=self.fees_from_account
        )

    def closing_only(self, symbol: str) -> bool:
        """Whether ``symbol`` was left out as a market that takes only orders reducing a position."""
        return any(s.closing_only for s in self.skipped if s.symbol == symbol)

    def with_closing_only(self, symbols: Iterable[str]) -> InstrumentCatalog:
        """A copy listing again those of ``symbols`` left out as closing only whose rules were kept
        (``SkippedPair.instrument``), so that positions there can still be closed; they stay among
        the skipped pairs (``closing_only`` and ``left_out_reason`` still say so). Others are passed over."""
        wanted = set(symbols) - self._by_symbol.keys()
        kept = {
            s.symbol: s.instrument
            for s in self.skipped if s.closing_only and s.instrument is not None and s.symbol in wanted
        }
        if not kept:
            return self
        return InstrumentCatalog(
            self.exchange, [*self, *kept.values()], self.skipped, fees_from_account=self.fees_from_account
        )

    def left_out_reason(self, name: str) -> str | None:
        """Why the pair of unified or venue symbol ``name`` was left out, as ``get`` says it; None when it was not."""
        skip = next((s for s in self.skipped if name in (s.symbol, s.venue_symbol)), None)
        return None if skip is None else f"{self.exchange.value}: instrument {name!r} was left out: {skip.reason}"

    def by_venue_symbol(self, venue_symbol: str) -> Instrument:
        """The instrument of a venue pair name (``BTCUSDT``, ``BTC_USDT``)."""
        try:
            return self._by_venue_symbol[venue_symbol]
        except KeyError:
            raise InstrumentError(self._missing(venue_symbol)) from None

    def lists_venue_symbol(self, venue_symbol: str) -> bool:
        """Whether the catalog holds an instrument of the venue pair name ``venue_symbol``."""
        return venue_symbol in self._by_venue_symbol

    def _missing(self, name: str) -> str:
        return self.left_out_reason(name) or f"{self.exchange.value}: no instrument {name!r}"
