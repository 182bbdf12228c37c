"""The server side of Gate.io's private channels, spot and futures, for the simulated venue (no I/O here).

``GateioPrivateSimSession`` wraps one connection's market-data session: requests of the
market's order, fill and balance channels are checked as Gate checks them (``auth`` with
method ``api_key``, a known ``KEY``, ``SIGN`` = HMAC-SHA512 over
``channel=<ch>&event=<ev>&time=<t>``, ``time`` within 60 s of the server clock), refused with
error code 4 otherwise, and every other frame goes to the wrapped session. Futures requests
name the key's user id first (``[user_id, contract | "!all"]``, balances ``[user_id]``; the id
is the ``user`` of ``GET /futures/usdt/accounts``); another id is refused with code 2.
``private_frames`` encodes the owning user's order events and fills as Gate pushes them, one
push per event, in the order they happened, then one balance push per asset they changed
(spot: both assets of every order event; futures: the settle asset after fills, the only
events that move the wallet balance) with the values after the batch.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from typing import Final, NamedTuple

import msgspec

from ...sim.http import SimContext
from ...sim.matching import Fill, Liquidity, OrderEvent, from_atoms
from ...sim.matching import OrderStatus as SimOrderStatus
from ...types import ExchangeName, OrderSide
from . import constants
from .auth import GateioSigner
from .schemas import WsRequest
from .sim import (
    _TIF,
    GateioSimSession,
    SessionReply,
    _decimal_text,
    _gate_status,
    _spot_order_doc,
    _user_number,
    _wall_ms,
    encode_error,
)

PRIVATE_CHANNELS: Final = (constants.SPOT_ORDERS_CHANNEL, constants.SPOT_USERTRADES_CHANNEL)
ALL_PAIRS: Final = "!all"


class PrivateChannels(NamedTuple):
    """One market's private channel names and payload rule: data only."""

    exchange: ExchangeName
    orders: str
    usertrades: str
    balances: str
    user_in_payload: bool  # futures: the user id comes first in every payload


SPOT_PRIVATE: Final = PrivateChannels(
    ExchangeName.GATEIO,
    constants.SPOT_ORDERS_CHANNEL,
    constants.SPOT_USERTRADES_CHANNEL,
    constants.SPOT_BALANCES_CHANNEL,
    user_in_payload=False,
)
FUTURES_PRIVATE: Final = PrivateChannels(
    ExchangeName.GATEIO_FUTURES,
    constants.FUTURES_ORDERS_CHANNEL,
    constants.FUTURES_USERTRADES_CHANNEL,
    constants.FUTURES_BALANCES_CHANNEL,
    user_in_payload=True,
)
PrivateItem = tuple[Fill | OrderEvent, int]  # an event and its order's cumulative fee in atoms

_request = msgspec.json.Decoder(WsRequest)
_pairs = msgspec.json.Decoder(list[str])
_encode = msgspec.json.Encoder().encode


class _AuthRefusal(Exception):
    pass


class GateioPrivateSimSession:
    """A Gate connection's market-data session plus its authenticated private channels."""

    def __init__(
        self,
        public: GateioSimSession,
        context: SimContext,
        symbols: Collection[str],
        channels: PrivateChannels = SPOT_PRIVATE,
    ) -> None:
        self.public = public
        self.context = context
        self.symbols = frozenset(symbols)
        self.channels = channels
        self.user: str | None = None
        self.private: dict[str, set[str]] = {}  # channel -> pairs ("!all" for every pair)
        self._reported: dict[str, tuple[Decimal, Decimal]] = {}  # asset -> (total, locked) last pushed

    @property
    def subscriptions(self) -> Mapping[tuple[str, str], object]:
        """The market-data subscriptions (what the book fan-out serves)."""
        return self.public.subscriptions

    def handle(self, raw: bytes | str, now_ms: int) -> SessionReply:
        """Answer one client frame: private channel requests here, the rest by the market-data session."""
        try:
            request = _request.decode(raw)
        except msgspec.DecodeError:
            return self.public.handle(raw, now_ms)
        channels = self.channels
        if request.channel not in (channels.orders, channels.usertrades, channels.balances):
            return self.public.handle(raw, now_ms)
        try:
            payload = [] if bytes(request.payload) == b"null" else _pairs.decode(request.payload)
        except msgspec.DecodeError as exc:
            return self._error(request, None, constants.WS_ERROR_BAD_REQUEST, f"payload: {exc}", now_ms)
        try:
            user = self._authenticate(request, now_ms)
        except _AuthRefusal as refusal:
            return self._error(request, payload, constants.WS_ERROR_AUTH, str(refusal), now_ms)
        pairs = payload
        if channels.user_in_payload:
            if not payload or payload[0] != _user_number(user):
                detail = f"payload {payload} must start with the key's user id"
                return self._error(request, payload, constants.WS_ERROR_BAD_ARGUMENT, detail, now_ms)
            pairs = payload[1:]
        if request.channel == channels.balances:
            if pairs:
                return self._error(request, payload, constants.WS_ERROR_BAD_ARGUMENT, "balances take no symbol", now_ms)
            pairs = [ALL_PAIRS]
        unknown = [p for p in pairs if p != ALL_PAIRS and p not in self.symbols]
        if not pairs or unknown:
            detail = f"unknown symbol {unknown[0]!r}" if unknown else "payload names no symbol"
            return self._error(request, payload, constants.WS_ERROR_BAD_ARGUMENT, detail, now_ms)
        if request.event == constants.EVENT_SUBSCRIBE:
            self.user = user
            if request.channel == channels.balances and channels.balances not in self.private:
                self._reported = self._balances(user)  # pushes report changes from here on
            self.private.setdefault(request.channel, set()).update(pairs)
        elif request.event == constants.EVENT_UNSUBSCRIBE:
            self.private.get(request.channel, set()).difference_update(pairs)
        else:
            return self._error(request, payload, constants.WS_ERROR_BAD_REQUEST, f"unknown event {request.event!r}", now_ms)
        return SessionReply((GateioSimSession._ack(request, payload, now_ms),))

    def _authenticate(self, request: WsRequest, now_ms: int) -> str:
        auth = request.auth or {}
        key, sign = auth.get("KEY"), auth.get("SIGN")
        if auth.get("method") != constants.WS_AUTH_METHOD or not key or not sign:
            raise _AuthRefusal("missing auth: method api_key, KEY and SIGN are required")
        credentials = self.context.credentials.get(key)
        if credentials is None:
            raise _AuthRefusal("invalid key")
        if abs(request.time * 1000 - now_ms) > constants.REQUEST_WINDOW_S * 1000:
            raise _AuthRefusal(f"request time {request.time} far from server time")
        expected = GateioSigner(credentials).channel_auth(request.channel, request.event, request.time)["SIGN"]
        if not hmac.compare_digest(expected, sign):
            raise _AuthRefusal("signature mismatch")
        return key

    @staticmethod
    def _error(request: WsRequest, pairs: list[str] | None, code: int, detail: str, now_ms: int) -> SessionReply:
        message = f"{constants.WS_ERROR_MESSAGES[code]}: {detail}"
        return SessionReply((encode_error(request.channel, request.event, request.id, pairs, code, message, now_ms),))

    def _wants(self, channel: str, pair: str) -> bool:
        pairs = self.private.get(channel, set())
        return ALL_PAIRS in pairs or pair in pairs

    def private_frames(self, items: Iterable[PrivateItem], send_ms: int) -> tuple[bytes, ...]:
        """Pushes of this connection's user's events (nothing before a private subscription)."""
        user = self.user
        if user is None:
            return ()
        channels = self.channels
        futures = channels.user_in_payload
        frames = []
        changed: dict[str, Fill | OrderEvent] = {}  # asset -> the last event that moved it
        for event, fee_atoms in items:
            if event.user != user:
                continue
            engine = self.context.exchanges[event.exchange].engines[event.symbol]
            pair = engine.instrument.venue_symbol
            if isinstance(event, Fill):
                if self._wants(channels.usertrades, pair):
                    doc = futures_trade_doc(self.context, event) if futures else trade_doc(self.context, event)
                    frames.append(push(channels.usertrades, doc, send_ms))
            elif self._wants(channels.orders, pair):
                doc = futures_order_doc(self.context, event) if futures else order_doc(self.context, event, fee_atoms)
                frames.append(push(channels.orders, doc, send_ms))
            if futures:
                if isinstance(event, Fill):
                    changed[engine.settle_asset] = event
            else:
                changed[engine.instrument.base] = changed[engine.instrument.quote] = event
        if changed and channels.balances in self.private:
            frames.extend(self._balance_pushes(user, changed, send_ms))
        return tuple(frames)

    def _balances(self, user: str) -> dict[str, tuple[Decimal, Decimal]]:
        balances = self.context.exchanges[self.channels.exchange].balances(user)
        return {asset: (free + locked, locked) for asset, (free, locked) in balances.items()}

    def _balance_pushes(self, user: str, changed: Mapping[str, Fill | OrderEvent], send_ms: int) -> list[bytes]:
        now = self._balances(user)
        frames = []
        for asset, event in changed.items():
            total, locked = now.get(asset, (Decimal(0), Decimal(0)))
            before_total, before_locked = self._reported.get(asset, (Decimal(0), Decimal(0)))
            if (total, locked) == (before_total, before_locked):
                continue
            self._reported[asset] = (total, locked)
            if self.channels.user_in_payload:
                contract = self.context.exchanges[event.exchange].engines[event.symbol].instrument.venue_symbol
                doc = futures_balance_doc(user, asset, total, total - before_total, f"{contract}:{event.order_id}", send_ms)
            else:
                doc = spot_balance_doc(user, asset, total, locked, total - before_total, locked - before_locked, event, send_ms)
            frames.append(push(self.channels.balances, doc, send_ms))
        return frames


def push(channel: str, item: dict[str, object], send_ms: int) -> bytes:
    """``{"time":s,"time_ms":ms,"channel":..,"event":"update","result":[item]}``."""
    return _encode(
        {"time": send_ms // 1000, "time_ms": send_ms, "channel": channel, "event": constants.EVENT_UPDATE, "result": [item]}
    )


def order_doc(context: SimContext, event: OrderEvent, fee_atoms: int) -> dict[str, object]:
    """A ``spot.orders`` item, keys in the order of Gate's documented push; ``fee`` is the order's fee so far."""
    engine = context.exchanges[event.exchange].engines[event.symbol]
    doc = _spot_order_doc(context, engine, event)
    if event.status not in (SimOrderStatus.NEW, SimOrderStatus.PARTIALLY_FILLED):
        kind = "finish"
    elif event.filled_lots:
        kind = "update"
    else:
        kind = "put"
    return {
        "id": doc["id"],
        "user": int(_user_number(event.user)),
        "text": doc["text"],
        "create_time": doc["create_time"],
        "create_time_ms": str(doc["create_time_ms"]),
        "update_time": doc["update_time"],
        "update_time_ms": str(doc["update_time_ms"]),
        "event": kind,
        "currency_pair": doc["currency_pair"],
        "type": doc["type"],
        "account": doc["account"],
        "side": doc["side"],
        "amount": doc["amount"],
        "price": doc["price"],
        "time_in_force": doc["time_in_force"],
        "left": doc["left"],
        "filled_total": doc["filled_total"],
        "filled_amount": doc["filled_amount"],
        "avg_deal_price": doc["avg_deal_price"],
        "fee": _decimal_text(from_atoms(fee_atoms)),
        "fee_currency": doc["fee_currency"],
        "point_fee": "0",
        "gt_fee": "0",
        "gt_discount": False,
        "rebated_fee": "0",
        "rebated_fee_currency": doc["rebated_fee_currency"],
        "stp_id": 0,
        "stp_act": "-",
        "finish_as": doc["finish_as"],
        "amend_text": "-",
    }


def trade_doc(context: SimContext, fill: Fill) -> dict[str, object]:
    """A ``spot.usertrades`` item, keys in the order of Gate's documented push."""
    instrument = context.exchanges[fill.exchange].engines[fill.symbol].instrument
    wall_ms = _wall_ms(context, fill.time_ns)
    return {
        "id": fill.trade_id,
        "user_id": int(_user_number(fill.user)),
        "order_id": str(fill.order_id),
        "currency_pair": instrument.venue_symbol,
        "create_time": wall_ms // 1000,
        "create_time_ms": f"{wall_ms}.000",
        "side": fill.side.value,
        "amount": instrument.format_size(fill.size_lots),
        "role": "maker" if fill.liquidity is Liquidity.MAKER else "taker",
        "price": instrument.format_price(fill.price_ticks),
        "fee": _decimal_text(from_atoms(fill.fee_atoms)),
        "fee_currency": fill.fee_asset,
        "point_fee": "0",
        "gt_fee": "0",
        "text": fill.client_id or "apiv4",
        "id_market": fill.trade_id,
    }


def _number(value: Decimal) -> msgspec.Raw:
    """A Decimal as a plain JSON number (futures pushes write numbers, not strings)."""
    return msgspec.Raw(_decimal_text(value).encode())


def futures_order_doc(context: SimContext, event: OrderEvent) -> dict[str, object]:
    """A ``futures.orders`` item, keys in the order of Gate's documented push; sizes signed contracts."""
    engine = context.exchanges[event.exchange].engines[event.symbol]
    instrument = engine.instrument
    status, finish_as = _gate_status(event, futures=True)
    sign = 1 if event.side is OrderSide.BUY else -1
    filled_base = event.filled_lots * engine.base_atoms_per_lot
    average = Decimal(event.filled_quote_atoms) / Decimal(filled_base) if filled_base else Decimal(0)
    created_ms, updated_ms = _wall_ms(context, event.created_ns), _wall_ms(context, event.time_ns)
    finished_ms = updated_ms if status != constants.FUTURES_ORDER_STATUS_OPEN else 0
    return {
        "contract": instrument.venue_symbol,
        "create_time": created_ms // 1000,
        "create_time_ms": created_ms,
        "fill_price": _number(average),
        "finish_as": finish_as,
        "finish_time": finished_ms // 1000,
        "finish_time_ms": finished_ms,
        "iceberg": 0,
        "id": event.order_id,
        "is_close": False,
        "is_liq": False,
        "is_reduce_only": event.reduce_only,
        "left": sign * int(instrument.lots_to_size(event.size_lots - event.filled_lots)),
        "mkfr": _number(instrument.maker_fee),
        "price": _number(instrument.ticks_to_price(event.price_ticks) if event.price_ticks else Decimal(0)),
        "refr": 0,
        "refu": 0,
        "size": sign * int(instrument.lots_to_size(event.size_lots)),
        "status": status,
        "text": event.client_id or "api",
        "tif": next(k for k, v in _TIF.items() if v is event.time_in_force),
        "tkfr": _number(instrument.taker_fee),
        "user": _user_number(event.user),
        "update_id": 1,
        "update_time": updated_ms,
        "stop_loss_price": "",
        "stop_profit_price": "",
    }


def futures_trade_doc(context: SimContext, fill: Fill) -> dict[str, object]:
    """A ``futures.usertrades`` item, keys in the order of Gate's documented push."""
    instrument = context.exchanges[fill.exchange].engines[fill.symbol].instrument
    wall_ms = _wall_ms(context, fill.time_ns)
    contracts = int(instrument.lots_to_size(fill.size_lots))
    return {
        "id": str(fill.trade_id),
        "create_time": wall_ms // 1000,
        "create_time_ms": wall_ms,
        "contract": instrument.venue_symbol,
        "order_id": str(fill.order_id),
        "size": contracts if fill.side is OrderSide.BUY else -contracts,
        "price": instrument.format_price(fill.price_ticks),
        "role": "maker" if fill.liquidity is Liquidity.MAKER else "taker",
        "text": fill.client_id or "api",
        "fee": _number(from_atoms(fill.fee_atoms)),
        "point_fee": 0,
    }


def spot_balance_doc(
    user: str,
    asset: str,
    total: Decimal,
    locked: Decimal,
    change: Decimal,
    locked_change: Decimal,
    event: Fill | OrderEvent,
    send_ms: int,
) -> dict[str, object]:
    """A ``spot.balances`` item (strings throughout, as Gate writes them)."""
    if isinstance(event, Fill):
        change_type = "order-match"
    elif event.status is SimOrderStatus.NEW and not event.filled_lots:
        change_type = "order-create"
    else:
        change_type = "order-update"
    return {
        "timestamp": str(send_ms // 1000),
        "timestamp_ms": str(send_ms),
        "user": _user_number(user),
        "currency": asset,
        "change": _decimal_text(change),
        "total": _decimal_text(total),
        "available": _decimal_text(total - locked),
        "freeze": _decimal_text(locked),
        "freeze_change": _decimal_text(locked_change),
        "change_type": change_type,
    }


def futures_balance_doc(
    user: str, asset: str, balance: Decimal, change: Decimal, text: str, send_ms: int
) -> dict[str, object]:
    """A ``futures.balances`` item: the wallet balance after a fill (numbers, currency in lower case)."""
    return {
        "balance": _number(balance),
        "change": _number(change),
        "text": text,
        "time": send_ms // 1000,
        "time_ms": send_ms,
        "type": "fee",
        "user": _user_number(user),
        "currency": asset.lower(),
    }
