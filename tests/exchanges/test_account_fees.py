"""Instrument fees: the account's tier when keys are given (Gate ``/spot/fee``, MEXC ``tradeFee``),
the listed or documented defaults otherwise, against the simulated venues on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal as D

import pytest
from loopback import run
from simvenues import API_KEY, CREDENTIALS, PERP, SPOT, instruments

from arb.exchanges.connector import ExchangeConnector
from arb.exchanges.gateio import sim as gate_sim
from arb.exchanges.gateio.connector import GateioFuturesConnector, GateioSpotConnector
from arb.exchanges.mexc import constants as mexc
from arb.exchanges.mexc import sim as mexc_sim
from arb.exchanges.mexc.connector import MexcSpotConnector
from arb.secrets import ApiCredentials
from arb.sim.http import Handler, Route, SimContext, SimRequest, SimResponse
from arb.sim.server import SimulatedVenue
from arb.types import ExchangeName

PERP_MARKET = ExchangeName.GATEIO_FUTURES


@asynccontextmanager
async def venue(name: str, routes: Sequence[Route] | None = None) -> AsyncIterator[SimulatedVenue]:
    """One simulated venue with the test instruments (Gate spot: 0.1 % taker, 0.05 % maker)."""
    async with SimulatedVenue(name, instruments(), credentials={API_KEY: CREDENTIALS}, routes=routes) as sim:
        yield sim


def connector(kind: type[ExchangeConnector], sim: SimulatedVenue, credentials: ApiCredentials | None) -> ExchangeConnector:
    urls = sim.urls()
    futures = kind.binding.exchange.is_futures
    return kind(
        credentials=credentials,
        rest_url=urls.futures_rest_url if futures else urls.rest_url,
        ws_url=urls.futures_ws_url if futures else urls.ws_url,
    )


def test_gate_spot_fees_come_from_the_account_when_keys_are_given() -> None:
    async def scenario() -> None:
        async with venue("gateio") as sim:
            public = connector(GateioSpotConnector, sim, None)
            private = connector(GateioSpotConnector, sim, CREDENTIALS)
            try:
                listed = (await public.instruments()).get(SPOT)
                # currency_pairs lists one "fee" percent: maker and taker alike.
                assert (listed.taker_fee, listed.maker_fee) == (D("0.001"), D("0.001"))
                assert not public.fees_from_account
                own = (await private.instruments()).get(SPOT)
                assert (own.taker_fee, own.maker_fee) == (D("0.001"), D("0.0005"))
                assert private.fees_from_account
            finally:
                await public.close()
                await private.close()

    run(scenario())


def test_gate_futures_fees_come_from_the_futures_fields_of_the_same_answer() -> None:
    async def scenario() -> None:
        async with venue("gateio") as sim:
            engine = sim.exchanges[PERP_MARKET].engines[PERP]
            private = connector(GateioFuturesConnector, sim, CREDENTIALS)
            try:
                own = (await private.instruments()).get(PERP)
                assert (own.taker_fee, own.maker_fee) == (engine.instrument.taker_fee, engine.instrument.maker_fee)
                assert own.maker_fee == D("-0.00025") and private.fees_from_account
            finally:
                await private.close()

    run(scenario())


def test_gate_fee_endpoint_failing_keeps_the_listed_fees() -> None:
    routes = [r for r in gate_sim.rest_routes() if not r.path.endswith("/spot/fee")]

    async def scenario() -> None:
        async with venue("gateio", routes) as sim:
            private = connector(GateioSpotConnector, sim, CREDENTIALS)
            try:
                own = (await private.instruments()).get(SPOT)
                assert own.maker_fee == D("0.001") and not private.fees_from_account
            finally:
                await private.close()

    run(scenario())


def _without_commissions(handler: Handler) -> Handler:
    """exchangeInfo as an account-agnostic listing: no makerCommission/takerCommission (defaults apply)."""

    def answer(request: SimRequest, ctx: SimContext) -> SimResponse:
        response = handler(request, ctx)
        doc = json.loads(response.body)
        for symbol in doc["symbols"]:
            symbol.pop("makerCommission", None)
            symbol.pop("takerCommission", None)
        return SimResponse(status=response.status, body=json.dumps(doc).encode())

    return answer


def test_mexc_fees_per_symbol_from_trade_fee_when_keys_are_given() -> None:
    routes = [
        Route(r.method, r.path, _without_commissions(r.handler)) if r.path == mexc.EXCHANGE_INFO_PATH else r
        for r in mexc_sim.rest_routes()
    ]

    async def scenario() -> None:
        async with venue("mexc", routes) as sim:
            public = connector(MexcSpotConnector, sim, None)
            private = connector(MexcSpotConnector, sim, CREDENTIALS)
            try:
                listed = (await public.instruments()).get(SPOT)
                assert (listed.taker_fee, listed.maker_fee) == (mexc.DEFAULT_SPOT_TAKER_FEE, mexc.DEFAULT_SPOT_MAKER_FEE)
                # Per-symbol venues are asked for the symbols traded (start_books does it, or explicitly).
                before = sim.requests
                assert (await private.instruments()).get(SPOT).taker_fee == mexc.DEFAULT_SPOT_TAKER_FEE
                own = (await private.load_account_fees([SPOT])).get(SPOT)
                assert (own.taker_fee, own.maker_fee) == (D("0.001"), D("0.0005"))
                # exchangeInfo, defaultSymbols (the pairs open to API orders), then one tradeFee
                assert sim.requests == before + 3 and private.fees_from_account
                assert (await private.instrument(SPOT)).maker_fee == D("0.0005")  # the cached catalog now
                await private.start_books([SPOT])
                assert (await private.instrument(SPOT)).taker_fee == D("0.001")
            finally:
                await public.close()
                await private.close()

    run(scenario())


def test_public_connectors_ask_nothing_about_the_account() -> None:
    async def scenario() -> None:
        async with venue("mexc") as sim:
            public = connector(MexcSpotConnector, sim, None)
            try:
                await public.instruments()
                catalog = await public.load_account_fees([SPOT])
                # exchangeInfo and defaultSymbols only: nothing signed
                assert catalog.get(SPOT).maker_fee == D("0.0005") and sim.requests == 2
            finally:
                await public.close()

    run(scenario())


@pytest.mark.parametrize("kind", [GateioSpotConnector, MexcSpotConnector], ids=["gateio", "mexc"])
def test_fee_requests_are_signed_for_the_key(kind: type[ExchangeConnector]) -> None:
    async def scenario() -> None:
        async with venue(kind.binding.exchange.venue) as sim:
            private = connector(kind, sim, CREDENTIALS)
            try:
                await private.load_account_fees([SPOT])
                assert private.fees_from_account and sim.handler_errors == 0
            finally:
                await private.close()

    run(scenario())


def test_a_fresh_read_says_whether_its_fees_are_the_accounts() -> None:
    """What the trading-rules watch compares fees by: a failed fee call must not pass the listed
    rates off as the account's (nor touch the cached catalog)."""
    gate_without_fee = [r for r in gate_sim.rest_routes() if not r.path.endswith("/spot/fee")]
    mexc_listing = [
        Route(r.method, r.path, _without_commissions(r.handler)) if r.path == mexc.EXCHANGE_INFO_PATH else r
        for r in mexc_sim.rest_routes()
    ]

    async def scenario() -> None:
        async with venue("gateio") as sim:
            private = connector(GateioSpotConnector, sim, CREDENTIALS)
            try:
                fresh = await private.read_instruments()
                assert fresh.fees_from_account and fresh.get(SPOT).maker_fee == D("0.0005")
            finally:
                await private.close()
        async with venue("gateio", gate_without_fee) as sim:
            private = connector(GateioSpotConnector, sim, CREDENTIALS)
            try:
                fresh = await private.read_instruments([SPOT])
                assert not fresh.fees_from_account and fresh.get(SPOT).maker_fee == D("0.001")
            finally:
                await private.close()
        async with venue("mexc", mexc_listing) as sim:
            private = connector(MexcSpotConnector, sim, CREDENTIALS)
            try:
                await private.start_books([SPOT])  # the engine's catalog: the account's rate on SPOT
                listed = await private.read_instruments()  # per-symbol rates are asked for named symbols only
                assert not listed.fees_from_account and listed.get(SPOT).taker_fee == mexc.DEFAULT_SPOT_TAKER_FEE
                fresh = await private.read_instruments([SPOT, "NOT/LISTED"])
                assert fresh.fees_from_account and fresh.get(SPOT).taker_fee == D("0.001")
                assert private.fees_from_account and (await private.instrument(SPOT)).taker_fee == D("0.001")
            finally:
                await private.close()

    run(scenario())
