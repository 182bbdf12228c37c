"""Pure-Python reference of arb_core.wire.common and the rules shared by the decoders.

The readable spec of the compiled decoders: the stdlib ``json`` parser (strict UTF-8,
no NaN/Infinity, nesting at most MAX_DEPTH) with numbers kept as their text, exact
fixed-point conversion with Decimal, and the same acceptance rules. Like the compiled
decoders, which compare and convert them byte by byte, it refuses a JSON escape in a key
of an object it reads and in a string value it reads; escapes in values it steps over
are fine. ``JsonPrefix`` reads only a frame's first members, the way the routing helpers
(classify, frame symbol) do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from typing import NoReturn

MAX_DEPTH = 64
INT64_MAX = 2**63 - 1

BID, ASK = 0, 1

OTHER = 0
BOOK_UPDATE = 1
SUBSCRIPTION = 2
PONG = 3
ERROR = 4


class WireError(ValueError):
    """The reference's twin of arb_core.wire.common.WireError."""


def fail(message: str) -> NoReturn:
    raise WireError(message)


@dataclass(frozen=True)
class Scale:
    """tick = tick_units * 10**-price_decimals, lot = lot_units * 10**-size_decimals."""

    price_decimals: int
    tick_units: int
    size_decimals: int
    lot_units: int
    symbol: bytes | None = None
    floor_sizes: bool = False  # sizes finer than the lot are rounded down to it, not refused


@dataclass
class Decoded:
    """What a decoder leaves in a DeltaBatch: levels (side, price_ticks, size_lots) + header."""

    rows: list[tuple[int, int, int]] = field(default_factory=list)
    first_update_id: int = 0
    last_update_id: int = 0
    event_time_ms: int = 0
    is_snapshot: bool = False

    def levels(self) -> list[tuple[int, int, int]]:
        return list(self.rows)

    def header(self) -> tuple[int, int, int, bool]:
        return self.first_update_id, self.last_update_id, self.event_time_ms, self.is_snapshot


class Num(str):
    """A JSON number, kept as its source text."""


class Obj(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs in order, duplicates kept."""


class Escaped(str):
    """A JSON string (key or value) written with at least one escape, unescaped."""


MISSING = object()


def _no_constant(name: str) -> NoReturn:
    fail(f"{name} is not JSON")


def _depth(value: object) -> int:
    if isinstance(value, Obj):
        return 1 + max((_depth(v) for _, v in value), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# a string token of valid JSON text, where every '"' outside strings opens one
_STRING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def _tag_strings(text: str) -> str:
    """Valid JSON text with every string's content prefixed by "e" (written with an escape)
    or "p" (plain), for ``_untag``."""
    return _STRING_TOKEN.sub(lambda m: ('"e' if "\\" in m.group() else '"p') + m.group()[1:], text)


def _untag(value: object) -> object:
    """The document of ``_tag_strings`` text with the tags taken off, escaped strings as Escaped."""
    if isinstance(value, Obj):
        return Obj((_untag(k), _untag(v)) for k, v in value)
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if isinstance(value, str) and not isinstance(value, Num):
        return Escaped(value[1:]) if value[0] == "e" else value[1:]
    return value


def _parse(text: str) -> object:
    return json.loads(
        text,
        parse_int=Num,
        parse_float=Num,
        parse_constant=_no_constant,
        object_pairs_hook=Obj,
    )


def load_json(frame: bytes) -> object:
    """Parse a whole frame; every syntax, encoding or depth problem is a WireError. Strings
    written with an escape come back as Escaped."""
    try:
        text = bytes(frame).decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"invalid UTF-8: {exc}")
    try:
        doc = _parse(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        fail(f"invalid JSON: {exc}")
    if _depth(doc) > MAX_DEPTH:
        fail(f"nested deeper than {MAX_DEPTH}")
    if "\\" in text:  # only an escape makes an Escaped string
        doc = _untag(_parse(_tag_strings(text)))
    return doc


def _plain_keys(obj: object, where: str) -> Obj:
    """A JSON object that is read: none of its keys may be written with an escape."""
    if not isinstance(obj, Obj):
        fail(f"{where}: expected an object")
    for k, _ in obj:
        if isinstance(k, Escaped):
            fail(f"{where}: escape in the key {k!r}")
    return obj


def member(obj: object, key: str, where: str) -> object:
    """Value of ``key`` in a JSON object (MISSING when absent); a repeated key is an error."""
    found = [v for k, v in _plain_keys(obj, where) if k == key]
    if len(found) > 1:
        fail(f"{where}.{key}: appears twice")
    return found[0] if found else MISSING


def pairs(obj: object, where: str) -> Obj:
    """The (key, value) pairs of a JSON object."""
    return _plain_keys(obj, where)


def required(value: object, where: str) -> object:
    if value is MISSING:
        fail(f"{where}: required field missing")
    return value


def string(value: object, where: str) -> str:
    """A string value that is read, so written without escapes."""
    if not isinstance(value, str) or isinstance(value, Num):
        fail(f"{where}: expected a string")
    if isinstance(value, Escaped):
        fail(f"{where}: escape in the string {value!r}")
    return value


def array(value: object, where: str) -> list[object]:
    if not isinstance(value, list) or isinstance(value, Obj):
        fail(f"{where}: expected an array")
    return value


def number_text(value: object, where: str) -> str:
    if not isinstance(value, Num):
        fail(f"{where}: expected a number")
    return str(value)


def uint_text(text: str, where: str) -> int:
    """Plain ASCII digits -> int that fits int64."""
    if not text or not all("0" <= c <= "9" for c in text):
        fail(f"{where}: malformed integer {text!r}")
    value = int(text)
    if value > INT64_MAX:
        fail(f"{where}: {text} does not fit int64")
    return value


def json_uint(value: object, where: str) -> int:
    return uint_text(number_text(value, where), where)


def fixed(text: str, decimals: int, units: int, where: str, floor: bool = False) -> int:
    """Exact DIGITS['.'DIGITS] -> value * 10**decimals / units, which must be a whole int64
    (``floor``: rounded down to one, what is finer dropped)."""
    whole, dot, frac = text.partition(".")
    if not whole or not all("0" <= c <= "9" for c in whole + frac) or (dot and not frac):
        fail(f"{where}: malformed number {text!r}")
    with localcontext(Context(prec=len(text) + decimals + 2)):
        scaled = Decimal(text).scaleb(decimals)
    if scaled != scaled.to_integral_value() and not floor:
        fail(f"{where}: {text} has more decimals than {decimals}")
    value = int(scaled)  # toward zero: down, for a number with no sign
    if value > INT64_MAX:
        fail(f"{where}: {text} does not fit int64")
    if value % units and not floor:
        fail(f"{where}: {text} is not a multiple of {units}e-{decimals}")
    return value // units


def price(text: str, scale: Scale, where: str) -> int:
    ticks = fixed(text, scale.price_decimals, scale.tick_units, where)
    if ticks == 0:
        fail(f"{where}: price must be > 0")
    return ticks


def size(text: str, scale: Scale, where: str) -> int:
    return fixed(text, scale.size_decimals, scale.lot_units, where, scale.floor_sizes)


def check_symbol(symbol: bytes | None, scale: Scale, where: str) -> None:
    if scale.symbol is not None and symbol != scale.symbol:
        fail(f"{where}: {symbol!r} is not {scale.symbol!r}")


def expect_string(doc: object, key: str, want: str) -> str:
    """A required string member that must equal ``want`` (a channel, an event)."""
    value = string(required(member(doc, key, ""), key), key)
    if value != want:
        fail(f"{key} is not {want}")
    return value


# ---------------------------------------------------------------------------
# Book levels: the shared list, array and object shapes

Level = Callable[[object, Scale, str], tuple[int, int]]


def array_level(quoted: bool, optional: int = 0) -> Level:
    """``[price, size]`` (strings when ``quoted``, else bare numbers) + ``optional`` numbers."""

    def read(level: object, scale: Scale, where: str) -> tuple[int, int]:
        items = array(level, where)
        if not 2 <= len(items) <= 2 + optional:
            fail(f"{where}: expected [price, size] and at most {optional} more numbers")
        texts = [string(v, where) if quoted and i < 2 else number_text(v, where)
                 for i, v in enumerate(items)]
        return price(texts[0], scale, where), size(texts[1], scale, where)

    return read


def object_level(price_key: str, size_key: str) -> Level:
    """``{price_key: "price", size_key: integer or "decimal"}`` (sizes in contracts)."""

    def read(level: object, scale: Scale, where: str) -> tuple[int, int]:
        at_p, at_s = f"{where}.{price_key}", f"{where}.{size_key}"
        p = string(required(member(level, price_key, where), at_p), at_p)
        value = required(member(level, size_key, where), at_s)
        if isinstance(value, str) and not isinstance(value, Num):
            s = string(value, at_s)
        else:
            s = number_text(value, at_s)
            uint_text(s, at_s)  # a JSON integer
        return price(p, scale, at_p), size(s, scale, at_s)

    return read


def levels(out: Decoded, value: object, side: int, scale: Scale, read: Level, where: str) -> None:
    """Append every level of a JSON list to ``out.rows``."""
    for i, level in enumerate(array(value, where)):
        out.rows.append((side, *read(level, scale, f"{where}[{i}]")))


def sides_in_order(obj: object, sides: dict[str, int]) -> list[tuple[str, int]]:
    """The side keys of ``obj`` in frame order (levels are applied in that order)."""
    return [(k, sides[k]) for k, _ in pairs(obj, "") if k in sides]


# ---------------------------------------------------------------------------
# Reading a frame's first members only (the routing helpers)

_BLANKS = re.compile(rb"[ \t\n\r]*")
# a string token: plain bytes (UTF-8 checked afterwards), or the JSON escapes
_STRING = re.compile(rb'"((?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*)"')
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = (b"true", b"false", b"null")


class JsonPrefix:
    """One JSON object read member by member from the start of a frame.

    What a routing helper (classify, frame symbol) sees: every key it passes and every
    value it reads or steps over must be valid JSON (grammar, UTF-8, no raw control
    bytes, at most MAX_DEPTH open containers), but nothing after the member where its
    caller stops is looked at, so a frame broken further on still routes. Keys and the
    strings read as values are compared byte for byte: an escape in them is refused.
    """

    def __init__(self, frame: bytes) -> None:
        self.data = bytes(frame)
        self.pos = 0
        self.depth = 0

    def _next_byte(self) -> int:
        """The next non-blank byte (the cursor left on it); fails at the end of the frame."""
        match = _BLANKS.match(self.data, self.pos)
        assert match is not None
        self.pos = match.end()
        if self.pos >= len(self.data):
            fail("frame ends inside the document")
        return self.data[self.pos]

    def _string(self, plain: bool) -> bytes:
        match = _STRING.match(self.data, self.pos)
        if match is None:
            fail(f"malformed string at byte {self.pos}")
        raw = match.group(1)
        if plain and b"\\" in raw:
            fail(f"escape in a plain string at byte {self.pos}")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            fail(f"invalid UTF-8 in the string at byte {self.pos}")
        self.pos = match.end()
        return raw

    def _enter(self, opening: int) -> None:
        if self._next_byte() != opening:
            fail(f"expected {chr(opening)!r} at byte {self.pos}")
        if self.depth + 1 > MAX_DEPTH:
            fail(f"nested deeper than {MAX_DEPTH}")
        self.depth += 1
        self.pos += 1

    def open_object(self) -> None:
        """Enter the object the cursor stands before (the frame itself or a member's value)."""
        self._enter(ord("{"))

    def keys(self) -> Iterator[bytes]:
        """Keys of the object just opened, in frame order; the caller reads or skips each value
        before asking for the next key. Ends after the closing brace."""
        first = True
        while True:
            c = self._next_byte()
            if c == ord("}"):
                self.pos += 1
                self.depth -= 1
                return
            if not first:
                if c != ord(","):
                    fail(f"expected ',' or '}}' at byte {self.pos}")
                self.pos += 1
                self._next_byte()
            first = False
            key = self._string(plain=True)
            if self._next_byte() != ord(":"):
                fail(f"expected ':' at byte {self.pos}")
            self.pos += 1
            yield key

    def seek(self, name: bytes) -> bool:
        """Skip members of the object just opened up to the first key ``name`` (True, cursor on
        its value); False once the object ended without it."""
        for key in self.keys():
            if key == name:
                return True
            self.skip()
        return False

    def plain_string(self) -> bytes:
        """A string value without escapes, as its raw bytes."""
        if self._next_byte() != ord('"'):
            fail(f"expected a string at byte {self.pos}")
        return self._string(plain=True)

    def is_null(self) -> bool:
        """Whether the value at the cursor starts like ``null`` (not consumed)."""
        return self._next_byte() == ord("n")

    def skip(self) -> None:
        """Validate and step over one value of any type."""
        c = self._next_byte()
        if c in (ord("{"), ord("[")):
            self._enter(c)
            closing = ord("}") if c == ord("{") else ord("]")
            if self._next_byte() == closing:
                self.pos += 1
            else:
                while True:
                    if closing == ord("}"):
                        if self._next_byte() != ord('"'):
                            fail(f"expected a key at byte {self.pos}")
                        self._string(plain=False)
                        if self._next_byte() != ord(":"):
                            fail(f"expected ':' at byte {self.pos}")
                        self.pos += 1
                    self.skip()
                    c = self._next_byte()
                    self.pos += 1
                    if c == closing:
                        break
                    if c != ord(","):
                        fail(f"expected ',' or {chr(closing)!r} at byte {self.pos - 1}")
            self.depth -= 1
        elif c == ord('"'):
            self._string(plain=False)
        else:
            for word in _LITERALS:
                if self.data.startswith(word, self.pos):
                    self.pos += len(word)
                    return
            match = _NUMBER.match(self.data, self.pos)
            if match is None:
                fail(f"unexpected byte {c:#x} at byte {self.pos}")
            self.pos = match.end()
