"""arb_core.fsm against tests/reference/fsm.py: table, validation, history and durations."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arb_core.fsm as fsm
import reference.fsm as ref
from arb.types import ArbitrageState
from arb_core.fsm import (
    COMPLETED,
    DETECTING,
    EXECUTING,
    FAILED,
    IDLE,
    OPPORTUNITY_FOUND,
    RECOVERING,
    IllegalTransitionError,
    StateMachine,
)

EXPECTED_TABLE = {
    IDLE: {DETECTING},
    DETECTING: {OPPORTUNITY_FOUND, IDLE},
    OPPORTUNITY_FOUND: {EXECUTING, DETECTING, IDLE},
    EXECUTING: {COMPLETED, FAILED, RECOVERING},
    COMPLETED: {IDLE, DETECTING},
    FAILED: {IDLE, DETECTING, RECOVERING},
    RECOVERING: {IDLE, DETECTING, COMPLETED, FAILED},
}


# --- bad inputs -----------------------------------------------------------------------


@pytest.mark.parametrize("initial", [-1, 7, 1000])
def test_unknown_initial_state_is_rejected(initial: int) -> None:
    with pytest.raises(ValueError, match=rf"initial must be a state in 0\.\.6, got {initial}"):
        StateMachine(initial)


@pytest.mark.parametrize("history", [0, -1, (1 << 20) + 1])
def test_history_out_of_range_is_rejected(history: int) -> None:
    with pytest.raises(ValueError, match=rf"history must be in 1\.\.1048576, got {history}"):
        StateMachine(IDLE, history)


def test_negative_start_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="now_ns must be >= 0, got -1"):
        StateMachine(IDLE, 4, -1)


@pytest.mark.parametrize("to_state", [-1, 7, 99])
def test_unknown_target_state_is_a_plain_value_error(to_state: int) -> None:
    m = StateMachine()
    with pytest.raises(ValueError, match=rf"to_state must be a state in 0\.\.6, got {to_state}") as info:
        m.transition(to_state, 1)
    assert type(info.value) is ValueError
    with pytest.raises(ValueError, match=rf"got {to_state}"):
        m.can_transition(to_state)
    assert m.state == IDLE and m.history() == [(IDLE, 0)]


def test_time_going_backwards_is_rejected_and_changes_nothing() -> None:
    m = StateMachine(IDLE, 8, 100)
    with pytest.raises(ValueError, match=r"now_ns must be >= entered_at_ns \(100\), got 99"):
        m.transition(DETECTING, 99)
    with pytest.raises(ValueError, match=r"got 50"):
        m.time_in_state_ns(50)
    assert m.state == IDLE and m.entered_at_ns == 100 and m.history() == [(IDLE, 100)]


def test_out_of_range_integers_and_wrong_types() -> None:
    m = StateMachine()
    with pytest.raises(OverflowError):
        m.transition(DETECTING, 1 << 63)
    with pytest.raises(ValueError, match="to_state must be a state"):
        m.transition(1 << 40, 1)  # checked at its full width, not narrowed first
    with pytest.raises(TypeError):
        m.transition(1.0, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.transition(DETECTING, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.transition(None, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.transition(DETECTING, "1")  # type: ignore[arg-type]
    assert m.state == IDLE


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.duration_ns(7, IDLE),
        lambda m: m.duration_ns(IDLE, -1),
        lambda m: fsm.state_name(7),
        lambda m: fsm.legal_targets(-1),
        lambda m: m.reset(-5),
    ],
)
def test_other_entry_points_validate(call: Callable[[StateMachine], Any]) -> None:
    with pytest.raises(ValueError, match="got"):
        call(StateMachine())


def test_duration_between_a_state_and_itself_is_rejected() -> None:
    with pytest.raises(ValueError, match="from_state and to_state must differ, got 1 twice"):
        StateMachine().duration_ns(DETECTING, DETECTING)


# --- table and names ------------------------------------------------------------------


def test_constants_and_names() -> None:
    assert (IDLE, DETECTING, OPPORTUNITY_FOUND, EXECUTING, COMPLETED, FAILED, RECOVERING) == tuple(
        range(7)
    )
    assert fsm.N_STATES == 7
    assert fsm.STATE_NAMES == ref.STATE_NAMES
    for s, name in enumerate(fsm.STATE_NAMES):
        assert fsm.state_name(s) == name
        assert getattr(fsm, name) == s


def test_constants_match_the_package_enum() -> None:
    """arb.types.ArbitrageState names exactly the compiled states, with their values."""
    assert [(state.name, state.value) for state in ArbitrageState] == list(
        zip(fsm.STATE_NAMES, range(fsm.N_STATES), strict=True))


def test_table_is_exactly_the_documented_one() -> None:
    for a in range(7):
        assert set(fsm.legal_targets(a)) == EXPECTED_TABLE[a] == ref.LEGAL[a]
        for b in range(7):
            m = StateMachine(a)
            assert m.can_transition(b) is (b in EXPECTED_TABLE[a])
    # No self loops; RECOVERING only from the states that can leave a residual.
    assert all(a not in EXPECTED_TABLE[a] for a in EXPECTED_TABLE)
    assert {a for a, t in EXPECTED_TABLE.items() if RECOVERING in t} == {EXECUTING, FAILED}


@pytest.mark.parametrize("a", range(7))
@pytest.mark.parametrize("b", range(7))
def test_every_pair_transitions_or_raises_naming_both_states(a: int, b: int) -> None:
    m = StateMachine(a, 4, 10)
    if b in EXPECTED_TABLE[a]:
        assert m.transition(b, 20) == a
        assert m.state == b and m.entered_at_ns == 20
        assert m.history() == [(a, 10), (b, 20)]
    else:
        with pytest.raises(IllegalTransitionError) as info:
            m.transition(b, 20)
        msg = str(info.value)
        assert msg.startswith(f"illegal transition {fsm.STATE_NAMES[a]} -> {fsm.STATE_NAMES[b]}")
        assert isinstance(info.value, ValueError)
        assert m.state == a and m.history() == [(a, 10)]


# --- lifecycle ------------------------------------------------------------------------


def test_trade_lifecycle_durations_and_time_in_state() -> None:
    m = StateMachine(IDLE, 16, 1_000)
    m.transition(DETECTING, 2_000)
    m.transition(OPPORTUNITY_FOUND, 2_500)
    m.transition(EXECUTING, 2_600)
    assert m.duration_ns(OPPORTUNITY_FOUND, COMPLETED) is None
    m.transition(COMPLETED, 9_600)
    assert m.duration_ns(OPPORTUNITY_FOUND, COMPLETED) == 7_100
    assert m.duration_ns(EXECUTING, COMPLETED) == 7_000
    assert m.duration_ns(IDLE, DETECTING) == 1_000
    assert m.duration_ns(COMPLETED, IDLE) is None
    assert m.time_in_state_ns(10_000) == 400
    # A new opportunity that has not completed hides the old pair: "last entry" wins.
    m.transition(DETECTING, 11_000)
    m.transition(OPPORTUNITY_FOUND, 11_500)
    assert m.duration_ns(OPPORTUNITY_FOUND, COMPLETED) is None
    assert m.duration_ns(DETECTING, OPPORTUNITY_FOUND) == 500


def test_history_ring_keeps_the_newest_entries() -> None:
    m = StateMachine(IDLE, 3)
    for t, s in enumerate([DETECTING, IDLE, DETECTING, OPPORTUNITY_FOUND], start=1):
        m.transition(s, t)
    assert m.history() == [(IDLE, 2), (DETECTING, 3), (OPPORTUNITY_FOUND, 4)]
    assert m.history_capacity == 3
    assert m.duration_ns(IDLE, OPPORTUNITY_FOUND) == 2


def test_reset_returns_to_the_initial_state() -> None:
    m = StateMachine(DETECTING, 4, 5)
    m.transition(OPPORTUNITY_FOUND, 6)
    m.transition(EXECUTING, 7)
    m.reset(3)
    assert m.state == DETECTING == m.initial_state
    assert m.entered_at_ns == 3
    assert m.history() == [(DETECTING, 3)]
    assert repr(m) == "StateMachine(state=DETECTING, entered_at_ns=3)"


# --- differential against the reference -----------------------------------------------


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the exception is the compared result
        return (type(exc).__name__, str(exc))


def snapshot(m: Any) -> tuple[Any, ...]:
    durations = tuple(
        m.duration_ns(a, b) for a in range(7) for b in range(7) if a != b
    )
    return (m.state, m.entered_at_ns, m.history(), durations)


ops = st.one_of(
    st.tuples(st.just("transition"), st.integers(-1, 7), st.integers(-3, 50)),
    st.tuples(st.just("can"), st.integers(-1, 7), st.just(0)),
    st.tuples(st.just("time"), st.just(0), st.integers(-3, 50)),
    st.tuples(st.just("duration"), st.integers(-1, 7), st.integers(-1, 7)),
    st.tuples(st.just("reset"), st.just(0), st.integers(-1, 1000)),
)


def apply(m: Any, op: tuple[str, int, int], clock: int) -> Callable[[], Any]:
    kind, a, b = op
    if kind == "transition":
        return lambda: m.transition(a, clock + b)
    if kind == "can":
        return lambda: m.can_transition(a)
    if kind == "time":
        return lambda: m.time_in_state_ns(clock + b)
    if kind == "duration":
        return lambda: m.duration_ns(a, b)
    return lambda: m.reset(b)


@settings(max_examples=300)
@given(
    initial=st.integers(0, 6),
    history=st.integers(1, 8),
    start=st.integers(0, 100),
    sequence=st.lists(ops, max_size=60),
)
def test_random_operations_match_reference(
    initial: int, history: int, start: int, sequence: list[tuple[str, int, int]]
) -> None:
    c = StateMachine(initial, history, start)
    r = ref.StateMachine(initial, history, start)
    for op in sequence:
        clock = r.entered_at_ns
        assert outcome(apply(c, op, clock)) == outcome(apply(r, op, clock))
        assert snapshot(c) == snapshot(r)


@settings(max_examples=200)
@given(history=st.integers(1, 6), data=st.data())
def test_legal_walks_match_reference(history: int, data: st.DataObject) -> None:
    c = StateMachine(IDLE, history)
    r = ref.StateMachine(IDLE, history)
    now = 0
    steps = data.draw(st.integers(0, 80))
    for _ in range(steps):
        to_state = data.draw(st.sampled_from(ref.legal_targets(r.state)))
        now += data.draw(st.integers(0, 1_000_000))
        assert c.transition(to_state, now) == r.transition(to_state, now)
    assert snapshot(c) == snapshot(r)
    assert len(c.history()) == min(history, steps + 1)
    assert c.history()[-1] == (c.state, c.entered_at_ns)


def test_rebinding_the_public_state_names_cannot_reach_unchecked_indexing(tmp_path: Path) -> None:
    """The module indexes its own tuple without bounds checks; the public name is a copy (run in a
    child process: a regression would crash the interpreter, not fail an assertion)."""
    code = (
        "import arb_core.fsm as f\n"
        "f.STATE_NAMES = ('IDLE',)\n"
        "print(f.state_name(6), repr(f.StateMachine()))\n"
    )
    # From elsewhere than the source tree, whose uncompiled ``arb_core`` would shadow the installed one.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "RECOVERING StateMachine(state=IDLE, entered_at_ns=0)"
