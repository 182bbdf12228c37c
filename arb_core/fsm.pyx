# cython: freethreading_compatible = False
"""Opportunity lifecycle state machine: a static transition table plus a timestamp ring.

Legal transitions (anything else raises ``IllegalTransitionError``)::

    IDLE              -> DETECTING
    DETECTING         -> OPPORTUNITY_FOUND, IDLE
    OPPORTUNITY_FOUND -> EXECUTING, DETECTING (vanished or rejected by risk), IDLE
    EXECUTING         -> COMPLETED, FAILED, RECOVERING
    COMPLETED         -> IDLE, DETECTING
    FAILED            -> IDLE, DETECTING, RECOVERING
    RECOVERING        -> IDLE, DETECTING, COMPLETED (residual closed), FAILED (gave up)

RECOVERING is entered only from EXECUTING and FAILED: those are the states that can
leave a residual position. No state transitions to itself.
"""

from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free

from arb_core.fixed cimport int_arg

cdef tuple _NAMES = (
    "IDLE", "DETECTING", "OPPORTUNITY_FOUND", "EXECUTING", "COMPLETED", "FAILED", "RECOVERING",
)
STATE_NAMES = _NAMES  # the public copy; the code indexes its own (unchecked), which Python cannot rebind

# Bounds the allocation a caller can request; far beyond any diagnostic use.
cdef Py_ssize_t MAX_HISTORY = 1 << 20


class IllegalTransitionError(ValueError):
    """A transition not in the table was requested."""


cdef inline int check_state(int_arg state, str argument) except -1:
    if state < 0 or state >= N_STATES:
        raise ValueError(f"{argument} must be a state in 0..{N_STATES - 1}, got {state}")
    return 0


cpdef str state_name(int_arg state):
    """Name of a state constant, e.g. ``state_name(2) == "OPPORTUNITY_FOUND"``."""
    check_state(state, "state")
    return _NAMES[state]


def legal_targets(int_arg state):
    """The states reachable from ``state`` in one transition, ascending."""
    check_state(state, "state")
    return tuple([s for s in range(N_STATES) if transition_allowed_c(state, s)])


cdef object illegal_transition(int from_state, int to_state):
    allowed = ", ".join([_NAMES[s] for s in legal_targets(from_state)])
    return IllegalTransitionError(
        f"illegal transition {_NAMES[from_state]} -> {_NAMES[to_state]}"
        f" (allowed from {_NAMES[from_state]}: {allowed})"
    )


cdef class StateMachine:
    """Opportunity lifecycle state with a ring of recent (state, entered_at_ns) entries.

    Times are caller-supplied monotonic nanoseconds and must never go backwards.
    The initial state is recorded in the history as entered at ``now_ns``.
    """

    def __cinit__(self, int_arg initial=IDLE, Py_ssize_t history=32, int_arg now_ns=0):
        check_state(initial, "initial")
        if history < 1 or history > MAX_HISTORY:
            raise ValueError(f"history must be in 1..{MAX_HISTORY}, got {history}")
        if now_ns < 0:
            raise ValueError(f"now_ns must be >= 0, got {now_ns}")
        self.ring_states = <int*>malloc(history * sizeof(int))
        self.ring_times = <int64_t*>malloc(history * sizeof(int64_t))
        if self.ring_states == NULL or self.ring_times == NULL:
            raise MemoryError()
        self.capacity = history
        self.initial_state = initial
        self.size = 0
        self.head = history - 1
        self.state = initial
        self.entered_at_ns = now_ns
        self.push_c(initial, now_ns)

    def __dealloc__(self):
        free(self.ring_states)
        free(self.ring_times)

    cdef void push_c(self, int state, int64_t now_ns) noexcept:
        self.head += 1
        if self.head == self.capacity:
            self.head = 0
        self.ring_states[self.head] = state
        self.ring_times[self.head] = now_ns
        if self.size < self.capacity:
            self.size += 1

    cpdef int transition(self, int_arg to_state, int_arg now_ns) except -1:
        """Move to ``to_state`` at ``now_ns``; returns the state left.

        Raises ``IllegalTransitionError`` (a ``ValueError``) naming both states when the
        table forbids it, and ``ValueError`` for an unknown state or a time going backwards.
        """
        cdef int from_state = self.state
        check_state(to_state, "to_state")
        if now_ns < self.entered_at_ns:
            raise ValueError(
                f"now_ns must be >= entered_at_ns ({self.entered_at_ns}), got {now_ns}"
            )
        if not transition_allowed_c(from_state, to_state):
            raise illegal_transition(from_state, to_state)
        self.state = to_state
        self.entered_at_ns = now_ns
        self.push_c(to_state, now_ns)
        return from_state

    cpdef bint can_transition(self, int_arg to_state) except -1:
        """True if ``transition(to_state, ...)`` would be accepted by the table."""
        check_state(to_state, "to_state")
        return transition_allowed_c(self.state, to_state)

    cpdef int64_t time_in_state_ns(self, int_arg now_ns) except -1:
        """Nanoseconds spent in the current state as of ``now_ns``."""
        if now_ns < self.entered_at_ns:
            raise ValueError(
                f"now_ns must be >= entered_at_ns ({self.entered_at_ns}), got {now_ns}"
            )
        return now_ns - self.entered_at_ns

    cdef int64_t duration_c(self, int from_state, int to_state) noexcept:
        # Newest entry into from_state, then the first later entry into to_state; -1 if
        # either is not in the retained history.
        cdef Py_ssize_t back, slot, found = -1
        for back in range(self.size):
            slot = self.head - back
            if slot < 0:
                slot += self.capacity
            if self.ring_states[slot] == from_state:
                found = back
                break
        if found < 0:
            return -1
        cdef int64_t start = self.ring_times[slot]
        for back in range(found - 1, -1, -1):
            slot = self.head - back
            if slot < 0:
                slot += self.capacity
            if self.ring_states[slot] == to_state:
                return self.ring_times[slot] - start
        return -1

    def duration_ns(self, int_arg from_state, int_arg to_state):
        """Nanoseconds from the last entry into ``from_state`` to the next entry into
        ``to_state`` after it, or ``None`` if the retained history has no such pair.

        For example ``duration_ns(OPPORTUNITY_FOUND, COMPLETED)`` after a completed trade.
        """
        check_state(from_state, "from_state")
        check_state(to_state, "to_state")
        if from_state == to_state:
            raise ValueError(f"from_state and to_state must differ, got {from_state} twice")
        cdef int64_t d = self.duration_c(from_state, to_state)
        return None if d < 0 else d

    def history(self):
        """Retained entries as a list of (state, entered_at_ns), oldest first."""
        cdef Py_ssize_t back, slot
        out = []
        for back in range(self.size - 1, -1, -1):
            slot = self.head - back
            if slot < 0:
                slot += self.capacity
            out.append((self.ring_states[slot], self.ring_times[slot]))
        return out

    cpdef void reset(self, int_arg now_ns) except *:
        """Return to the initial state at ``now_ns`` and clear the history."""
        if now_ns < 0:
            raise ValueError(f"now_ns must be >= 0, got {now_ns}")
        self.size = 0
        self.head = self.capacity - 1
        self.state = self.initial_state
        self.entered_at_ns = now_ns
        self.push_c(self.initial_state, now_ns)

    @property
    def history_capacity(self):
        """Number of entries the history ring retains."""
        return self.capacity

    def __repr__(self):
        return (f"StateMachine(state={_NAMES[self.state]}, "
                f"entered_at_ns={self.entered_at_ns})")
