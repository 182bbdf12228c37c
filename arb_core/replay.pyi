"""Typed Python API of arb_core.replay (compiled)."""

from collections.abc import Iterable, Sequence
from typing import Any, Final

from arb_core.router import BookRouter
from arb_core.scanner import Opportunity, SpreadScanner

RECORD_HEADER_SIZE: Final[int]  # 24: struct "<qqBBHI"
KIND_WS_TEXT: Final[int]
KIND_WS_BINARY: Final[int]
KIND_REST_SNAPSHOT: Final[int]
KIND_REST_RESPONSE: Final[int]

MODE_SKIP: Final[int]  # no feed for the market: its records are only counted
MODE_PYTHON: Final[int]  # every record of the market is handed to Python
MODE_BOOKS: Final[int]  # websocket records routed in C; the book sink ignores updates
MODE_SCAN: Final[int]  # websocket records routed in C; updates mark scanner symbols

STOP_END: Final[int]  # every record was consumed
STOP_NEED_BLOCK: Final[int]  # push the next block (or None at the end), then run again
STOP_RECORD: Final[int]  # Python feeds the current record, then advance()
STOP_WAIT: Final[int]  # Python sleeps until the current record, then run(waited=True)
STOP_FOUND: Final[int]  # Python hands ``found`` of ``symbol_id`` to the pipeline, then run()
STOP_SCAN: Final[int]  # Python scans ``symbol_id`` itself, then run()
STOP_ROUTE_ERROR: Final[int]  # the router raised ``error`` on the current record; Python handles it, then run()
STOP_BUDGET: Final[int]  # ``budget`` records consumed in this call; run() again

RecordFields = tuple[int, int, int, int, bytes, bytes]
"""``(recv_ns, wall_ns, market code, kind, venue symbol, payload)``."""

def check_block(raw: bytes, count: int, markets: bytes, kinds: bytes) -> int:
    """-1 when ``raw`` holds exactly ``count`` readable records; else the index of the first
    unreadable one (``count`` when bytes are left after them)."""

class BlockSurvey:
    """Count, first record, last receive time, venue symbols and REST responses of checked blocks."""

    @property
    def records(self) -> int: ...
    @property
    def first(self) -> RecordFields | None: ...
    @property
    def last_ns(self) -> int: ...
    @property
    def symbols(self) -> set[tuple[int, bytes]]:
        """``(market, venue_symbol)`` of every record that is not a REST response."""
    @property
    def responses(self) -> list[tuple[int, bytes]]:
        """``(market, payload)`` of REST responses, in order."""
    def __init__(self) -> None: ...
    def add(self, raw: bytes, count: int) -> None:
        """Survey the ``count`` records of the block ``raw``; ValueError, and the survey
        unchanged, when it does not hold exactly them."""

class RecordLoop:
    """Replays checked blocks through the markets' ``BookRouter``\\s and the scanner until Python must act."""

    @property
    def last_in_buffer(self) -> bool: ...
    @property
    def symbol_id(self) -> int: ...
    @property
    def found(self) -> Opportunity | None: ...
    @property
    def error(self) -> BaseException | None: ...
    @property
    def count(self) -> int:
        """Records consumed so far (by the loop and through ``advance``)."""
    @property
    def scans(self) -> int: ...
    @property
    def recv_ns(self) -> int:
        """Receive time of the current record."""
    def __init__(
        self,
        clock: Any,
        window_ns: int,
        origin_ns: int,
        idle_margin_s: float = 1e-6,
        pipeline: Any = None,
        scanner: SpreadScanner | None = None,
        max_age_ns: int = 0,
        symbols: int = 0,
    ) -> None: ...
    def add_market(
        self,
        market: int,
        mode: int,
        router: BookRouter | None = None,
        sync: Any = None,
        connector: Any = None,
        slot_ids: Sequence[Iterable[int]] = (),
    ) -> None:
        """Say how records of ``market`` (its code) are handled."""
    def push(self, raw: bytes | None, count: int) -> None:
        """Append the next checked block (``raw`` None: there is none); at most two are held."""
    def record(self) -> RecordFields:
        """The current record."""
    def advance(self) -> None:
        """Python fed the current record (STOP_RECORD): go past it."""
    def drop_scans(self) -> None:
        """Forget the scans left in this batch (the batch-end consumer raised)."""
    def run(self, busy: bool, next_timer_s: float, waited: bool = False, budget: int = 0) -> int:
        """Replay until Python has work; a STOP_* value."""
