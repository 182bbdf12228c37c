"""Child process of the journal crash test: writes orders until killed (or orphaned).

Usage: ``python journal_crash_writer.py DB REPORT [--finish] [--deferred]``. For order ``c<i>`` it
records the intent, the ack and the fill ``t<i>`` (which closes it), and after each
commit appends one line to REPORT (``intent c3``, ``ack c3``, ``fill t3``) with a single
unbuffered write, so the parent knows every record that was committed before the kill.
On start it first finishes the intents a previous run left open by replaying their fill,
which may already be journaled: the journal must keep it once. ``--finish`` stops there.
``--deferred`` records each intent through the intent log (``record_intents(deferred=True)``).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import closing
from decimal import Decimal

from arb.exchanges.models import Fill, OrderRequest, OrderState, OrderStatus, OrderType
from arb.journal import Journal
from arb.types import ExchangeName, OrderSide

VENUE = ExchangeName.GATEIO
QUANTITY = Decimal("0.5")


def fill_of(index: int) -> Fill:
    return Fill(
        symbol="BTC/USDT",
        order_id=f"v{index}",
        client_order_id=f"c{index}",
        trade_id=f"t{index}",
        side=OrderSide.BUY,
        price=Decimal("60000.1"),
        quantity=QUANTITY,
        fee=Decimal("0.03"),
        fee_asset="USDT",
        is_maker=False,
        timestamp_ms=index,
    )


def main(db: str, report_path: str, finish: bool, deferred: bool) -> None:
    report = os.open(report_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def committed(line: str) -> None:
        os.write(report, f"{line}\n".encode())

    journal = Journal(db)
    for intent in journal.open_intents():
        index = int(intent.client_order_id[1:])
        journal.record_fill(VENUE, fill_of(index))
        committed(f"fill t{index}")
    if finish:
        journal.close()
        return
    with closing(sqlite3.connect(db)) as reader:
        index = reader.execute("SELECT count(*) FROM intents").fetchone()[0]
    parent = os.getppid()
    # Until killed, or until the test that started it is gone (a run stopped by a signal does not
    # reach its clean-up): an orphan would write on, loading the machine, for as long as it runs.
    while os.getppid() == parent:
        request = OrderRequest(
            symbol="BTC/USDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=QUANTITY,
            price=Decimal("60000.1"),
            client_order_id=f"c{index}",
        )
        journal.record_intents(f"opp{index}", [("buy", VENUE, request)], deferred=deferred)
        committed(f"intent c{index}")
        state = OrderState(
            symbol="BTC/USDT",
            order_id=f"v{index}",
            client_order_id=f"c{index}",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            status=OrderStatus.NEW,
            quantity=QUANTITY,
            price=Decimal("60000.1"),
        )
        journal.record_ack(VENUE, f"c{index}", state)
        committed(f"ack c{index}")
        journal.record_fill(VENUE, fill_of(index))
        committed(f"fill t{index}")
        index += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--finish" in sys.argv[3:], "--deferred" in sys.argv[3:])
