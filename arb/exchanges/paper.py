"""Paper mode: real public data, simulated fills against the live books.

``PaperExchange`` is the ``PrivateExchange`` of one market whose orders never leave the
process: each order is filled against the LIVE book of a public connector (``PaperSource``)
at the moment it is placed, and a paper account keeps the balances, positions, orders and
fills a venue would report.

What is simulated, and how:

* Latency: an order is filled ``latency_ms`` after it is placed (both legs of an execution travel
  at once), against the book as it is by then; 0 fills against the book it was decided on, as the
  stream's next frame leaves it (below). The
  latency is a round trip: one push's travel (the local book shows the venue as it was that long
  ago) and one request's, taken as halves. A book resyncing then (a gap, a reconnect) is waited
  for, up to ``book_wait_s``: the venue's book was there all along. So is a sign of life from the
  book's stream, a frame received since the order arrived less one push's travel (the stream is
  pinged once for it): a stream that stalled, or whose connection died silently, keeps its books in
  sync but frozen until its heartbeat gives up, and a live order would meet the venue's book, not
  that one. Past ``book_wait_s`` the order is refused as NOT_SENT (it may be sent again).
* Order budgets: each order spends the venue's order budget (``spend_order_budget`` of the
  public connector, waiting when it is spent), as a live order does when it is sent.
* Immediate orders only. Market, IOC and FOK orders walk the book best level first at the
  book's own prices (converted from the book scale, which may be finer than the order grid);
  a limit bounds the walk. FOK fills completely or not at all (``EXPIRED``); an IOC or
  market remainder expires. Resting orders (GTC, post-only) are refused with category
  INVALID_REQUEST: a paper order cannot sit in a queue it is not part of.
* Fill sizes: each level is taken at the book's own size precision, as the venue matches an
  order against makers' sizes as they are (Gate.io spot books carry sizes finer than the lot);
  the order's total fill stays on its lot grid, a partial fill's total rounded down to the lot
  off its last levels.
* Fees: the instrument's taker fee, exact, in the asset the venue charges
  (``Instrument.fee_asset``): the quote asset on futures, on a spot sell, and on a spot buy
  where the market charges fees in quote (MEXC: the buy pays notional + fee and receives the
  whole base); else a spot buy's fee comes out of the base it receives (Gate.io).
* Balances: a starting inventory per market (``[paper]`` in the configuration). Funds are
  checked before anything fills, as the venues check at placement: a limit buy needs
  ``price * quantity`` of quote, a market buy the cost of its walk (either with its taker
  fee where the buy pays it in quote), a spot sell the base
  quantity; a futures order needs the margin of the part that opens or grows a position (at the
  levels it fills at, those after the part that closes)
  plus that part's fee (a close needs nothing: its fee comes out of what it releases). Too
  little raises ``OrderRejectedError`` with category INSUFFICIENT_BALANCE.
* Futures: positions at 1x leverage and one average entry price each; opening locks
  ``contracts * contract_size * price`` of the settle asset as margin, reducing releases
  its share of the margin plus the realized PnL. No mark price, no liquidation. A
  reduce-only order is clipped to the position it reduces (its remainder expires) and
  refused with ORDER_REJECTED when there is none in its direction, as Gate.io does; so is an
  order that is not reduce-only on a market taking closes only (a contract in delisting).
* Funding: ``settle_due_funding`` settles each perpetual's announced rate (``FundingRate``,
  read from the venue's public data) on the open position once the settlement time it
  announces has passed, or a later settlement is announced (the local clock may run behind): ``-size x contract_size x mid x rate`` of the settle asset, valued at
  the live book's mid when it is settled (longs pay a positive rate), exact, charged in full
  (the free balance may go below zero: there is no liquidation). Each settlement is settled once, and only on positions open at it.
  One no rate was read for (the reads failed for a whole interval) is settled an interval after the
  last one announced, at the last rate read.
  The payments are listed by ``funding_payments``, as a venue's account book lists them.
* Consumed liquidity: the public book does not know about paper fills, so the exchange
  keeps a "taken" overlay per book level: the size taken from it, which is not offered again
  while the level stays in the book, whatever else changes its size. Size added to the level
  later is offered; when the level shrinks below what was taken (others took or cancelled
  it), what was taken is cut to the level's size, so only size added after that is offered.
  Once the level has left the book (seen by the next order or ``holds_back`` on that side) its
  entry is dropped: a level that comes back is new liquidity. The overlay thus holds only levels
  still in the book, and the same liquidity is never taken twice. ``holds_back`` tells the
  engine whether a plan made on the public book counts liquidity paper orders took (the venue's
  book would no longer show it).

The private-stream handlers (``on_fill`` per level filled, then ``on_order`` with the final
state, then ``on_balance`` per asset changed) run synchronously inside ``place_order``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, localcontext
from typing import NamedTuple, Protocol

from arb_core.book import ASK, BID, OrderBook
from arb_core.wire.common import WireScale

from ..errors import ExchangeConnectionError, ExchangeError, OrderRejectedError
from ..funding import FundingRate
from ..instruments import Instrument, InstrumentCatalog, InstrumentError, round_down_to_step
from ..types import ExchangeName, OrderSide
from .base import BalanceHandler, BalancesReadHandler, FillHandler, OrderHandler
from .errors import ErrorCategory
from .models import (
    Balance,
    ConnectionHealth,
    Fill,
    FundingPayment,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)

log = logging.getLogger(__name__)
ORDERS_KEPT = 100_000  # paper orders (and fills) remembered, newest first

ZERO = Decimal(0)
_PRECISION = 60  # wide enough that products and sums of venue decimals stay exact
# A partial close releases its share of the margin rounded to this (the rest goes with the last
# close): balances then stay exact sums of decimals, never a 60-digit quotient.
_MARGIN_QUANTUM = Decimal("1e-18")
_FIRST_LEVELS = 8  # levels read per step of a walk; doubled while the order is not done
# How long an order that arrives while its book resyncs waits for it: as long as a live order may
# wait for its venue's order budget (``OrderSettings.rate_limit_deadline_s``).
BOOK_WAIT_S = 1.0
_BOOK_POLL_S = 0.01


class PaperSource(Protocol):
    """The public side a paper market fills against (``ExchangeConnector`` fits)."""

    @property
    def exchange(self) -> ExchangeName:
        """The market."""

    async def instruments(self) -> InstrumentCatalog:
        """The trading rules of the market's instruments (with those it takes closes only on)."""

    def books(self) -> Mapping[str, OrderBook]:
        """The live books by unified symbol, in their book scale."""

    def book_scale(self, symbol: str) -> WireScale:
        """The fixed-point scale of the book of ``symbol``."""

    def order_wait_s(self, symbol: str) -> float:
        """Seconds until the venue's order budget of ``symbol`` admits an order (0: now)."""

    async def spend_order_budget(self, symbol: str) -> None:
        """Spend one order of the venue's order budget of ``symbol`` (waiting until it admits one)."""

    def stream_heard_ns(self, symbol: str) -> int:
        """When the stream carrying ``symbol``'s book last received a frame of any kind (``time.monotonic_ns``)."""

    def ping_stream(self, symbol: str) -> None:
        """Ping the stream carrying ``symbol``'s book: its pong moves ``stream_heard_ns`` if it is alive."""


class _Taken(NamedTuple):
    level_lots: int  # the level's live size (book lots) when last seen
    taken: Decimal  # order units taken from it and not offered again, at most its size


class _Offer(NamedTuple):
    price_ticks: int
    price: Decimal
    level_lots: int
    shown: Decimal  # the level's size in the book, order units
    offered: Decimal  # what of it paper orders did not take


class _LevelFill(NamedTuple):
    price: Decimal
    quantity: Decimal
    price_ticks: int
    level_lots: int


def _levels(book: OrderBook, side: int) -> Iterator[tuple[int, int]]:
    """The levels of one side of ``book`` (price ticks, size lots), best first. Per order, not per
    message: only as many levels are read as the caller goes through."""
    seen = 0
    wanted = _FIRST_LEVELS
    while seen < book.depth(side):
        levels = book.top(side, wanted)
        yield from levels[seen:]
        seen = len(levels)
        wanted *= 2


def _value_after(plan: list[_LevelFill], skipped: Decimal) -> Decimal:
    """The notional of ``plan``'s fills past its first ``skipped`` units."""
    value = ZERO
    for level in plan:
        quantity = level.quantity - min(skipped, level.quantity)
        skipped -= level.quantity - quantity
        value += level.price * quantity
    return value


class _PaperPosition:
    __slots__ = ("instrument", "size", "margin")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.size = ZERO  # signed contracts
        # The settle asset locked for the open size: its openings' notional, exact. A partial close
        # releases its share (``_MARGIN_QUANTUM``); the last close releases the rest, so a position
        # closed flat leaves nothing locked and its realized PnL is exact.
        self.margin = ZERO

    @property
    def entry_price(self) -> Decimal:
        """The average entry price of the open size."""
        return self.margin / (abs(self.size) * self.instrument.contract_size) if self.size else ZERO


class PaperExchange:
    """``PrivateExchange`` of one market, filled against ``source``'s live books.

    ``balances``: the starting inventory, asset -> amount (exact). The account's state is
    only in memory: a new ``PaperExchange`` starts from the inventory again. ``latency_ms``: how
    long an order travels there and back (one push's travel and one request's) before it is filled
    against the book as it is then. ``book_wait_s``: how long an order that arrives while its book is
    out of sync, or its stream silent, waits for it to be back.
    """

    def __init__(
        self, source: PaperSource, balances: Mapping[str, Decimal], *, clock_ms: int | None = None,
        latency_ms: int = 0, book_wait_s: float = BOOK_WAIT_S,
    ) -> None:
        for asset, amount in balances.items():
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"paper {source.exchange.value}: starting balance {asset}={amount} must be >= 0")
        if latency_ms < 0:
            raise ValueError(f"paper {source.exchange.value}: latency_ms={latency_ms} must be >= 0")
        self.source = source
        self.latency_s = latency_ms / 1000
        self._push_ns = latency_ms * 1_000_000 // 2  # one push's travel: half the round trip
        self.book_wait_s = book_wait_s
        self._free: dict[str, Decimal] = dict(balances)
        self._locked: dict[str, Decimal] = {}
        self._positions: dict[str, _PaperPosition] = {}
        # The newest ORDERS_KEPT orders and fills (a venue's order history ends too): a long paper run
        # stays bounded in memory.
        self._orders: dict[str, OrderState] = {}
        self._by_client: dict[str, str] = {}
        self._fills: deque[Fill] = deque(maxlen=ORDERS_KEPT)
        # Each payment with when it was settled here (its ``time_ms`` is the settlement's time): a
        # settlement that waited for its book is listed when made, as a venue lists a late entry.
        self._funding: list[tuple[int, FundingPayment]] = []
        self._announced: dict[str, FundingRate] = {}  # the latest rate seen per perpetual
        self._settled_ms: dict[str, int] = {}  # the last settlement time settled (or passed flat) per perpetual
        self._waiting: tuple[str, int] | None = None  # the settlement last reported waiting for its book
        self._taken: dict[str, dict[tuple[int, int], _Taken]] = {}
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._funding_ids = itertools.count(1)
        self._fixed_ms = clock_ms
        self._on_order: OrderHandler | None = None
        self._on_fill: FillHandler | None = None
        self._on_balance: BalanceHandler | None = None

    @property
    def exchange(self) -> ExchangeName:
        """The market traded."""
        return self.source.exchange

    @property
    def can_trade(self) -> bool:
        """Always: paper trading needs no keys."""
        return True

    def drop_assets(self, assets: Iterable[str]) -> None:
        """Take ``assets`` off the starting balances: ones this account cannot hold (a futures account
        holds only what its contracts settle in). Before trading: nothing of them is locked yet."""
        for asset in assets:
            self._free.pop(asset, None)

    def __repr__(self) -> str:
        return f"PaperExchange({self.exchange.value}, {len(self._orders)} orders)"

    # --- account ----------------------------------------------------------------------------

    async def balances(self) -> Mapping[str, Balance]:
        """Balances by asset (futures: position margin is locked)."""
        return {asset: self._balance(asset) for asset in sorted({*self._free, *self._locked})}

    async def positions(self) -> Sequence[Position]:
        """Open futures positions (empty on spot)."""
        return [
            Position(symbol=symbol, size=p.size, entry_price=p.entry_price, leverage=Decimal(1))
            for symbol, p in sorted(self._positions.items())
            if p.size
        ]

    async def funding_payments(self, since_ms: int) -> Sequence[FundingPayment]:
        """The funding settled on paper positions at or after ``since_ms`` (``settle_due_funding``), oldest
        first: by when it was settled, so one that waited for its book is not read as too old."""
        return [payment for settled_ms, payment in self._funding if settled_ms >= since_ms]

    def settle_due_funding(self, rates: Iterable[FundingRate], now_ms: int) -> list[FundingPayment]:
        """Settle every announced settlement of this market whose time is at or before ``now_ms`` and
        has not been settled; returns the payments made.

        ``rates``: the latest announced rates (other markets' are ignored). A rate announcing a later
        settlement than the one seen before means that earlier settlement has happened, whatever
        the local clock says (it may run behind the venue's): it is settled first, at the rate
        announced for it. Settlements no rate was read for (the reads failed for a whole interval)
        are not skipped: each one, an interval after the last announced, is settled at the last rate
        read. Nothing is settled while the position's book is not in sync or is empty (the next call
        settles it).
        """
        made: list[FundingPayment] = []
        for rate in rates:
            if rate.exchange is not self.exchange:
                continue
            earlier = self._announced.get(rate.symbol)
            if (
                earlier is not None
                and earlier.next_settle_ms < rate.next_settle_ms
                and not self._settle_through(earlier, rate.next_settle_ms - 1, now_ms, made)
            ):
                continue  # kept announced until its book allows it to settle
            self._announced[rate.symbol] = rate
            self._settle_through(rate, now_ms, now_ms, made)
        return made

    def _settle_through(self, rate: FundingRate, until_ms: int, now_ms: int, made: list[FundingPayment]) -> bool:
        """Settle each settlement of ``rate``'s schedule at or before ``until_ms`` not settled yet: the one
        it announced, then those whole intervals after it (as ``FundingRate.settlements_within`` rolls
        forward), which no read announced, at its rate, the last known. False when one is due and could
        not be settled (those after it wait with it)."""
        interval_ms = rate.interval_s * 1000
        at_ms = rate.next_settle_ms
        settled_ms = self._settled_ms.get(rate.symbol, -1)
        if settled_ms >= at_ms:
            at_ms += ((settled_ms - at_ms) // interval_ms + 1) * interval_ms
        while at_ms <= until_ms:
            if not self._settle_funding(rate, at_ms, max(now_ms, at_ms), made):
                return False
            at_ms += interval_ms
        return True

    def _settle_funding(self, rate: FundingRate, at_ms: int, now_ms: int, made: list[FundingPayment]) -> bool:
        """Settle the settlement at ``at_ms`` at ``rate``'s rate (``now_ms``: when it is settled); False when
        its book cannot value it."""
        symbol = rate.symbol
        position = self._positions.get(symbol)
        if position is None or not position.size:
            self._settled_ms[symbol] = at_ms
            return True
        book = self.source.books().get(symbol)
        if book is None or not book.in_sync or not (book.best_bid_price() or book.best_ask_price()):
            if self._waiting != (symbol, at_ms):  # once per settlement, not on every call until the book is back
                self._waiting = (symbol, at_ms)
                log.warning("%s %s: funding due at %d ms waits for a live book to be valued on", self._venue, symbol, at_ms)
            return False
        bid, ask = book.best_bid_price(), book.best_ask_price()
        scale = self.source.book_scale(symbol)
        tick = Decimal(scale.tick_units).scaleb(-scale.price_decimals)
        contract_size, asset = position.instrument.contract_size, position.instrument.quote
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            mid = (bid + ask) * tick / 2 if bid and ask else (bid or ask) * tick
            amount = -position.size * contract_size * mid * rate.rate
            self._add(asset, amount)
        if self._free.get(asset, ZERO) < 0:
            # A venue takes it from the position's margin; paper has no liquidation, so it shows as owed.
            log.warning("%s %s: funding %s %s leaves the paper %s balance at %s (paper positions are not "
                        "liquidated)", self._venue, symbol, amount, asset, asset, self._free[asset])
        self._settled_ms[symbol] = at_ms
        if not amount:
            return True
        payment = FundingPayment(
            payment_id=f"paper-f{next(self._funding_ids)}", symbol=symbol, amount=amount, time_ms=at_ms
        )
        self._funding.append((now_ms, payment))
        made.append(payment)
        if at_ms == rate.next_settle_ms:
            log.info("%s %s: funding %s %s on %s contracts at mid %s, rate %s", self._venue, symbol, amount, asset,
                     position.size, mid, rate.rate)
        else:
            log.warning("%s %s: funding %s %s on %s contracts at mid %s for the settlement at %d ms, no rate read "
                        "for it: at the last rate read, %s (announced for %d ms)", self._venue, symbol, amount,
                        asset, position.size, mid, at_ms, rate.rate, rate.next_settle_ms)
        if self._on_balance is not None:
            self._on_balance(self._balance(asset))
        return True

    def fills(self) -> list[Fill]:
        """The paper fills so far, in order (the newest ``ORDERS_KEPT``)."""
        return list(self._fills)

    def _balance(self, asset: str) -> Balance:
        return Balance(asset=asset, free=self._free.get(asset, ZERO), locked=self._locked.get(asset, ZERO))

    # --- orders -----------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Fill ``request`` against the live book once it has travelled ``latency_ms``; returns its final state.

        Raises ``OrderRejectedError`` (INSUFFICIENT_BALANCE, PRECISION, MIN_NOTIONAL,
        ORDER_REJECTED) or ``ExchangeError`` (INVALID_REQUEST; NOT_SENT when its book stays out
        of sync or its stream silent, ``_live_book``) when the order is refused; nothing is recorded then.
        """
        # The venue's order budget, as a live order spends it: the engine passes up an opportunity
        # its budget cannot take now, and a paper run must meet that as often as a live one does.
        await self.source.spend_order_budget(request.symbol)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)  # cancelled on the way, the order never arrives
        arrived_ns = time.monotonic_ns()
        catalog = await self.source.instruments()
        instrument = catalog.get(request.symbol)
        where = f"paper order {request.client_order_id!r} {request.symbol}"
        # Refused at once, whatever its book.
        self._check_request(request, instrument, where, closing_only=catalog.closing_only(request.symbol))
        book = await self._live_book(request.symbol, where, arrived_ns - self._push_ns)
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            quantity = self._reducible(request, where) if request.reduce_only else request.quantity
            plan = self._walk(book, request, quantity, instrument)
            filled = sum((f.quantity for f in plan), ZERO)
            if request.time_in_force is TimeInForce.FOK and filled < quantity:
                plan, filled = [], ZERO
            self._check_funds(request, instrument, plan, where)
            state = self._execute(request, instrument, plan, filled)
        return state

    def write_order(self, request: OrderRequest) -> None:
        """None: a paper order is filled when ``place_order`` runs, against the book as it is then."""
        return None

    def order_wait_s(self, symbol: str) -> float:
        """Seconds until the venue's order budget admits an order, as ``place_order`` spends it (the source's)."""
        return self.source.order_wait_s(symbol)

    @property
    def order_acceptance_s(self) -> float:
        """0: a paper order is taken when ``place_order`` runs, or never."""
        return 0.0

    @property
    def client_id_lookup_s(self) -> None:
        """None: a paper order is found by its client id while it is among the orders kept."""
        return None

    def rehearse_order(self, request: OrderRequest) -> None:
        """Nothing to encode: a paper order is never written."""

    def _check_request(self, request: OrderRequest, instrument: Instrument, where: str, *, closing_only: bool) -> None:
        if request.client_order_id in self._by_client:
            raise OrderRejectedError(
                self._venue, f"{where}: client order id already used", category=ErrorCategory.ORDER_REJECTED
            )
        if closing_only and not request.reduce_only:
            # As Gate.io refuses it (CONTRACT_IN_DELISTING): a contract in delisting takes only closes.
            raise OrderRejectedError(
                self._venue, f"{where}: the market takes only reduce-only orders (in delisting)",
                category=ErrorCategory.ORDER_REJECTED,
            )
        if request.type is OrderType.LIMIT and request.time_in_force in (TimeInForce.GTC, TimeInForce.POST_ONLY):
            raise ExchangeError(
                self._venue,
                f"{where}: paper trading fills only immediate orders (market, IOC, FOK); "
                f"{request.time_in_force.value} orders would rest and are not simulated",
                category=ErrorCategory.INVALID_REQUEST,
            )
        if request.reduce_only and not instrument.is_futures:
            raise ExchangeError(
                self._venue, f"{where}: reduce_only is for futures", category=ErrorCategory.INVALID_REQUEST
            )
        try:
            instrument.size_to_lots(request.quantity)
            if request.price is not None:
                instrument.price_to_ticks(request.price)
        except InstrumentError as exc:
            raise OrderRejectedError(self._venue, f"{where}: {exc}", category=ErrorCategory.PRECISION) from None
        if request.quantity < instrument.min_size:
            raise OrderRejectedError(
                self._venue, f"{where}: quantity {request.quantity} is below min_size {instrument.min_size}",
                category=ErrorCategory.MIN_NOTIONAL,
            )
        if request.price is not None:
            value = request.quantity * instrument.contract_size * request.price
            if value < instrument.min_notional:
                raise OrderRejectedError(
                    self._venue, f"{where}: value {value} is below min_notional {instrument.min_notional}",
                    category=ErrorCategory.MIN_NOTIONAL,
                )

    def _reducible(self, request: OrderRequest, where: str) -> Decimal:
        """The contracts a reduce-only ``request`` may trade: its quantity clipped to the position it
        reduces, as the venue clips it; refused when there is nothing to reduce in its direction."""
        position = self._positions.get(request.symbol)
        size = position.size if position is not None else ZERO
        reducible = -size if request.side is OrderSide.BUY else size
        if reducible <= 0:
            raise OrderRejectedError(
                self._venue, f"{where}: reduce-only {request.side.value} with position {size}",
                category=ErrorCategory.ORDER_REJECTED,
            )
        return min(request.quantity, reducible)

    async def _live_book(self, symbol: str, where: str, since_ns: int) -> OrderBook:
        """The live book of ``symbol`` once it is in sync and its stream has received a frame at or after
        ``since_ns``, waiting up to ``book_wait_s`` (a gap or a reconnect while the order travelled: the
        venue's book was there all along). A stream silent since then is pinged once: a quiet one
        answers, one that stalled or died silently does not, and its books, in sync, are frozen. Past
        the wait the order is refused as NOT_SENT: nothing was filled, and it may be sent again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.book_wait_s
        pinged = False
        while True:
            book = self.source.books().get(symbol)
            in_sync = book is not None and book.in_sync
            if book is not None and in_sync:
                if self.source.stream_heard_ns(symbol) >= since_ns:
                    return book
                if not pinged:
                    self.source.ping_stream(symbol)
                    pinged = True
            if loop.time() >= deadline:
                why = (
                    "its stream received nothing since the order arrived (stalled, or its connection lost)"
                    if in_sync else "no live book in sync to fill against"
                )
                raise ExchangeConnectionError(
                    self._venue, f"{where}: {why} after {self.book_wait_s} s", category=ErrorCategory.NOT_SENT
                )
            await asyncio.sleep(_BOOK_POLL_S)

    def holds_back(self, symbol: str, side: OrderSide, quantity: Decimal, limit: Decimal) -> bool:
        """Whether paper orders took part of what ``symbol``'s book shows for a ``side`` order of
        ``quantity`` (order units) limited at ``limit``: it would fill less than the book shows
        within the limit.

        The public book still shows what paper orders took (the venue never saw them); the
        venue's book would no longer, so a plan made on the public book must not trade it.
        """
        if not self._taken.get(symbol):
            return False
        book = self.source.books().get(symbol)
        if book is None or not book.in_sync:
            return False
        shown = offered = ZERO
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            for level in self._offers(book, symbol, ASK if side is OrderSide.BUY else BID, limit):
                shown += level.shown
                offered += level.offered
                if offered >= quantity:
                    return False
            return offered < min(shown, quantity)

    def _offers(self, book: OrderBook, symbol: str, side: int, limit: Decimal | None) -> Iterator[_Offer]:
        """The levels of ``book``'s ``side`` within ``limit``, best first, with what each offers to paper
        orders: the taken overlay, brought up to the book's sizes first, applied."""
        scale = self.source.book_scale(symbol)
        tick = Decimal(scale.tick_units).scaleb(-scale.price_decimals)
        lot = Decimal(scale.lot_units).scaleb(-scale.size_decimals)
        taken = self._taken.setdefault(symbol, {})
        for key, held in list(taken.items()):
            if key[0] != side:
                continue
            level_lots = book.size_at(side, key[1])
            if not level_lots:
                del taken[key]  # the level left the book: one there later is new liquidity
            elif level_lots != held.level_lots:
                taken[key] = _Taken(level_lots, min(held.taken, level_lots * lot))
        for price_ticks, level_lots in _levels(book, side):
            price = price_ticks * tick
            if limit is not None and (price > limit if side == ASK else price < limit):
                return
            shown = level_lots * lot
            entry = taken.get((side, price_ticks))
            yield _Offer(price_ticks, price, level_lots, shown, shown - entry.taken if entry is not None else shown)

    def _walk(self, book: OrderBook, request: OrderRequest, quantity: Decimal, instrument: Instrument) -> list[_LevelFill]:
        """The level fills of ``quantity`` of ``request`` against ``book``, the taken overlay applied."""
        side = ASK if request.side is OrderSide.BUY else BID
        remaining = quantity
        plan: list[_LevelFill] = []
        for level in self._offers(book, request.symbol, side, request.price):
            quantity_here = min(remaining, level.offered)
            if quantity_here > 0:
                plan.append(_LevelFill(level.price, quantity_here, level.price_ticks, level.level_lots))
                remaining -= quantity_here
                if not remaining:
                    return plan
        # The venue matches against makers' sizes as they are (finer than the lot on Gate.io spot):
        # only the order's total fill stays on its lot grid, the excess trimmed off its last levels.
        filled = quantity - remaining
        excess = filled - round_down_to_step(filled, instrument.lot_size)
        while excess > 0:
            last = plan.pop()
            if last.quantity > excess:
                plan.append(last._replace(quantity=last.quantity - excess))
            excess -= last.quantity
        return plan

    def _check_funds(
        self, request: OrderRequest, instrument: Instrument, plan: list[_LevelFill], where: str
    ) -> None:
        walked = sum((f.price * f.quantity for f in plan), ZERO)
        contract = instrument.contract_size
        if instrument.is_futures:
            filled = sum((f.quantity for f in plan), ZERO)
            opening = self._opening_part(request, instrument, filled)
            # The margin is locked at the fill prices (a sell fills at or above its limit): the
            # check takes the larger of those and the limit's. Closing needs no margin, its fee
            # included (Gate.io: "no margin is needed for closing a position"): it is paid out of
            # what the close releases, so only the opening part's fee is checked. The close takes
            # the first levels, as ``_settle`` books them; the opening part fills at the ones after.
            opening_value = _value_after(plan, filled - opening) * contract
            fee = opening_value * instrument.taker_fee
            if request.price is not None:
                opening_value = max(opening_value, opening * contract * request.price)
                opening_ordered = self._opening_part(request, instrument, request.quantity)
                fee = max(fee, opening_ordered * contract * request.price * instrument.taker_fee)
            asset, needed = instrument.quote, opening_value + max(fee, ZERO)
        elif request.side is OrderSide.BUY:
            asset = instrument.quote
            needed = request.quantity * request.price if request.price is not None else walked
            if instrument.fee_asset(OrderSide.BUY) == asset:
                needed += max(needed * instrument.taker_fee, ZERO)
        else:
            asset, needed = instrument.base, request.quantity
        free = self._free.get(asset, ZERO)
        if needed > free:
            raise OrderRejectedError(
                self._venue,
                f"{where}: insufficient paper balance: needs {needed} {asset}, free {free} {asset}",
                category=ErrorCategory.INSUFFICIENT_BALANCE,
            )

    def _opening_part(self, request: OrderRequest, instrument: Instrument, quantity: Decimal) -> Decimal:
        """Contracts of ``quantity`` that open or grow a position (the rest reduces one; none of a
        reduce-only order, which the venue clips to the position)."""
        if request.reduce_only:
            return ZERO
        position = self._positions.get(instrument.symbol)
        size = position.size if position is not None else ZERO
        delta = quantity if request.side is OrderSide.BUY else -quantity
        if size == 0 or (size > 0) == (delta > 0):
            return abs(delta)
        return max(abs(delta) - abs(size), ZERO)

    def _execute(
        self, request: OrderRequest, instrument: Instrument, plan: list[_LevelFill], filled: Decimal
    ) -> OrderState:
        now_ms = self._now_ms()
        order_id = f"paper-{next(self._ids)}"
        taken = self._taken.setdefault(request.symbol, {})
        side = ASK if request.side is OrderSide.BUY else BID
        fills: list[Fill] = []
        changed: set[str] = set()
        notional = fee_total = ZERO
        fee_asset = instrument.fee_asset(request.side)
        for level in plan:
            entry = taken.get((side, level.price_ticks))  # as ``_walk`` left it: nothing ran since
            before = entry.taken if entry is not None else ZERO
            taken[(side, level.price_ticks)] = _Taken(level.level_lots, before + level.quantity)
            value = level.price * level.quantity * instrument.contract_size
            fee = (level.quantity if fee_asset == instrument.base else value) * instrument.taker_fee
            changed |= self._settle(request, instrument, level, value, fee, fee_asset)
            notional += value
            fee_total += fee
            fill = Fill(
                symbol=request.symbol,
                order_id=order_id,
                client_order_id=request.client_order_id,
                trade_id=f"paper-t{next(self._trade_ids)}",
                side=request.side,
                price=level.price,
                quantity=level.quantity,
                fee=fee,
                fee_asset=fee_asset,
                is_maker=False,
                timestamp_ms=now_ms,
            )
            fills.append(fill)
        if filled == request.quantity:
            status = OrderStatus.FILLED
        else:
            status = OrderStatus.EXPIRED
        state = OrderState(
            symbol=request.symbol,
            order_id=order_id,
            client_order_id=request.client_order_id,
            side=request.side,
            type=request.type,
            status=status,
            quantity=request.quantity,
            price=request.price,
            filled_quantity=filled,
            average_price=notional / (filled * instrument.contract_size) if filled else None,
            fee=fee_total,
            fee_asset=fee_asset if filled else None,
            updated_at_ms=now_ms,
        )
        self._orders[order_id] = state
        self._by_client[request.client_order_id] = order_id
        if len(self._orders) > ORDERS_KEPT:
            oldest = self._orders.pop(next(iter(self._orders)))
            if oldest.client_order_id is not None:
                self._by_client.pop(oldest.client_order_id, None)
        self._fills.extend(fills)
        log.info(
            "paper %s %s %s %s %s: %s, filled %s at %s, fee %s %s",
            self._venue, request.client_order_id, request.side.value, request.quantity, request.symbol,
            status.value, filled, state.average_price, fee_total, fee_asset,
        )
        self._notify(fills, state, changed)
        return state

    def _settle(
        self, request: OrderRequest, instrument: Instrument, level: _LevelFill, value: Decimal, fee: Decimal,
        fee_asset: str,
    ) -> set[str]:
        """Book one level fill into the account; returns the assets whose balance changed."""
        base, quote = instrument.base, instrument.quote
        if not instrument.is_futures:
            if request.side is OrderSide.BUY:
                self._add(quote, -value)
                self._add(base, level.quantity)
            else:
                self._add(base, -level.quantity)
                self._add(quote, value)
            self._add(fee_asset, -fee)
            return {base, quote}
        position = self._positions.get(instrument.symbol)
        if position is None:
            position = self._positions[instrument.symbol] = _PaperPosition(instrument)
        delta = level.quantity if request.side is OrderSide.BUY else -level.quantity
        contract = instrument.contract_size
        if position.size and (position.size > 0) != (delta > 0):
            closing = min(abs(delta), abs(position.size))
            direction = 1 if position.size > 0 else -1
            margin = position.margin
            if closing != abs(position.size):
                margin = (margin * closing / abs(position.size)).quantize(_MARGIN_QUANTUM)
            pnl = (closing * contract * level.price - margin) * direction
            position.margin -= margin
            self._locked[quote] = self._locked.get(quote, ZERO) - margin
            self._add(quote, margin + pnl)
            position.size += closing if delta > 0 else -closing
            delta += -closing if delta > 0 else closing
        if delta:
            opened = abs(delta) * contract * level.price
            position.margin += opened
            position.size += delta
            self._add(quote, -opened)
            self._locked[quote] = self._locked.get(quote, ZERO) + opened
        self._add(fee_asset, -fee)
        return {quote}

    def _add(self, asset: str, amount: Decimal) -> None:
        self._free[asset] = self._free.get(asset, ZERO) + amount

    def _notify(self, fills: list[Fill], state: OrderState, changed: set[str]) -> None:
        on_fill, on_order, on_balance = self._on_fill, self._on_order, self._on_balance
        if on_fill is not None:
            for fill in fills:
                on_fill(fill)
        if on_order is not None:
            on_order(state)
        if on_balance is not None:
            for asset in sorted(changed):
                on_balance(self._balance(asset))

    def _now_ms(self) -> int:
        return self._fixed_ms if self._fixed_ms is not None else time.time_ns() // 1_000_000

    @property
    def _venue(self) -> str:
        return f"paper {self.exchange.value}"

    def _find(self, symbol: str, order_id: str | None, client_order_id: str | None, action: str) -> OrderState:
        if (order_id is None) == (client_order_id is None):
            raise ValueError(
                f"{self._venue} {action} {symbol}: give exactly one of order_id={order_id!r} and "
                f"client_order_id={client_order_id!r}"
            )
        key = order_id if order_id is not None else self._by_client.get(client_order_id or "")
        state = self._orders.get(key or "")
        if state is None or state.symbol != symbol:
            which = f"order id {order_id!r}" if order_id is not None else f"client order id {client_order_id!r}"
            raise OrderRejectedError(
                self._venue, f"{action} {symbol}: unknown {which}", category=ErrorCategory.UNKNOWN_ORDER
            )
        return state

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        """The recorded state of an order, by paper order id or client id (exactly one)."""
        return self._find(symbol, order_id, client_order_id, "query_order")

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        """Paper orders are final when placed: a known order raises UNKNOWN_ORDER ("already closed"),
        as venues answer a cancel of a finished order."""
        state = self._find(symbol, order_id, client_order_id, "cancel_order")
        raise OrderRejectedError(
            self._venue, f"cancel_order {symbol}: order {state.order_id} is already {state.status.value}",
            category=ErrorCategory.UNKNOWN_ORDER,
        )

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        """Resting orders: none, paper orders never rest."""
        return []

    # --- private stream -----------------------------------------------------------------------

    async def start_private_stream(
        self, on_order: OrderHandler | None, on_fill: FillHandler, on_balance: BalanceHandler | None = None,
        *, on_balances_read: BalancesReadHandler | None = None, on_resubscribed: Callable[[], None] | None = None,
    ) -> None:
        """Report every paper order, fill and balance change to the handlers, synchronously
        (paper balances are pushed whole: ``on_balances_read`` is never called, and nothing
        reconnects: nor is ``on_resubscribed``)."""
        self._on_order, self._on_fill, self._on_balance = on_order, on_fill, on_balance

    async def stop_private_stream(self) -> None:
        """Stop reporting."""
        self._on_order = self._on_fill = self._on_balance = None

    def health(self) -> ConnectionHealth:
        """Always connected: the private side is in-process."""
        return ConnectionHealth(
            venue=self._venue,
            url="paper://",
            connected=True,
            connects=1,
            reconnects=0,
            messages=len(self._orders),
            last_message_age_ns=None,
            errors={},
        )


__all__ = ["PaperExchange", "PaperSource"]
