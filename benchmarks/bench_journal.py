"""Journal write latency: record_intent + record_ack, one committed transaction each.

``synchronous=FULL`` (the default: fsync on every commit, survives power loss) against
``NORMAL`` (sync at checkpoints only, survives a killed process). The numbers depend on
the disk: on tmpfs the fsync is nearly free, on a real SSD it dominates.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from arb.exchanges.models import OrderRequest, OrderState, OrderStatus, OrderType
from arb.journal import Journal
from arb.types import ExchangeName, OrderSide

ROUNDS = 300


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_intent_and_ack_round_trip(benchmark: Any, tmp_path: Path, synchronous: Literal["FULL", "NORMAL"]) -> None:
    """One intent and its ack, two commits."""
    benchmark.group = "journal.record_intent+record_ack"
    journal = Journal(tmp_path / "bench.sqlite3", synchronous=synchronous)
    counter = itertools.count()
    exchange = ExchangeName.GATEIO

    def setup() -> tuple[tuple[OrderRequest, OrderState], dict[str, Any]]:
        coid = f"c{next(counter)}"
        request = OrderRequest(
            symbol="BTC/USDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal("0.0123"),
            price=Decimal("60000.1"),
            client_order_id=coid,
        )
        state = OrderState(
            symbol="BTC/USDT",
            order_id=f"v{coid}",
            client_order_id=coid,
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            status=OrderStatus.NEW,
            quantity=Decimal("0.0123"),
            price=Decimal("60000.1"),
        )
        return (request, state), {}

    def run(request: OrderRequest, state: OrderState) -> None:
        journal.record_intent("opp", "buy", request, exchange)
        journal.record_ack(exchange, request.client_order_id, state)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    intents = journal.open_intents()
    journal.close()
    assert len(intents) == ROUNDS + 5 and all(i.order_id == f"v{i.client_order_id}" for i in intents)
