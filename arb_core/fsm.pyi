"""Typed Python API of arb_core.fsm (compiled)."""

from typing import Final

IDLE: Final[int]  # 0
DETECTING: Final[int]  # 1
OPPORTUNITY_FOUND: Final[int]  # 2
EXECUTING: Final[int]  # 3
COMPLETED: Final[int]  # 4
FAILED: Final[int]  # 5
RECOVERING: Final[int]  # 6
N_STATES: Final[int]  # 7
STATE_NAMES: Final[tuple[str, ...]]

class IllegalTransitionError(ValueError):
    """A transition not in the table was requested."""

def state_name(state: int) -> str:
    """Name of a state constant, e.g. ``state_name(2) == "OPPORTUNITY_FOUND"``."""

def legal_targets(state: int) -> tuple[int, ...]:
    """The states reachable from ``state`` in one transition, ascending."""

class StateMachine:
    """Opportunity lifecycle state with a ring of recent (state, entered_at_ns) entries."""

    @property
    def state(self) -> int: ...
    @property
    def initial_state(self) -> int: ...
    @property
    def entered_at_ns(self) -> int: ...
    @property
    def history_capacity(self) -> int:
        """Number of entries the history ring retains."""
    def __init__(self, initial: int = 0, history: int = 32, now_ns: int = 0) -> None: ...
    def transition(self, to_state: int, now_ns: int) -> int:
        """Move to ``to_state`` at ``now_ns``; returns the state left.

        Raises IllegalTransitionError naming both states when the table forbids it,
        ValueError for an unknown state or a time going backwards.
        """
    def can_transition(self, to_state: int) -> bool:
        """True if ``transition(to_state, ...)`` would be accepted by the table."""
    def time_in_state_ns(self, now_ns: int) -> int:
        """Nanoseconds spent in the current state as of ``now_ns``."""
    def duration_ns(self, from_state: int, to_state: int) -> int | None:
        """ns from the last entry into ``from_state`` to the next entry into ``to_state``
        after it, or None if the retained history has no such pair."""
    def history(self) -> list[tuple[int, int]]:
        """Retained entries as (state, entered_at_ns), oldest first."""
    def reset(self, now_ns: int) -> None:
        """Return to the initial state at ``now_ns`` and clear the history."""
