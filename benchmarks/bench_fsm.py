"""StateMachine.transition cost from Python; the pure-Python reference is the baseline."""

from __future__ import annotations

from typing import Any

import pytest

import reference.fsm as ref
from arb_core.fsm import StateMachine

# One trade per cycle: IDLE -> DETECTING -> OPPORTUNITY_FOUND -> EXECUTING -> COMPLETED -> IDLE.
CYCLE = [ref.DETECTING, ref.OPPORTUNITY_FOUND, ref.EXECUTING, ref.COMPLETED, ref.IDLE]
CALLS = 1_000
STEPS = [(CYCLE[i % len(CYCLE)], 1_000 * (i + 1)) for i in range(CALLS)]


@pytest.mark.parametrize("impl", [ref.StateMachine, StateMachine], ids=["reference", "compiled"])
def test_transition_1000(benchmark: Any, impl: type) -> None:
    """1000 legal transitions with timestamps, history ring of 32."""
    benchmark.group = "fsm.transition x1000"
    m = impl()
    transition = m.transition

    def run() -> None:
        for state, now_ns in STEPS:
            transition(state, now_ns)

    benchmark.pedantic(run, setup=lambda: m.reset(0), rounds=300, iterations=1, warmup_rounds=5)
    benchmark.extra_info["ns_per_call"] = round(benchmark.stats.stats.median / CALLS * 1e9, 1)
    assert m.state == ref.IDLE and m.entered_at_ns == 1_000 * CALLS
    assert m.duration_ns(ref.OPPORTUNITY_FOUND, ref.COMPLETED) == 2_000
    assert len(m.history()) == 32
