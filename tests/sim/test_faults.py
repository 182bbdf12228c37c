"""arb.sim.faults: validation, scheduled one-shots, seeded probabilities, counters."""

import pytest

from arb.exchanges.errors import ErrorCategory
from arb.sim.faults import FaultPlan, OrderFault, OrderFaultKind, StreamFault, StreamFaultKind, VenueFaults

GATE = "gateio"


def test_bad_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="GAP is 2000000 ppm"):
        FaultPlan(venues={GATE: VenueFaults(stream_ppm={StreamFaultKind.GAP: 2_000_000})})
    with pytest.raises(ValueError, match="partial_fill_ppm"):
        FaultPlan(venues={GATE: VenueFaults(partial_fill_ppm=-1)})
    plan = FaultPlan()
    with pytest.raises(ValueError, match="count 0"):
        plan.fail_next_orders(GATE, OrderFaultKind.REJECT, 0)
    with pytest.raises(ValueError, match="fill_ppm"):
        plan.fail_next_orders(GATE, OrderFaultKind.PARTIAL_FILL, fill_ppm=1_000_001)
    with pytest.raises(ValueError, match="update number 0"):
        plan.at_update(GATE, 0, StreamFaultKind.GAP)
    with pytest.raises(ValueError, match="not a stream fault"):
        plan.at_update(GATE, 1, OrderFaultKind.REJECT)  # type: ignore[arg-type]


def test_no_plan_no_faults() -> None:
    plan = FaultPlan(seed=1)
    assert [plan.on_order(GATE) for _ in range(100)] == [None] * 100
    assert [plan.on_book_update(GATE) for _ in range(100)] == [None] * 100
    assert plan.clock_skew_ms(GATE) == 0 and not plan.injected


def test_next_n_orders_then_back_to_normal_and_counted() -> None:
    plan = FaultPlan()
    plan.fail_next_orders(GATE, OrderFaultKind.REJECT, 2, category=ErrorCategory.INSUFFICIENT_BALANCE)
    plan.fail_next_orders(GATE, OrderFaultKind.RATE_LIMIT, retry_after_ms=250)
    plan.fail_next_orders(GATE, OrderFaultKind.PARTIAL_FILL, fill_ppm=250_000)
    plan.fail_next_orders(GATE, OrderFaultKind.TIMEOUT_PLACED)
    assert plan.on_order("mexc") is None  # other venues untouched
    got = [plan.on_order(GATE) for _ in range(6)]
    assert got == [
        OrderFault(OrderFaultKind.REJECT, category=ErrorCategory.INSUFFICIENT_BALANCE),
        OrderFault(OrderFaultKind.REJECT, category=ErrorCategory.INSUFFICIENT_BALANCE),
        OrderFault(OrderFaultKind.RATE_LIMIT, category=ErrorCategory.RATE_LIMITED, retry_after_ms=250),
        OrderFault(OrderFaultKind.PARTIAL_FILL, fill_ppm=250_000),
        OrderFault(OrderFaultKind.TIMEOUT_PLACED, category=ErrorCategory.OUTCOME_UNKNOWN),
        None,
    ]
    assert plan.count(GATE, OrderFaultKind.REJECT) == 2
    assert plan.count(GATE, OrderFaultKind.RATE_LIMIT) == plan.count(GATE, OrderFaultKind.TIMEOUT_PLACED) == 1


def test_scheduled_stream_faults_hit_exactly_their_update() -> None:
    plan = FaultPlan(venues={GATE: VenueFaults(stall_ms=750, clock_skew_ms=-1_500)})
    plan.at_update(GATE, 3, StreamFaultKind.GAP)
    plan.at_update(GATE, 5, StreamFaultKind.STALL)
    plan.at_update(GATE, 6, StreamFaultKind.STALL, stall_ms=10)
    got = [plan.on_book_update(GATE) for _ in range(8)]
    assert got == [None, None, StreamFault(StreamFaultKind.GAP), None, StreamFault(StreamFaultKind.STALL, 750),
                   StreamFault(StreamFaultKind.STALL, 10), None, None]
    assert plan.clock_skew_ms(GATE) == -1_500
    assert plan.count(GATE, StreamFaultKind.STALL) == 2 and plan.count(GATE, StreamFaultKind.GAP) == 1


def test_probabilities_are_seeded_and_roughly_honoured() -> None:
    faults = VenueFaults(
        order_ppm={OrderFaultKind.REJECT: 100_000},
        stream_ppm={kind: 50_000 for kind in StreamFaultKind},
        reject_category=ErrorCategory.MIN_NOTIONAL,
    )

    def run(seed: int) -> list[object]:
        plan = FaultPlan(seed, {GATE: faults})
        return [plan.on_order(GATE) for _ in range(2_000)] + [plan.on_book_update(GATE) for _ in range(6_000)]

    first = run(3)
    assert first == run(3) and first != run(4)
    rejects = [f for f in first[:2_000] if f is not None]
    assert 100 < len(rejects) < 300 and all(f == OrderFault(OrderFaultKind.REJECT, category=ErrorCategory.MIN_NOTIONAL) for f in rejects)
    for kind in StreamFaultKind:
        hits = sum(1 for f in first[2_000:] if isinstance(f, StreamFault) and f.kind is kind)
        assert 150 < hits < 450, (kind, hits)


def test_counters_match_what_was_handed_out() -> None:
    plan = FaultPlan(5, {GATE: VenueFaults(stream_ppm={StreamFaultKind.DUPLICATE: 300_000, StreamFaultKind.MALFORMED: 300_000})})
    handed = [f for f in (plan.on_book_update(GATE) for _ in range(500)) if f is not None]
    for kind in (StreamFaultKind.DUPLICATE, StreamFaultKind.MALFORMED):
        assert plan.count(GATE, kind) == sum(1 for f in handed if f.kind is kind) > 0
    assert sum(plan.injected.values()) == len(handed)
