"""Pure-Python reference of arb_core.replay: block checks, the survey walk and the record loop."""

from __future__ import annotations

import struct
from typing import Any

RECORD_HEADER = struct.Struct("<qqBBHI")
KIND_WS_TEXT, KIND_WS_BINARY, KIND_REST_SNAPSHOT, KIND_REST_RESPONSE = 1, 2, 3, 4
MODE_SKIP, MODE_PYTHON, MODE_BOOKS, MODE_SCAN = 0, 1, 2, 3
(STOP_END, STOP_NEED_BLOCK, STOP_RECORD, STOP_WAIT, STOP_FOUND, STOP_SCAN, STOP_ROUTE_ERROR,
 STOP_BUDGET) = range(8)
ROUTE_APPLIED, ROUTE_STALE, ROUTE_OTHER = 0, 1, 2

Fields = tuple[int, int, int, int, bytes, bytes]


def records_of(raw: bytes, count: int) -> list[tuple[Fields, int]]:
    """``(fields, end offset)`` of the first ``count`` records, as far as they can be read."""
    out = []
    at = 0
    for _ in range(count):
        if len(raw) - at < RECORD_HEADER.size:
            break
        recv_ns, wall_ns, market, kind, symbol_len, payload_len = RECORD_HEADER.unpack_from(raw, at)
        symbol_at = at + RECORD_HEADER.size
        end = symbol_at + symbol_len + payload_len
        out.append(((recv_ns, wall_ns, market, kind, raw[symbol_at : symbol_at + symbol_len],
                     raw[symbol_at + symbol_len : end]), end))
        at = end
    return out


def check_block(raw: bytes, count: int, markets: bytes, kinds: bytes) -> int:
    """-1 when ``raw`` holds exactly ``count`` readable records, else the first unreadable one's index."""
    at = 0
    for index in range(count):
        if len(raw) - at < RECORD_HEADER.size:
            return index
        _, _, market, kind, symbol_len, payload_len = RECORD_HEADER.unpack_from(raw, at)
        symbol = raw[at + RECORD_HEADER.size : at + RECORD_HEADER.size + symbol_len]
        end = at + RECORD_HEADER.size + symbol_len + payload_len
        if not symbol.isascii() or end > len(raw) or not markets[market] or not kinds[kind]:
            return index
        at = end
    return -1 if at == len(raw) else count


class BlockSurvey:
    """Reference of ``arb_core.replay.BlockSurvey``."""

    def __init__(self) -> None:
        self.records = 0
        self.first: Fields | None = None
        self.last_ns = 0
        self.symbols: set[tuple[int, bytes]] = set()
        self.responses: list[tuple[int, bytes]] = []

    def add(self, raw: bytes, count: int) -> None:
        records = records_of(raw, count)
        if len(records) < count or any(end > len(raw) for _, end in records):
            raise ValueError("block: a record runs past the block")
        if (records[-1][1] if records else 0) != len(raw):
            raise ValueError("block: bytes after its records")
        for fields, _ in records:
            if self.first is None:
                self.first = fields
            recv_ns, _, market, kind, symbol, payload = fields
            if kind == KIND_REST_RESPONSE:
                self.responses.append((market, payload))
            elif symbol:
                self.symbols.add((market, symbol))
            self.last_ns = recv_ns
        self.records += count


class RecordLoop:
    """Reference of ``arb_core.replay.RecordLoop``: the same stops, over ``router.route``."""

    def __init__(
        self, clock: Any, window_ns: int, origin_ns: int, idle_margin_s: float = 1e-6, pipeline: Any = None,
        scanner: Any = None, max_age_ns: int = 0, symbols: int = 0,
    ) -> None:
        self._clock = clock
        self._window_ns = window_ns
        self._origin_ns = origin_ns
        self._margin_s = idle_margin_s
        self._pipeline = pipeline
        self._scanner = scanner
        self._max_age_ns = max_age_ns
        self._symbols = symbols
        self._markets: dict[int, tuple[int, Any, Any, Any, list[list[int]]]] = {}
        self._records: list[Fields] = []  # pushed, not consumed
        self._ended = False
        self._market_dirty: dict[int, bool] = {}
        self._sym_dirty: set[int] = set()
        self._pending: list[int] = []
        self._stage = 0
        self._messages: dict[int, int] = {}
        self._now = 0
        self._scans = 0
        self._read_open = False  # the last record consumed was not the last of its read
        self._read_start = 0
        self._wait_from: int | None = None  # receive time of the last turn offered to the loop
        self.last_in_buffer = False
        self.symbol_id = -1
        self.found: Any = None
        self.error: BaseException | None = None
        self.count = 0

    def add_market(self, market: int, mode: int, router: Any = None, sync: Any = None, connector: Any = None,
                   slot_ids: Any = ()) -> None:
        self._markets[market] = (mode, router, sync, connector, [list(ids) for ids in slot_ids])

    def push(self, raw: bytes | None, count: int) -> None:
        if raw is None:
            self._ended = True
        else:
            self._records += [fields for fields, _ in records_of(raw, count)]

    @property
    def recv_ns(self) -> int:
        return self._records[0][0]

    def record(self) -> Fields:
        return self._records[0]

    def advance(self) -> None:
        self._finish()

    def drop_scans(self) -> None:
        self._pending = []

    def _finish(self) -> None:
        self._stage = 0
        self._read_open = not self.last_in_buffer
        self._records.pop(0)
        self.count += 1

    def _routed(self) -> list[int]:
        return [m for m, (mode, *_) in self._markets.items() if mode >= MODE_BOOKS]

    def run(self, busy: bool, next_timer_s: float, waited: bool = False, budget: int = 0) -> int:
        self._now = self._clock.now_ns
        if self._wait_from is None:
            self._wait_from = self._now
        for market in self._routed():
            self._market_dirty[market] = bool(self._markets[market][2].batch_updated)
        if self._pipeline is not None:
            self._sym_dirty = set(self._pipeline.marked)
        try:
            return self._run(busy, next_timer_s, waited, budget)
        finally:
            self._clock.now_ns = self._now
            for market in self._routed():
                _, _, sync, connector, _ = self._markets[market]
                sync.batch_updated = self._market_dirty[market]
                connector.messages += self._messages.pop(market, 0)
            if self._pipeline is not None:
                self._pipeline.marked.clear()
                self._pipeline.marked.update(self._sym_dirty)
                if self._scans:
                    self._pipeline.count_scans(self._scans)
                    self._scans = 0

    def _run(self, busy: bool, next_timer_s: float, waited: bool, budget: int) -> int:
        consumed = 0
        while True:
            if self._stage == 1:
                market = self._records[0][2]
                mode = self._markets[market][0]
                self._stage = 0
                if self.last_in_buffer and self._market_dirty[market]:
                    self._market_dirty[market] = False
                    if mode == MODE_SCAN and self._sym_dirty:
                        self._pending = sorted(self._sym_dirty)
                        self._sym_dirty = set()
                        self._stage = 2
                if self._stage == 0:
                    self._finish()
                    consumed += 1
            if self._stage == 2:
                status = self._scan_rest()
                if status is not None:
                    return status
                self._finish()
                consumed += 1
            if budget > 0 and consumed >= budget:
                return STOP_BUDGET
            if not self._records:
                return STOP_END if self._ended else STOP_NEED_BLOCK
            if len(self._records) == 1 and not self._ended:
                return STOP_NEED_BLOCK
            recv_ns, _, market, kind, _, payload = self._records[0]
            following = self._records[1] if len(self._records) > 1 else None
            if not self._read_open:
                self._read_start = recv_ns
            self.last_in_buffer = (
                following is None or following[2] != market or following[0] - self._read_start > self._window_ns
            )
            assert self._wait_from is not None
            if waited:
                waited = False
            elif recv_ns - self._now > self._window_ns or (
                not self._read_open and recv_ns - self._wait_from > self._window_ns
            ):
                self._wait_from = recv_ns
                idle = not busy and next_timer_s > (recv_ns - self._origin_ns) / 1e9 + self._margin_s
                if not idle:
                    return STOP_WAIT
            mode, router, _, _, slots = self._markets.get(market, (MODE_SKIP, None, None, None, []))
            if mode == MODE_SKIP:
                self._now = max(self._now, recv_ns)
                self._finish()
                consumed += 1
                continue
            if mode == MODE_PYTHON or kind not in (KIND_WS_TEXT, KIND_WS_BINARY):
                return STOP_RECORD
            self._now = max(self._now, recv_ns)
            try:
                routed = router.route(payload, recv_ns)
            except Exception as exc:
                self.error = exc
                self._messages[market] = self._messages.get(market, 0) + 1
                self._stage = 1
                return STOP_ROUTE_ERROR
            if routed == ROUTE_OTHER:
                return STOP_RECORD
            self._messages[market] = self._messages.get(market, 0) + 1
            if routed == ROUTE_APPLIED:
                self._market_dirty[market] = True
                if mode == MODE_SCAN and 0 <= router.last_slot < len(slots):
                    self._sym_dirty.update(slots[router.last_slot])
            self._stage = 1

    def _scan_rest(self) -> int | None:
        standing = self._pipeline._standing
        while self._pending:
            symbol_id = self._pending.pop(0)
            if symbol_id in standing:
                self.symbol_id = symbol_id
                return STOP_SCAN
            try:
                found = self._scanner.scan_symbol(symbol_id, self._now, self._max_age_ns)
            except Exception:
                self.symbol_id = symbol_id
                return STOP_SCAN
            self._scans += 1
            if found is not None:
                self.symbol_id = symbol_id
                self.found = found
                return STOP_FOUND
        return None
