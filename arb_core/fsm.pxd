# C-level interface of arb_core.fsm: the opportunity lifecycle as a transition table.
from libc.stdint cimport int64_t

from arb_core.fixed cimport int_arg

# Values match arb.types.ArbitrageState.
cpdef enum:
    IDLE = 0
    DETECTING = 1
    OPPORTUNITY_FOUND = 2
    EXECUTING = 3
    COMPLETED = 4
    FAILED = 5
    RECOVERING = 6
    N_STATES = 7

cdef extern from *:
    """
    /* arb_fsm_legal[from][to]: 1 if the transition is allowed. Rows/columns:
       IDLE, DETECTING, OPPORTUNITY_FOUND, EXECUTING, COMPLETED, FAILED, RECOVERING. */
    static const unsigned char arb_fsm_legal[7][7] = {
        /* IDLE              */ {0, 1, 0, 0, 0, 0, 0},
        /* DETECTING         */ {1, 0, 1, 0, 0, 0, 0},
        /* OPPORTUNITY_FOUND */ {1, 1, 0, 1, 0, 0, 0},
        /* EXECUTING         */ {0, 0, 0, 0, 1, 1, 1},
        /* COMPLETED         */ {1, 1, 0, 0, 0, 0, 0},
        /* FAILED            */ {1, 1, 0, 0, 0, 0, 1},
        /* RECOVERING        */ {1, 1, 0, 0, 1, 1, 0},
    };
    """
    const unsigned char arb_fsm_legal[7][7]


cdef inline bint transition_allowed_c(int from_state, int to_state) noexcept nogil:
    """True if from_state -> to_state is legal; out-of-range states are never legal."""
    if <unsigned int>from_state >= N_STATES or <unsigned int>to_state >= N_STATES:
        return False
    return arb_fsm_legal[from_state][to_state]


cdef class StateMachine:
    """Opportunity lifecycle state with a ring of recent (state, entered_at_ns) entries."""
    cdef readonly int state
    cdef readonly int initial_state
    cdef readonly int64_t entered_at_ns
    cdef int* ring_states
    cdef int64_t* ring_times
    cdef Py_ssize_t capacity
    cdef Py_ssize_t head          # slot of the newest entry
    cdef Py_ssize_t size          # entries held, <= capacity

    cdef void push_c(self, int state, int64_t now_ns) noexcept
    cpdef int transition(self, int_arg to_state, int_arg now_ns) except -1
    cpdef bint can_transition(self, int_arg to_state) except -1
    cpdef int64_t time_in_state_ns(self, int_arg now_ns) except -1
    cdef int64_t duration_c(self, int from_state, int to_state) noexcept
    cpdef void reset(self, int_arg now_ns) except *
