"""Price-time-priority matching for the simulated venues, in integer ticks, lots and asset atoms.

One ``MatchingEngine`` serves one (market, symbol); a ``SimExchange`` groups the engines
of one market (``ExchangeName``) with their ``Ledger`` of accounts and is the API the
serving layer calls. Nothing here reads a clock: every call takes ``now_ns``, and order
and trade ids are sequential per ``SimExchange``.

How liquidity shares a price level: the public book (``MatchingEngine.book``, an
``arb_core`` ``OrderBook``) holds at each price the market's own aggregated size (set by
the market generator through ``apply_market_levels``) plus the remaining size of every
resting user order there. The market's size is always first in the queue, user orders
follow in time priority, so a user order joins the back of the level as a newcomer would.
When the market moves a level through a resting user order, that order fills as maker at
its own price against the market's liquidity. An immediate order may instead ``take``
liquidity its caller holds (the backtest's replayed book), which the engine does not keep.

Money: balances are exact ints in atoms of ``10**-ATOM_DECIMALS`` of an asset. Spot fees
are charged in the asset the instrument says (``Instrument.fee_asset``): in the quote on both
sides where it charges fees in quote (MEXC: a buy pays notional + fee and receives the whole
base), else in the asset received (Gate.io: base on a buy, quote on a sell); futures fees in
the settle asset. Fees round up in the venue's favour (a rebate rounds down). The ledger's
``market`` account is the counterparty of every fill against the market's liquidity and may
go negative; ``fees`` collects fees and pays rebates.

Futures margin (simplified): isolated per position with a fixed ``leverage``; opening
``n`` of notional locks ``ceil(n / leverage)`` as position margin; reducing releases margin
pro rata and settles realized PnL in the settle asset against the ``market`` account
(the clearing house, also for user-vs-user fills). A loss larger than what the account
holds is capped at what it holds (no liquidation engine, no mark price). Funding is settled
when the serving layer calls ``settle_funding``: every open position pays or receives
``rate x contracts x price`` (longs pay a positive rate), rounded in the venue's favour and
capped at what a paying account holds, against the ``market`` account, and recorded in the
account's ``funding`` list as the venue's account book would list it.
A resting futures order locks, per contract, the margin plus the positive maker fee at its
price, as if it opened a position. A resting spot buy locks its notional per lot, plus, where
it pays its fee in quote, the fee per lot at the larger of the taker and maker rates (rates
raised after it rested: its fee is capped at what the account holds when it fills).
A spot order is checked whole when placed, as a venue checks it, whatever part then fills: an
IOC/FOK limit buy needs its whole size at its limit as a resting buy would lock it, a market
buy what its whole size walks to in the book (or its whole quote amount), a sell its whole size.
``reduce_only`` is accepted on taker-only futures orders (market, IOC, FOK): the size is
clipped to the position it reduces.

Rejections raise ``OrderRejected`` with an ``ErrorCategory``; no order id is used up.
Market and IOC/FOK remainders end ``EXPIRED`` with a reason.

Order history: like a venue, an engine answers queries for recent finished orders only. Past
``FINISHED_ORDERS_KEPT`` known orders it forgets the oldest finished ones (open orders are
always kept), so a long run's memory stays bounded; a forgotten order is an unknown order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import NamedTuple

import msgspec

from arb_core.book import ASK, BID, DeltaBatch, OrderBook

from ..exchanges.errors import ErrorCategory
# Re-exported: the simulator speaks the same order vocabulary as the connectors.
from ..exchanges.models import OrderStatus as OrderStatus
from ..exchanges.models import OrderType as OrderType
from ..exchanges.models import TimeInForce as TimeInForce
from ..instruments import Instrument, InstrumentError
from ..types import ExchangeName, OrderSide

ATOM_DECIMALS = 30
_ATOM = 10**ATOM_DECIMALS
FEE_ACCOUNT = "fees"
MARKET_ACCOUNT = "market"
_MARKET_CHUNK = 128  # most levels ``set_market_levels`` applies as one book update
_PLAN_LEVELS = 4  # book levels an order's plan reads first (then twice as many while it needs more)
_KNOWN_STEPS = 4096  # wire prices (or sizes) whose conversion an engine remembers before starting over
FINISHED_ORDERS_KEPT = 100_000  # orders an engine knows before it forgets the oldest finished ones
# Markets whose every push carries one update id: MEXC contract depth, subscribed unmerged,
# steps ``version`` by one per push. Elsewhere each changed level is one event of the
# venue's matching engine and takes an id of its own (see ``MatchingEngine``).
ONE_ID_PER_CHANGE: frozenset[ExchangeName] = frozenset({ExchangeName.MEXC_FUTURES})


class Liquidity(str, Enum):
    """Whether a fill added (maker) or removed (taker) liquidity."""

    MAKER = "maker"
    TAKER = "taker"


OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})


class OrderRejected(Exception):
    """The simulated venue refused a request; ``category`` says why in venue-agnostic terms."""

    def __init__(self, category: ErrorCategory, message: str) -> None:
        super().__init__(message)
        self.category = category


def to_atoms(amount: Decimal | int | str) -> int:
    """An asset amount as exact atoms; raises ValueError if it has more than ATOM_DECIMALS decimals."""
    try:
        value = Decimal(amount)
        scaled = value.scaleb(ATOM_DECIMALS)
        if not value.is_finite() or scaled != scaled.to_integral_value():
            raise ValueError(f"amount {amount!r} is not a finite number with at most {ATOM_DECIMALS} decimals")
    except InvalidOperation:
        raise ValueError(f"amount {amount!r} is not a number") from None
    return int(scaled)


def from_atoms(atoms: int) -> Decimal:
    """The exact Decimal amount of ``atoms``."""
    return Decimal(atoms).scaleb(-ATOM_DECIMALS).normalize() if atoms else Decimal(0)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -((-numerator) // denominator)


def _fee(notional_or_qty: int, rate: tuple[int, int]) -> int:
    """The fee at ``rate`` (numerator, denominator), rounded up in the venue's favour."""
    return _ceil_div(notional_or_qty * rate[0], rate[1])


class Fill(NamedTuple):
    """One execution of one order; ``fee_atoms`` < 0 is a rebate."""

    trade_id: int
    order_id: int
    client_id: str | None
    user: str
    exchange: ExchangeName
    symbol: str
    side: OrderSide
    price_ticks: int
    size_lots: int
    fee_atoms: int
    fee_asset: str
    liquidity: Liquidity
    time_ns: int


class OrderEvent(NamedTuple):
    """An order's state after a change (the private order stream's payload)."""

    order_id: int
    client_id: str | None
    user: str
    exchange: ExchangeName
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    price_ticks: int  # 0 for market orders
    size_lots: int  # 0 for a spot market buy by quote amount
    quote_amount_atoms: int  # spend limit of a market buy by quote amount, else 0
    filled_lots: int
    filled_quote_atoms: int  # sum of fill notionals, for the average price
    status: OrderStatus
    reason: str  # why it ended: "", "canceled", "ioc", "fok", "market", "reduce_only"
    reduce_only: bool
    created_ns: int
    time_ns: int  # when it came to this state (its last change)
    fee_atoms: int  # the fees of its fills so far (negative: a rebate), in atoms of ``fee_asset``
    fee_asset: str  # "" before its first fill


class BookUpdate(NamedTuple):
    """Changed public levels of one book, with the update ids that sequence them."""

    exchange: ExchangeName
    symbol: str
    first_update_id: int
    last_update_id: int
    time_ns: int
    levels: tuple[tuple[int, int, int], ...]  # (side BID/ASK, price_ticks, size_lots); size 0 deletes


class BookSnapshot(NamedTuple):
    """Top of one public book at ``last_update_id`` (best first)."""

    exchange: ExchangeName
    symbol: str
    last_update_id: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class PlaceResult(NamedTuple):
    """What placing an order did: its state, its fills, and the public book change (if any)."""

    order: OrderEvent
    fills: tuple[Fill, ...]
    book_update: BookUpdate | None


class Position:
    """A futures position: signed contracts, entry notional and margin in settle atoms."""

    __slots__ = ("contracts", "cost_atoms", "margin_atoms", "realized_pnl_atoms")

    def __init__(self) -> None:
        self.contracts = 0
        self.cost_atoms = 0  # entry notional of the open contracts (always >= 0)
        self.margin_atoms = 0
        self.realized_pnl_atoms = 0


class FundingEntry(NamedTuple):
    """One funding settlement of one position, as an account book lists it."""

    entry_id: int
    wall_ms: int
    symbol: str
    asset: str
    change_atoms: int  # > 0 received, < 0 paid
    balance_atoms: int  # the asset's free balance after it


class Account:
    """One user's balances (free and locked per asset), futures positions and funding record on one market."""

    __slots__ = ("user", "free", "locked", "positions", "funding")

    def __init__(self, user: str) -> None:
        self.user = user
        self.free: dict[str, int] = {}
        self.locked: dict[str, int] = {}
        self.positions: dict[str, Position] = {}
        self.funding: list[FundingEntry] = []

    def add(self, asset: str, atoms: int) -> None:
        self.free[asset] = self.free.get(asset, 0) + atoms

    def lock(self, asset: str, atoms: int) -> None:
        self.free[asset] = self.free.get(asset, 0) - atoms
        self.locked[asset] = self.locked.get(asset, 0) + atoms

    def unlock(self, asset: str, atoms: int) -> None:
        self.locked[asset] -= atoms
        self.free[asset] = self.free.get(asset, 0) + atoms

    def position(self, symbol: str) -> Position:
        position = self.positions.get(symbol)
        if position is None:
            position = self.positions[symbol] = Position()
        return position


class Ledger:
    """Accounts of one market, plus the ``fees`` sink and the ``market`` counterparty."""

    def __init__(self, exchange: ExchangeName) -> None:
        self.exchange = exchange
        self.accounts: dict[str, Account] = {}
        self.fees = Account(FEE_ACCOUNT)
        self.market = Account(MARKET_ACCOUNT)
        self.settle_assets: dict[str, str] = {}  # futures symbol -> settle asset

    def account(self, user: str) -> Account:
        """The user's account, created empty on first use."""
        account = self.accounts.get(user)
        if account is None:
            if user in (FEE_ACCOUNT, MARKET_ACCOUNT) or not user:
                raise ValueError(f"{self.exchange.value}: user name {user!r} is reserved or empty")
            account = self.accounts[user] = Account(user)
        return account

    def deposit(self, user: str, asset: str, amount: Decimal | int | str) -> None:
        """Credit ``amount`` of ``asset`` to the user, taken from the market account (so totals are conserved)."""
        atoms = to_atoms(amount)
        if atoms < 0:
            raise ValueError(f"{self.exchange.value}: deposit of {asset} must not be negative, got {amount}")
        self.account(user).add(asset, atoms)
        self.market.add(asset, -atoms)

    def total(self, asset: str) -> int:
        """Sum of ``asset`` over every account, fees and market, free + locked + position margin."""
        total = 0
        for account in (*self.accounts.values(), self.fees, self.market):
            total += account.free.get(asset, 0) + account.locked.get(asset, 0)
            for symbol, position in account.positions.items():
                if self.settle_assets.get(symbol) == asset:
                    total += position.margin_atoms
        return total


class _IdSource:
    __slots__ = ("order_id", "trade_id", "funding_id")

    def __init__(self) -> None:
        self.order_id = 0
        self.trade_id = 0
        self.funding_id = 0


class _Order:
    """Mutable state of a live or finished order (callers see ``OrderEvent`` snapshots)."""

    __slots__ = (
        "order_id", "client_id", "user", "side", "order_type", "tif", "price_ticks", "size_lots", "quote_atoms",
        "filled_lots", "filled_quote_atoms", "status", "reason", "reduce_only", "created_ns", "updated_ns",
        "lock_asset", "lock_per_lot", "locked_atoms", "fee_atoms", "fee_asset",
    )

    def __init__(
        self, order_id: int, client_id: str | None, user: str, side: OrderSide, order_type: OrderType,
        tif: TimeInForce, price_ticks: int, size_lots: int, quote_atoms: int, reduce_only: bool, created_ns: int,
    ) -> None:
        self.order_id = order_id
        self.client_id = client_id
        self.user = user
        self.side = side
        self.order_type = order_type
        self.tif = tif
        self.price_ticks = price_ticks
        self.size_lots = size_lots
        self.quote_atoms = quote_atoms
        self.filled_lots = 0
        self.filled_quote_atoms = 0
        self.status = OrderStatus.NEW
        self.reason = ""
        self.reduce_only = reduce_only
        self.created_ns = created_ns
        self.updated_ns = created_ns  # its last change (a fill, a cancel, its expiry)
        self.lock_asset = ""
        self.lock_per_lot = 0
        self.locked_atoms = 0
        self.fee_atoms = 0
        self.fee_asset = ""

    @property
    def remaining(self) -> int:
        return self.size_lots - self.filled_lots


# One planned execution: (price_ticks, size_lots, resting user order or None for market liquidity).
_Step = tuple[int, int, "_Order | None"]


def _truncate(plan: list[_Step], lots: int) -> list[_Step]:
    kept: list[_Step] = []
    for price, size, maker in plan:
        if lots <= 0:
            break
        kept.append((price, min(size, lots), maker))
        lots -= size
    return kept


class MatchingEngine:
    """Book, resting orders and matching of one symbol on one market (use through ``SimExchange``).

    Update ids: every public change of the book takes one id per level it changes, so a change
    of several levels spans several ids, and the next change starts at the id after its last,
    as Gate.io's ``U..u`` and MEXC spot's ``fromVersion..toVersion`` span the events batched
    into one push. A market of ``ONE_ID_PER_CHANGE`` takes one id per change.
    """

    def __init__(
        self, instrument: Instrument, ledger: Ledger, ids: _IdSource, leverage: int,
        outbox: list[Fill | OrderEvent] | None,
    ) -> None:
        self.instrument = instrument
        self.exchange = instrument.exchange
        self.symbol = instrument.symbol
        self.is_futures = instrument.is_futures
        self._one_id_per_change = self.exchange in ONE_ID_PER_CHANGE
        self._where = f"sim {self.exchange.value} {self.symbol}"
        self.book = OrderBook(self._where)
        snapshot = DeltaBatch(1)
        snapshot.is_snapshot = True
        self.book.apply_snapshot(snapshot, 0)
        self._batch = DeltaBatch(256)
        self._ledger = ledger
        self._ids = ids
        self._outbox = outbox
        self.leverage = leverage
        self.base_atoms_per_lot = to_atoms(instrument.base_lot)
        self.quote_atoms_per_tick_lot = to_atoms(instrument.tick_size * instrument.base_lot)
        self.min_notional_atoms = to_atoms(instrument.min_notional)
        self.min_size_lots = instrument.size_to_lots(instrument.min_size)
        self.taker_fee = instrument.taker_fee.as_integer_ratio()
        self.maker_fee = instrument.maker_fee.as_integer_ratio()
        self.settle_asset = instrument.quote
        self.buy_fee_in_quote = instrument.fee_asset(OrderSide.BUY) == instrument.quote
        if self.is_futures:
            ledger.settle_assets[self.symbol] = self.settle_asset
        # Market-generated size per price, and resting user orders per price (FIFO), per side.
        self.market_levels: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._queues: tuple[dict[int, deque[_Order]], dict[int, deque[_Order]]] = ({}, {})
        self._user_lots: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._orders: dict[int, _Order] = {}  # by id, oldest first
        self._by_client: dict[tuple[str, str], _Order] = {}
        self._forget_at = FINISHED_ORDERS_KEPT  # the number of known orders that starts forgetting
        # Wire values already converted (the grid never changes): orders repeat sizes and prices.
        self._ticks_of: dict[Decimal, int] = {}
        self._lots_of: dict[Decimal, int] = {}

    def set_fees(self, taker: Decimal, maker: Decimal) -> None:
        """Charge ``taker`` and ``maker`` (fractions) from now on, as a new fee tier would; the
        instrument, which the venue's fee and listing answers read, says so too."""
        self.instrument = msgspec.structs.replace(self.instrument, taker_fee=taker, maker_fee=maker)
        self.taker_fee, self.maker_fee = taker.as_integer_ratio(), maker.as_integer_ratio()

    # -- edges: wire strings -> ints ---------------------------------------------------------

    def price_ticks(self, price: Decimal | str) -> int:
        """A wire price in ticks; OrderRejected(PRECISION) if off the tick grid, INVALID_REQUEST if malformed."""
        return self._steps(price, "price", self.instrument.price_to_ticks, self._ticks_of)

    def size_lots(self, size: Decimal | str) -> int:
        """A wire size (base on spot, contracts on futures) in lots; OrderRejected(PRECISION) if off the lot grid."""
        return self._steps(size, "size", self.instrument.size_to_lots, self._lots_of)

    def _steps(
        self, value: Decimal | str, what: str, convert: Callable[[Decimal], int], known: dict[Decimal, int]
    ) -> int:
        """``convert(value)``, remembered in ``known`` by value (equal Decimals convert alike whatever their exponent)."""
        if type(value) is Decimal and value.is_finite():  # (a NaN would not hash)
            steps = known.get(value)
            if steps is not None:
                return steps
        try:
            number = value if type(value) is Decimal else Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            raise OrderRejected(ErrorCategory.INVALID_REQUEST, f"{self._where}: {what} {value!r} is not a number") from None
        if not number.is_finite() or number <= 0:
            raise OrderRejected(ErrorCategory.INVALID_REQUEST, f"{self._where}: {what} {value!r} must be positive")
        try:
            steps = convert(number)
        except InstrumentError as exc:
            raise OrderRejected(ErrorCategory.PRECISION, str(exc)) from None
        if len(known) >= _KNOWN_STEPS:
            known.clear()
        known[number] = steps
        return steps

    def notional_atoms(self, price_ticks: int, size_lots: int) -> int:
        """Quote value of ``size_lots`` at ``price_ticks``, in quote atoms."""
        return price_ticks * size_lots * self.quote_atoms_per_tick_lot

    # -- queries -------------------------------------------------------------------------------

    def snapshot(self, depth: int) -> BookSnapshot:
        """The public book's top ``depth`` levels per side."""
        return BookSnapshot(
            self.exchange, self.symbol, self.book.last_update_id, self.book.top(BID, depth), self.book.top(ASK, depth)
        )

    def order(self, order_id: int) -> OrderEvent | None:
        """The state of an order by id, or None."""
        order = self._orders.get(order_id)
        return None if order is None else self._event(order, order.updated_ns)

    def order_by_client_id(self, user: str, client_id: str) -> OrderEvent | None:
        """The state of a user's order by client id, or None."""
        order = self._by_client.get((user, client_id))
        return None if order is None else self._event(order, order.updated_ns)

    def orders_of(self, user: str) -> list[OrderEvent]:
        """Every order of a user, open and finished, oldest first."""
        return [self._event(order, order.updated_ns) for order in self._orders.values() if order.user == user]

    def open_orders(self, user: str) -> list[OrderEvent]:
        """The user's resting orders, oldest first."""
        # An order is open exactly while it rests in a price queue.
        resting = [order for queues in self._queues for queue in queues.values() for order in queue if order.user == user]
        resting.sort(key=lambda order: order.order_id)
        return [self._event(order, order.updated_ns) for order in resting]

    # -- placing -------------------------------------------------------------------------------

    def place(
        self,
        user: str,
        side: OrderSide,
        order_type: OrderType,
        size_lots: int,
        now_ns: int,
        *,
        price_ticks: int = 0,
        time_in_force: TimeInForce | None = None,
        quote_amount_atoms: int = 0,
        client_id: str | None = None,
        reduce_only: bool = False,
        max_fill_lots: int | None = None,
    ) -> PlaceResult:
        """Validate, match and rest an order; see ``SimExchange.place_order``."""
        tif = self._check_request(user, side, order_type, size_lots, price_ticks, time_in_force, quote_amount_atoms, client_id, reduce_only)
        account = self._ledger.account(user)
        if reduce_only:
            position = account.position(self.symbol).contracts
            reducible = -position if side is OrderSide.BUY else position
            if reducible <= 0:
                raise OrderRejected(
                    ErrorCategory.ORDER_REJECTED, f"{self._where}: reduce-only {side.value} with position {position}"
                )
            size_lots = min(size_lots, reducible)
        limit = price_ticks if order_type is OrderType.LIMIT else 0
        plan, taken = self._plan(side, size_lots, limit, quote_amount_atoms)
        if tif is TimeInForce.POST_ONLY and plan:
            raise OrderRejected(ErrorCategory.ORDER_REJECTED, f"{self._where}: post-only order would take liquidity")
        resting = size_lots - taken if tif in (TimeInForce.GTC, TimeInForce.POST_ONLY) else 0
        if not self.is_futures:
            # Before the FOK and partial-fill cuts: the whole order is checked, whatever part of it fills.
            need = self._spot_need(side, order_type, tif, size_lots, quote_amount_atoms, plan, resting, limit)
            self._check_funds(account, *need)
        if tif is TimeInForce.FOK and taken < size_lots:
            plan, taken = [], 0
        if max_fill_lots is not None:
            plan, taken = _truncate(plan, max(0, max_fill_lots)), min(taken, max(0, max_fill_lots))
            resting = 0
        if self.is_futures:
            self._check_funds(account, self.settle_asset, self._futures_need(account, side, plan, resting, limit))

        order = self._open(user, client_id, side, order_type, tif, limit, size_lots, quote_amount_atoms, reduce_only, now_ns)
        changes: dict[tuple[int, int], int] = {}
        fills = self._execute(order, account, plan, changes, now_ns)
        if resting and order.status in OPEN_STATUSES:
            self._rest(order, account, changes)
        elif order.status in OPEN_STATUSES:
            reason = "partial_fill" if max_fill_lots is not None else tif.value if order_type is OrderType.LIMIT else "market"
            self._finish(order, OrderStatus.EXPIRED, reason, now_ns)
        return PlaceResult(self._event(order, now_ns), tuple(fills), self._publish(changes, now_ns))

    def take(
        self,
        user: str,
        side: OrderSide,
        size_lots: int,
        price_ticks: int,
        levels: Mapping[int, int],
        now_ns: int,
        *,
        time_in_force: TimeInForce = TimeInForce.IOC,
        client_id: str | None = None,
    ) -> PlaceResult:
        """Fill an immediate limit order (IOC or FOK) against ``levels`` rather than the book.

        ``levels`` (``{price_ticks: size_lots}``, best first, each at ``price_ticks`` or better) is
        all the liquidity the order meets: the market's, as another source has it at this instant
        (the backtest's replayed book). None of it is kept: the book and the market's levels stay
        as they were, so ``book_update`` is None. The order, its fills, fees and balances are what
        ``place`` gives on a book whose side holds exactly ``levels``; no user order may rest
        (ValueError), as the order would meet them too.
        """
        if self._user_lots[BID] or self._user_lots[ASK]:
            raise ValueError(f"{self._where}: take with resting user orders")
        tif = self._check_request(user, side, OrderType.LIMIT, size_lots, price_ticks, time_in_force, 0, client_id, False)
        if tif is not TimeInForce.IOC and tif is not TimeInForce.FOK:
            raise ValueError(f"{self._where}: take needs an IOC or FOK order, got {tif.value}")
        account = self._ledger.account(user)
        buy = side is OrderSide.BUY
        plan: list[_Step] = []
        want = size_lots
        last = 0
        for price, lots in levels.items():
            if buy:  # asks, ascending
                misplaced = price > price_ticks or price <= last
            else:  # bids, descending
                misplaced = price < price_ticks or 0 < last <= price
            if misplaced or lots <= 0:
                raise ValueError(
                    f"{self._where}: level {price} x {lots} is not liquidity, best first, up to {price_ticks}"
                )
            last = price
            if want:
                lots = lots if lots < want else want
                plan.append((price, lots, None))
                want -= lots
        if want and tif is TimeInForce.FOK:
            plan = []
        if self.is_futures:
            self._check_funds(account, self.settle_asset, self._futures_need(account, side, plan, 0, 0))
        else:
            self._check_funds(account, *self._spot_need(side, OrderType.LIMIT, tif, size_lots, 0, plan, 0, price_ticks))
        order = self._open(user, client_id, side, OrderType.LIMIT, tif, price_ticks, size_lots, 0, False, now_ns)
        fills = []
        for price, lots, _ in plan:
            fills.append(self._fill(order, account, price, lots, Liquidity.TAKER, now_ns))
        if order.status in OPEN_STATUSES:
            self._finish(order, OrderStatus.EXPIRED, tif.value, now_ns)
        # PlaceResult(...), by tuple.__new__ as in _event.
        return tuple.__new__(PlaceResult, (self._event(order, now_ns), tuple(fills), None))

    def _open(
        self, user: str, client_id: str | None, side: OrderSide, order_type: OrderType, tif: TimeInForce, limit: int,
        size_lots: int, quote_atoms: int, reduce_only: bool, now_ns: int,
    ) -> _Order:
        """A new order with the next id, known by id and client id (checked free by ``_check_request``)."""
        ids = self._ids
        ids.order_id += 1
        order = _Order(ids.order_id, client_id, user, side, order_type, tif, limit, size_lots, quote_atoms, reduce_only, now_ns)
        orders = self._orders
        if len(orders) >= self._forget_at:
            self._forget_finished()
        orders[order.order_id] = order
        if client_id is not None:
            self._by_client[(user, client_id)] = order
        if self._outbox is not None:
            self._outbox.append(self._event(order, now_ns))
        return order

    def _forget_finished(self) -> None:
        """Forget the oldest finished orders, down to three quarters of ``FINISHED_ORDERS_KEPT``."""
        orders, by_client = self._orders, self._by_client
        target = FINISHED_ORDERS_KEPT * 3 // 4
        forgotten = [
            order for order in orders.values() if order.status not in OPEN_STATUSES
        ][: max(0, len(orders) - target)]
        for order in forgotten:
            del orders[order.order_id]
            if order.client_id is not None:
                del by_client[(order.user, order.client_id)]
        # Open orders are kept: when they alone fill the history, forget again only after as many new orders.
        self._forget_at = max(FINISHED_ORDERS_KEPT, len(orders) + FINISHED_ORDERS_KEPT // 4)

    def _check_request(
        self, user: str, side: OrderSide, order_type: OrderType, size_lots: int, price_ticks: int,
        tif: TimeInForce | None, quote_atoms: int, client_id: str | None, reduce_only: bool,
    ) -> TimeInForce:
        where = self._where
        invalid = ErrorCategory.INVALID_REQUEST
        if not isinstance(side, OrderSide) or not isinstance(order_type, OrderType):
            raise OrderRejected(invalid, f"{where}: side {side!r} / type {order_type!r} not recognised")
        if order_type is OrderType.MARKET:
            tif = TimeInForce.IOC if tif is None else tif
            if tif not in (TimeInForce.IOC, TimeInForce.FOK) or price_ticks:
                raise OrderRejected(invalid, f"{where}: market order needs IOC/FOK and no price, got {tif} {price_ticks}")
            if quote_atoms:
                if side is not OrderSide.BUY or self.is_futures or size_lots or tif is not TimeInForce.IOC:
                    raise OrderRejected(invalid, f"{where}: a quote amount is only valid on a spot market IOC buy without size")
                if quote_atoms < 0:
                    raise OrderRejected(invalid, f"{where}: quote amount {quote_atoms} must be positive")
                if quote_atoms < self.min_notional_atoms:
                    raise OrderRejected(ErrorCategory.MIN_NOTIONAL, f"{where}: quote amount below min notional {self.instrument.min_notional}")
        else:
            tif = TimeInForce.GTC if tif is None else tif
            if not isinstance(tif, TimeInForce) or quote_atoms:
                raise OrderRejected(invalid, f"{where}: limit order with time in force {tif!r}, quote amount {quote_atoms}")
            if price_ticks <= 0:
                raise OrderRejected(invalid, f"{where}: limit price {price_ticks} ticks must be positive")
        if not quote_atoms:
            if size_lots <= 0:
                raise OrderRejected(invalid, f"{where}: size {size_lots} lots must be positive")
            if size_lots < self.min_size_lots:
                raise OrderRejected(ErrorCategory.MIN_NOTIONAL, f"{where}: size {size_lots} lots below min size {self.min_size_lots}")
            if order_type is OrderType.LIMIT and self.notional_atoms(price_ticks, size_lots) < self.min_notional_atoms:
                raise OrderRejected(ErrorCategory.MIN_NOTIONAL, f"{where}: notional below min notional {self.instrument.min_notional}")
        if reduce_only and (not self.is_futures or tif not in (TimeInForce.IOC, TimeInForce.FOK)):
            raise OrderRejected(invalid, f"{where}: reduce-only is accepted on futures IOC/FOK/market orders only")
        if client_id is not None and (user, client_id) in self._by_client:
            raise OrderRejected(invalid, f"{where}: duplicate client order id {client_id!r}")
        return tif

    def _plan(self, side: OrderSide, size_lots: int, limit: int, quote_atoms: int) -> tuple[list[_Step], int]:
        """The executions an incoming order would get, best level first, and the lots they take,
        without changing anything."""
        book_side = ASK if side is OrderSide.BUY else BID
        market = self.market_levels[book_side]
        queues = self._queues[book_side]
        per_lot = self.quote_atoms_per_tick_lot
        want = size_lots
        budget = quote_atoms
        taken = 0
        plan: list[_Step] = []
        depth = _PLAN_LEVELS
        while True:
            levels = self.book.top(book_side, depth)
            for price, _ in levels[depth // 2 :] if depth > _PLAN_LEVELS else levels:
                if limit and (price > limit if book_side == ASK else price < limit):
                    return plan, taken
                if quote_atoms:
                    want = budget // (price * per_lot)
                    if want <= 0:
                        return plan, taken
                level_start = want
                take = market.get(price, 0)
                if take:
                    if take > want:
                        take = want
                    plan.append((price, take, None))
                    want -= take
                if queues:
                    for order in queues.get(price, ()):
                        if not want:
                            break
                        take = min(order.remaining, want)
                        plan.append((price, take, order))
                        want -= take
                taken += level_start - want
                if quote_atoms:
                    budget -= (level_start - want) * price * per_lot
                elif not want:
                    return plan, taken
            if len(levels) < depth:
                return plan, taken
            depth *= 2

    def _check_funds(self, account: Account, asset: str, need: int) -> None:
        """OrderRejected(INSUFFICIENT_BALANCE) unless ``account`` holds ``need`` atoms of ``asset`` free."""
        have = account.free.get(asset, 0)
        if need > have:
            raise OrderRejected(
                ErrorCategory.INSUFFICIENT_BALANCE,
                f"{self._where}: {account.user} needs {from_atoms(need):f} {asset}, has {from_atoms(have):f}",
            )

    def _futures_need(self, account: Account, side: OrderSide, plan: list[_Step], resting: int, limit: int) -> int:
        """Settle atoms a futures order needs free: the margin of what its fills open plus their
        positive taker fees, and what ``resting`` lots lock at ``limit``."""
        contracts = account.position(self.symbol).contracts
        direction = 1 if side is OrderSide.BUY else -1
        per_tick_lot, leverage, taker_fee = self.quote_atoms_per_tick_lot, self.leverage, self.taker_fee
        need = 0
        for price, lots, _ in plan:
            # The margin of what opens and the positive taker fee.
            closing = min(lots, abs(contracts)) if contracts * direction < 0 else 0
            fee = _fee(price * lots * per_tick_lot, taker_fee)
            need += _ceil_div(price * (lots - closing) * per_tick_lot, leverage) + (fee if fee > 0 else 0)
            contracts += direction * lots
        if resting:
            need += resting * self._futures_lock_per_lot(limit)
        return need

    def _spot_need(
        self, side: OrderSide, order_type: OrderType, tif: TimeInForce, size_lots: int, quote_atoms: int,
        plan: list[_Step], resting: int, limit: int,
    ) -> tuple[str, int]:
        """The asset and atoms a whole spot order needs free when placed, as a venue checks it
        whatever part of it then fills: a sell, its whole size; an immediate limit buy (IOC, FOK),
        its whole size at its limit, as a resting buy would lock it; a resting limit buy, what
        ``plan`` takes plus what its ``resting`` lots lock; a market buy, what its whole size walks
        to in the book (``plan``, uncut), or its whole quote amount; with the taker fee where a buy
        pays it in quote."""
        if side is OrderSide.SELL:
            return self.instrument.base, size_lots * self.base_atoms_per_lot
        quote = self.instrument.quote
        if order_type is OrderType.LIMIT and tif in (TimeInForce.IOC, TimeInForce.FOK):
            return quote, size_lots * self._spot_buy_lock_per_lot(limit)
        if quote_atoms:
            return quote, quote_atoms + (max(0, _fee(quote_atoms, self.taker_fee)) if self.buy_fee_in_quote else 0)
        per_tick_lot = self.quote_atoms_per_tick_lot
        need = resting * self._spot_buy_lock_per_lot(limit) if resting else 0
        for price, lots, _ in plan:
            notional = price * lots * per_tick_lot
            need += notional
            if self.buy_fee_in_quote:
                need += max(0, _fee(notional, self.taker_fee))
        return quote, need

    def _futures_lock_per_lot(self, price_ticks: int) -> int:
        notional = self.notional_atoms(price_ticks, 1)
        return _ceil_div(notional, self.leverage) + max(0, _fee(notional, self.maker_fee))

    def _spot_buy_lock_per_lot(self, price_ticks: int) -> int:
        """Quote a resting spot buy holds per lot: its notional, plus, where it pays its fee in quote,
        that fee at the larger of the taker and maker rates, rounded up."""
        notional = self.notional_atoms(price_ticks, 1)
        if not self.buy_fee_in_quote:
            return notional
        return notional + max(0, _fee(notional, self.taker_fee), _fee(notional, self.maker_fee))

    # -- execution -----------------------------------------------------------------------------

    def _execute(
        self, taker: _Order, account: Account, plan: list[_Step], changes: dict[tuple[int, int], int], now_ns: int
    ) -> list[Fill]:
        book_side = ASK if taker.side is OrderSide.BUY else BID
        market = self.market_levels[book_side]
        user_lots = self._user_lots[book_side]
        fills: list[Fill] = []
        for price, lots, maker in plan:
            if maker is None:
                left = market[price] - lots
                if left:
                    market[price] = left
                else:
                    del market[price]
            else:
                self._fill_maker(maker, price, lots, changes, now_ns)
            fills.append(self._fill(taker, account, price, lots, Liquidity.TAKER, now_ns))
            changes[(book_side, price)] = market.get(price, 0) + user_lots.get(price, 0)
        return fills

    def _fill_maker(
        self, maker: _Order, price: int, lots: int, changes: dict[tuple[int, int], int], now_ns: int
    ) -> None:
        account = self._ledger.account(maker.user)
        book_side = BID if maker.side is OrderSide.BUY else ASK
        release = lots * maker.lock_per_lot
        maker.locked_atoms -= release
        account.unlock(maker.lock_asset, release)
        self._user_lots[book_side][price] -= lots
        self._fill(maker, account, price, lots, Liquidity.MAKER, now_ns)
        if maker.status is OrderStatus.FILLED:
            self._unqueue(maker)
        changes[(book_side, price)] = self.market_levels[book_side].get(price, 0) + self._user_lots[book_side].get(price, 0)

    def _fill(self, order: _Order, account: Account, price: int, lots: int, liquidity: Liquidity, now_ns: int) -> Fill:
        rate = self.taker_fee if liquidity is Liquidity.TAKER else self.maker_fee
        notional = price * lots * self.quote_atoms_per_tick_lot
        if self.is_futures:
            fee, fee_asset = self._settle_futures(account, order.side, price, lots, notional, rate), self.settle_asset
        else:
            # Spot: the user pays the market quote (buy) or base (sell) and gets the other; the fee,
            # rounded up, goes to the fee account, charged in what the user gets or, where the
            # instrument says so, in quote on both sides (a buy then pays notional + fee).
            qty = lots * self.base_atoms_per_lot
            quote = self.instrument.quote
            if order.side is OrderSide.BUY:
                paid, got, paid_asset, got_asset = notional, qty, quote, self.instrument.base
            else:
                paid, got, paid_asset, got_asset = qty, notional, self.instrument.base, quote
            fee_asset = self.instrument.fee_asset(order.side)
            fee = _fee(notional if fee_asset == quote else got, rate)
            market = self._ledger.market
            account.add(paid_asset, -paid)
            if fee > 0 and fee_asset == paid_asset:
                # A resting buy locked its fee at the rates when it rested: raised since (``set_fees``),
                # the fee is capped at what the account holds, as futures fees are.
                fee = min(fee, max(0, account.free.get(fee_asset, 0)))
            market.add(paid_asset, paid)
            market.add(got_asset, -got)
            account.add(got_asset, got)
            account.add(fee_asset, -fee)
            self._ledger.fees.add(fee_asset, fee)
        filled = order.filled_lots = order.filled_lots + lots
        order.filled_quote_atoms += notional
        order.fee_atoms += fee
        order.fee_asset = fee_asset
        if order.quote_atoms and order.order_type is OrderType.MARKET:
            order.size_lots = filled
        order.status = OrderStatus.FILLED if order.size_lots <= filled else OrderStatus.PARTIALLY_FILLED
        order.updated_ns = now_ns
        ids = self._ids
        ids.trade_id += 1
        fill = tuple.__new__(Fill, (  # Fill(...), by tuple.__new__ as in _event
            ids.trade_id, order.order_id, order.client_id, order.user, self.exchange, self.symbol, order.side,
            price, lots, fee, fee_asset, liquidity, now_ns,
        ))
        if self._outbox is not None:
            self._outbox.append(fill)
            self._outbox.append(self._event(order, now_ns))
        return fill

    def _settle_futures(self, account: Account, side: OrderSide, price: int, lots: int, notional: int, rate: tuple[int, int]) -> int:
        asset = self.settle_asset
        position = account.position(self.symbol)
        free = account.free  # read by the caps: each reads what the step before left
        direction = 1 if side is OrderSide.BUY else -1
        held = position.contracts
        closing = min(lots, abs(held)) if held * direction < 0 else 0
        if closing:
            cost = position.cost_atoms * closing // abs(held)
            margin = position.margin_atoms * closing // abs(held)
            exit_notional = price * closing * self.quote_atoms_per_tick_lot
            pnl = exit_notional - cost if held > 0 else cost - exit_notional
            position.cost_atoms -= cost
            position.margin_atoms -= margin
            position.contracts += direction * closing
            account.add(asset, margin)
            if pnl < 0:
                pnl = -min(-pnl, free.get(asset, 0))
            account.add(asset, pnl)
            self._ledger.market.add(asset, -pnl)
            position.realized_pnl_atoms += pnl
        opening = lots - closing
        if opening:
            opened = price * opening * self.quote_atoms_per_tick_lot
            margin = min(_ceil_div(opened, self.leverage), free.get(asset, 0))
            account.add(asset, -margin)
            position.margin_atoms += margin
            position.cost_atoms += opened
            position.contracts += direction * opening
        fee = _fee(notional, rate)
        if fee > 0:
            fee = min(fee, free.get(asset, 0))
        account.add(asset, -fee)
        self._ledger.fees.add(asset, fee)
        return fee

    def _rest(self, order: _Order, account: Account, changes: dict[tuple[int, int], int]) -> None:
        if self.is_futures:
            order.lock_asset, order.lock_per_lot = self.settle_asset, self._futures_lock_per_lot(order.price_ticks)
        elif order.side is OrderSide.BUY:
            order.lock_asset, order.lock_per_lot = self.instrument.quote, self._spot_buy_lock_per_lot(order.price_ticks)
        else:
            order.lock_asset, order.lock_per_lot = self.instrument.base, self.base_atoms_per_lot
        order.locked_atoms = order.remaining * order.lock_per_lot
        account.lock(order.lock_asset, order.locked_atoms)
        book_side = BID if order.side is OrderSide.BUY else ASK
        price = order.price_ticks
        queue = self._queues[book_side].get(price)
        if queue is None:
            queue = self._queues[book_side][price] = deque()
        queue.append(order)
        user_lots = self._user_lots[book_side]
        user_lots[price] = user_lots.get(price, 0) + order.remaining
        changes[(book_side, price)] = self.market_levels[book_side].get(price, 0) + user_lots[price]

    def _unqueue(self, order: _Order) -> None:
        book_side = BID if order.side is OrderSide.BUY else ASK
        queue = self._queues[book_side][order.price_ticks]
        queue.remove(order)
        if not queue:
            del self._queues[book_side][order.price_ticks]
            del self._user_lots[book_side][order.price_ticks]

    def _cancel(self, order: _Order, reason: str, now_ns: int) -> None:
        book_side = BID if order.side is OrderSide.BUY else ASK
        self._user_lots[book_side][order.price_ticks] -= order.remaining
        account = self._ledger.account(order.user)
        account.unlock(order.lock_asset, order.locked_atoms)
        order.locked_atoms = 0
        self._unqueue(order)
        self._finish(order, OrderStatus.CANCELED, reason, now_ns)

    def _finish(self, order: _Order, status: OrderStatus, reason: str, now_ns: int) -> None:
        order.status = status
        order.reason = reason
        order.updated_ns = now_ns
        if self._outbox is not None:
            self._outbox.append(self._event(order, now_ns))

    def cancel(self, user: str, now_ns: int, *, order_id: int | None = None, client_id: str | None = None) -> tuple[OrderEvent, BookUpdate | None]:
        """Cancel a user's open order by id or client id; OrderRejected(UNKNOWN_ORDER) if none is open."""
        order = self._orders.get(order_id) if order_id is not None else None
        if order is None and client_id is not None:
            order = self._by_client.get((user, client_id))
        if order is None or order.user != user or order.status not in OPEN_STATUSES:
            raise OrderRejected(
                ErrorCategory.UNKNOWN_ORDER, f"{self._where}: no open order id={order_id} client_id={client_id!r} of {user}"
            )
        book_side = BID if order.side is OrderSide.BUY else ASK
        price = order.price_ticks
        self._cancel(order, "canceled", now_ns)
        changes = {(book_side, price): self.market_levels[book_side].get(price, 0) + self._user_lots[book_side].get(price, 0)}
        return self._event(order, now_ns), self._publish(changes, now_ns)

    # -- market liquidity ----------------------------------------------------------------------

    def apply_market_levels(self, levels: Iterable[tuple[int, int, int]], now_ns: int) -> BookUpdate:
        """Set the market's own size at each (side, price_ticks, size_lots); crosses resting user orders.

        A market level that reaches a resting user order of the other side fills it as maker
        at the user's price, consuming the market's size there. Returns the sequenced public
        change (also applied to ``book``).
        """
        user_bids, user_asks = self._user_lots
        if user_bids or user_asks:
            changes: dict[tuple[int, int], int] = {}
            for side, price, size in levels:
                market = self.market_levels[side]
                if size:
                    market[price] = size
                else:
                    market.pop(price, None)
                changes[(side, price)] = size + self._user_lots[side].get(price, 0)
                if size and self._user_lots[side ^ 1]:
                    self._cross(side, price, now_ns, changes)
            update = self._publish(changes, now_ns)
            if update is None:
                raise ValueError(f"{self._where}: apply_market_levels needs at least one level")
            return update
        # No resting user order: the public change is the market's levels, a repeated
        # (side, price) merged at its first position with its last size.
        given = tuple(levels)
        if not given:
            raise ValueError(f"{self._where}: apply_market_levels needs at least one level")
        batch = self._batch
        batch.clear()
        merged = batch.extend(given)  # validates every level before anything changes
        bids, asks = self.market_levels
        for side, price, size in given:
            market = asks if side else bids
            if size:
                market[price] = size
            else:
                market.pop(price, None)
        return self._commit(tuple(batch.levels()) if merged else given, now_ns)

    def set_market_levels(self, bids: Mapping[int, int], asks: Mapping[int, int], now_ns: int) -> None:
        """Make the market's own size exactly ``bids`` and ``asks`` (``{price_ticks: size_lots}``),
        applying only the levels that differ, as ``apply_market_levels`` would.

        Removals go first, so kept and added levels never cross each other; additions go in
        the order given (one reaching resting user orders fills them, as there).
        """
        removals: list[tuple[int, int, int]] = []
        additions: list[tuple[int, int, int]] = []
        for side, want in ((BID, bids), (ASK, asks)):
            have = self.market_levels[side]
            if have == want:
                continue
            if have.keys() != want.keys():
                removals += [(side, price, 0) for price in have if price not in want]
            additions += [(side, price, lots) for price, lots in want.items() if have.get(price) != lots]
        self._replace_market_levels(removals, additions, now_ns)

    @property
    def has_resting_orders(self) -> bool:
        """Whether any user order rests in the book."""
        return bool(self._user_lots[BID] or self._user_lots[ASK])

    def _replace_market_levels(
        self, removals: list[tuple[int, int, int]], additions: list[tuple[int, int, int]], now_ns: int
    ) -> None:
        if len(removals) + len(additions) <= _MARKET_CHUNK:
            if removals or additions:
                self.apply_market_levels(removals + additions, now_ns)
            return
        for changes in (removals, additions):
            for start in range(0, len(changes), _MARKET_CHUNK):
                self.apply_market_levels(changes[start : start + _MARKET_CHUNK], now_ns)

    def _cross(self, side: int, price: int, now_ns: int, changes: dict[tuple[int, int], int]) -> None:
        user_side = side ^ 1
        queues = self._queues[user_side]
        market = self.market_levels[side]
        crossing = sorted(
            (p for p in queues if (p >= price if user_side == BID else p <= price)), reverse=user_side == BID
        )
        for user_price in crossing:
            for maker in list(queues.get(user_price, ())):
                available = market.get(price, 0)
                if not available:
                    break
                lots = min(available, maker.remaining)
                if available > lots:
                    market[price] = available - lots
                else:
                    del market[price]
                self._fill_maker(maker, user_price, lots, changes, now_ns)
        changes[(side, price)] = market.get(price, 0) + self._user_lots[side].get(price, 0)

    def _publish(self, changes: Mapping[tuple[int, int], int], now_ns: int) -> BookUpdate | None:
        if not changes:
            return None
        public: list[tuple[int, int, int]] = []
        for (side, price), size in changes.items():
            public.append((side, price, size))
        levels = tuple(public)
        batch = self._batch
        batch.clear()
        batch.extend(levels)
        return self._commit(levels, now_ns)

    def _commit(self, levels: tuple[tuple[int, int, int], ...], now_ns: int) -> BookUpdate:
        """Sequence the levels already in ``_batch`` (which are ``levels``), apply them to ``book``, describe them."""
        batch = self._batch
        first_id = self.book.last_update_id + 1
        last_id = first_id if self._one_id_per_change else first_id + len(levels) - 1
        batch.first_update_id = first_id
        batch.last_update_id = last_id
        batch.event_time_ms = now_ns // 1_000_000
        self.book.apply_batch(batch, now_ns)
        return BookUpdate._make((self.exchange, self.symbol, first_id, last_id, now_ns, levels))

    def _event(self, order: _Order, now_ns: int) -> OrderEvent:
        """The order as of ``now_ns``: a change made then, or (a query) its last change."""
        # tuple.__new__ is what OrderEvent(...) runs, minus the Python-level __new__ around it.
        return tuple.__new__(OrderEvent, (
            order.order_id, order.client_id, order.user, self.exchange, self.symbol, order.side, order.order_type,
            order.tif, order.price_ticks, order.size_lots, order.quote_atoms, order.filled_lots,
            order.filled_quote_atoms, order.status, order.reason, order.reduce_only, order.created_ns, now_ns,
            order.fee_atoms, order.fee_asset,
        ))


class SimExchange:
    """One simulated market (e.g. Gate.io spot): its books, accounts and order API.

    Every private event (``Fill`` and ``OrderEvent``, from orders, cancels and the market
    crossing resting orders) is appended to one outbox; the serving layer takes them with
    ``drain_events`` and pushes them on the users' private streams. Public book changes are
    returned by the call that caused them (``PlaceResult.book_update``, ``cancel_order``,
    ``MatchingEngine.apply_market_levels``). With ``events=False`` none is kept (for a caller
    that never drains them, such as the backtest, which reads the calls' results).
    """

    def __init__(
        self, exchange: ExchangeName, instruments: Iterable[Instrument], *, leverage: int = 10, events: bool = True
    ) -> None:
        if not isinstance(leverage, int) or leverage < 1:
            raise ValueError(f"sim {exchange.value}: leverage {leverage!r} must be an int >= 1")
        self.exchange = exchange
        self.ledger = Ledger(exchange)
        self._ids = _IdSource()
        self._outbox: list[Fill | OrderEvent] | None = [] if events else None
        self.engines: dict[str, MatchingEngine] = {}
        for instrument in instruments:
            if instrument.exchange is not exchange:
                raise ValueError(f"sim {exchange.value}: instrument {instrument.symbol} is of {instrument.exchange.value}")
            self.engines[instrument.symbol] = MatchingEngine(instrument, self.ledger, self._ids, leverage, self._outbox)

    def engine(self, symbol: str) -> MatchingEngine:
        """The engine of a unified symbol; OrderRejected(INVALID_REQUEST) if the market has no such symbol."""
        engine = self.engines.get(symbol)
        if engine is None:
            raise OrderRejected(ErrorCategory.INVALID_REQUEST, f"sim {self.exchange.value}: unknown symbol {symbol!r}")
        return engine

    def deposit(self, user: str, asset: str, amount: Decimal | int | str) -> None:
        """Credit a user (taken from the market account, so every asset's total stays constant)."""
        self.ledger.deposit(user, asset, amount)

    def balances(self, user: str) -> dict[str, tuple[Decimal, Decimal]]:
        """``{asset: (free, locked)}`` of a user; locked includes futures position margin."""
        return {
            asset: (from_atoms(free), from_atoms(locked)) for asset, (free, locked) in self.balance_atoms(user).items()
        }

    def balance_atoms(self, user: str) -> dict[str, tuple[int, int]]:
        """``balances`` in atoms: ``{asset: (free, locked)}``, assets sorted."""
        account = self.ledger.account(user)
        free, locked = account.free, account.locked
        if not account.positions:
            return {asset: (free.get(asset, 0), locked.get(asset, 0)) for asset in sorted({*free, *locked})}
        margin: dict[str, int] = {}
        for symbol, position in account.positions.items():
            asset = self.engines[symbol].settle_asset
            margin[asset] = margin.get(asset, 0) + position.margin_atoms
        return {
            asset: (free.get(asset, 0), locked.get(asset, 0) + margin.get(asset, 0))
            for asset in sorted({*free, *locked, *margin})
        }

    def position(self, user: str, symbol: str) -> tuple[int, Decimal | None, Decimal, Decimal]:
        """``(contracts signed, entry price or None, margin, realized PnL)`` of a futures position."""
        engine = self.engine(symbol)
        position = self.ledger.account(user).position(symbol)
        entry = None
        if position.contracts:
            base = abs(position.contracts) * engine.base_atoms_per_lot
            entry = Decimal(position.cost_atoms) / Decimal(base)
        return (
            position.contracts,
            entry,
            from_atoms(position.margin_atoms),
            from_atoms(position.realized_pnl_atoms),
        )

    def place_order(
        self,
        user: str,
        symbol: str,
        side: OrderSide,
        order_type: OrderType,
        size_lots: int,
        now_ns: int,
        *,
        price_ticks: int = 0,
        time_in_force: TimeInForce | None = None,
        quote_amount: Decimal | None = None,
        client_id: str | None = None,
        reduce_only: bool = False,
        max_fill_lots: int | None = None,
    ) -> PlaceResult:
        """Place an order; raises OrderRejected (with its ErrorCategory) when the venue would refuse it.

        Limit orders default to GTC; market orders to IOC and take no price. A spot market
        buy may give ``quote_amount`` (quote to spend, MEXC ``quoteOrderQty``, Gate market
        buy ``amount``) instead of ``size_lots`` (pass 0); the venue layer decides which form
        its wire allows. Futures sizes are contracts. ``max_fill_lots`` caps what fills at
        once (the PARTIAL_FILL fault): the rest expires with reason ``partial_fill``.
        """
        engine = self.engine(symbol)
        quote_atoms = 0
        if quote_amount is not None:
            try:
                quote_atoms = to_atoms(quote_amount)
            except ValueError as exc:
                raise OrderRejected(ErrorCategory.PRECISION, f"sim {self.exchange.value} {symbol}: {exc}") from None
            if quote_atoms <= 0:
                raise OrderRejected(ErrorCategory.INVALID_REQUEST, f"sim {self.exchange.value} {symbol}: quote amount {quote_amount} must be positive")
        return engine.place(
            user, side, order_type, size_lots, now_ns, price_ticks=price_ticks, time_in_force=time_in_force,
            quote_amount_atoms=quote_atoms, client_id=client_id, reduce_only=reduce_only, max_fill_lots=max_fill_lots,
        )

    def cancel_order(
        self, user: str, symbol: str, now_ns: int, *, order_id: int | None = None, client_id: str | None = None
    ) -> tuple[OrderEvent, BookUpdate | None]:
        """Cancel an open order by id or client id; OrderRejected(UNKNOWN_ORDER) if it is not open."""
        return self.engine(symbol).cancel(user, now_ns, order_id=order_id, client_id=client_id)

    def get_order(self, user: str, order_id: int) -> OrderEvent:
        """A user's order by id (any state); OrderRejected(UNKNOWN_ORDER) if unknown."""
        # Order ids are unique across the market's engines.
        event = next((e for e in (engine.order(order_id) for engine in self.engines.values()) if e is not None), None)
        if event is None or event.user != user:
            raise OrderRejected(ErrorCategory.UNKNOWN_ORDER, f"sim {self.exchange.value}: unknown order {order_id} of {user}")
        return event

    def get_order_by_client_id(self, user: str, symbol: str, client_id: str) -> OrderEvent:
        """A user's order by client id (any state); OrderRejected(UNKNOWN_ORDER) if unknown."""
        event = self.engine(symbol).order_by_client_id(user, client_id)
        if event is None:
            raise OrderRejected(ErrorCategory.UNKNOWN_ORDER, f"sim {self.exchange.value} {symbol}: unknown client order id {client_id!r}")
        return event

    def settle_funding(self, symbol: str, rate: Decimal, wall_ms: int) -> list[FundingEntry]:
        """Settle one funding interval of ``symbol`` at ``rate`` (> 0: longs pay shorts) on every open
        position, valued at the book's mid (the best price when one side is empty; nothing is
        settled on an empty book). The entries made, one per position."""
        engine = self.engine(symbol)
        if not engine.is_futures:
            raise ValueError(f"sim {self.exchange.value}: {symbol} is not a futures market")
        best = [level[0] for level in (engine.book.best_bid(), engine.book.best_ask()) if level is not None]
        if not best:
            return []
        twice_mid = 2 * best[0] if len(best) == 1 else best[0] + best[1]  # in ticks: the value stays exact
        numerator, denominator = rate.as_integer_ratio()
        asset, market = engine.settle_asset, self.ledger.market
        entries = []
        for account in self.ledger.accounts.values():
            position = account.positions.get(symbol)
            if position is None or not position.contracts:
                continue
            # -contracts: a long pays a positive rate. Floored: a payment rounds up, a receipt down.
            value = -position.contracts * twice_mid * engine.quote_atoms_per_tick_lot * numerator
            change = value // (2 * denominator)
            if change < 0:
                change = -min(-change, account.free.get(asset, 0))
            account.add(asset, change)
            market.add(asset, -change)
            self._ids.funding_id += 1
            entry = FundingEntry(self._ids.funding_id, wall_ms, symbol, asset, change, account.free[asset])
            account.funding.append(entry)
            entries.append(entry)
        return entries

    def open_orders(self, user: str, symbol: str | None = None) -> list[OrderEvent]:
        """A user's open orders, of one symbol or all, oldest first per symbol."""
        engines = self.engines.values() if symbol is None else (self.engine(symbol),)
        return [event for engine in engines for event in engine.open_orders(user)]

    def drain_events(self) -> list[Fill | OrderEvent]:
        """Every private event since the last drain, in the order they happened (none with ``events=False``)."""
        if self._outbox is None:
            return []
        events = self._outbox[:]
        self._outbox.clear()
        return events
