"""Pure-Python reference of arb_core.fsm: the readable spec and the test oracle."""

from __future__ import annotations

IDLE, DETECTING, OPPORTUNITY_FOUND, EXECUTING, COMPLETED, FAILED, RECOVERING = range(7)
N_STATES = 7
STATE_NAMES = (
    "IDLE", "DETECTING", "OPPORTUNITY_FOUND", "EXECUTING", "COMPLETED", "FAILED", "RECOVERING",
)

LEGAL: dict[int, frozenset[int]] = {
    IDLE: frozenset({DETECTING}),
    DETECTING: frozenset({OPPORTUNITY_FOUND, IDLE}),
    OPPORTUNITY_FOUND: frozenset({EXECUTING, DETECTING, IDLE}),
    EXECUTING: frozenset({COMPLETED, FAILED, RECOVERING}),
    COMPLETED: frozenset({IDLE, DETECTING}),
    FAILED: frozenset({IDLE, DETECTING, RECOVERING}),
    RECOVERING: frozenset({IDLE, DETECTING, COMPLETED, FAILED}),
}

MAX_HISTORY = 1 << 20


class IllegalTransitionError(ValueError):
    """A transition not in the table was requested."""


def _check_state(state: int, argument: str) -> None:
    if not 0 <= state < N_STATES:
        raise ValueError(f"{argument} must be a state in 0..{N_STATES - 1}, got {state}")


def state_name(state: int) -> str:
    """Name of a state constant."""
    _check_state(state, "state")
    return STATE_NAMES[state]


def legal_targets(state: int) -> tuple[int, ...]:
    """States reachable from ``state`` in one transition, ascending."""
    _check_state(state, "state")
    return tuple(sorted(LEGAL[state]))


class StateMachine:
    """Same contract as arb_core.fsm.StateMachine, history kept in a plain list."""

    def __init__(self, initial: int = IDLE, history: int = 32, now_ns: int = 0) -> None:
        _check_state(initial, "initial")
        if not 1 <= history <= MAX_HISTORY:
            raise ValueError(f"history must be in 1..{MAX_HISTORY}, got {history}")
        if now_ns < 0:
            raise ValueError(f"now_ns must be >= 0, got {now_ns}")
        self.initial_state = initial
        self.history_capacity = history
        self.state = initial
        self.entered_at_ns = now_ns
        self._entries: list[tuple[int, int]] = [(initial, now_ns)]

    def transition(self, to_state: int, now_ns: int) -> int:
        """Move to ``to_state`` at ``now_ns``; returns the state left."""
        _check_state(to_state, "to_state")
        if now_ns < self.entered_at_ns:
            raise ValueError(
                f"now_ns must be >= entered_at_ns ({self.entered_at_ns}), got {now_ns}"
            )
        from_state = self.state
        if to_state not in LEGAL[from_state]:
            allowed = ", ".join(STATE_NAMES[s] for s in legal_targets(from_state))
            raise IllegalTransitionError(
                f"illegal transition {STATE_NAMES[from_state]} -> {STATE_NAMES[to_state]}"
                f" (allowed from {STATE_NAMES[from_state]}: {allowed})"
            )
        self.state = to_state
        self.entered_at_ns = now_ns
        self._entries.append((to_state, now_ns))
        del self._entries[: -self.history_capacity]
        return from_state

    def can_transition(self, to_state: int) -> bool:
        _check_state(to_state, "to_state")
        return to_state in LEGAL[self.state]

    def time_in_state_ns(self, now_ns: int) -> int:
        if now_ns < self.entered_at_ns:
            raise ValueError(
                f"now_ns must be >= entered_at_ns ({self.entered_at_ns}), got {now_ns}"
            )
        return now_ns - self.entered_at_ns

    def duration_ns(self, from_state: int, to_state: int) -> int | None:
        """ns from the last entry into from_state to the next entry into to_state after it."""
        _check_state(from_state, "from_state")
        _check_state(to_state, "to_state")
        if from_state == to_state:
            raise ValueError(f"from_state and to_state must differ, got {from_state} twice")
        starts = [i for i, (s, _) in enumerate(self._entries) if s == from_state]
        if not starts:
            return None
        start = starts[-1]
        for s, t in self._entries[start + 1 :]:
            if s == to_state:
                return t - self._entries[start][1]
        return None

    def history(self) -> list[tuple[int, int]]:
        return list(self._entries)

    def reset(self, now_ns: int) -> None:
        if now_ns < 0:
            raise ValueError(f"now_ns must be >= 0, got {now_ns}")
        self.state = self.initial_state
        self.entered_at_ns = now_ns
        self._entries = [(self.initial_state, now_ns)]
