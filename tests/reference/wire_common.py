"""Pure-Python reference of arb_core.wire.common and the rules shared by the decoders.

The readable spec of the compiled decoders: the stdlib ``json`` parser (strict UTF-8,
no NaN/Infinity, nesting at most MAX_DEPTH) with numbers kept as their text, exact
fixed-point conversion with Decimal, and the same acceptance rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from collections.abc import Callable
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


MISSING = object()


def _no_constant(name: str) -> NoReturn:
    fail(f"{name} is not JSON")


def _depth(value: object) -> int:
    if isinstance(value, Obj):
        return 1 + max((_depth(v) for _, v in value), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def load_json(frame: bytes) -> object:
    """Parse a whole frame; every syntax, encoding or depth problem is a WireError."""
    try:
        text = bytes(frame).decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"invalid UTF-8: {exc}")
    try:
        doc = json.loads(
            text,
            parse_int=Num,
            parse_float=Num,
            parse_constant=_no_constant,
            object_pairs_hook=Obj,
        )
    except (json.JSONDecodeError, RecursionError) as exc:
        fail(f"invalid JSON: {exc}")
    if _depth(doc) > MAX_DEPTH:
        fail(f"nested deeper than {MAX_DEPTH}")
    return doc


def member(obj: object, key: str, where: str) -> object:
    """Value of ``key`` in a JSON object (MISSING when absent); a repeated key is an error."""
    if not isinstance(obj, Obj):
        fail(f"{where}: expected an object")
    found = [v for k, v in obj if k == key]
    if len(found) > 1:
        fail(f"{where}.{key}: appears twice")
    return found[0] if found else MISSING


def pairs(obj: object, where: str) -> Obj:
    """The (key, value) pairs of a JSON object."""
    if not isinstance(obj, Obj):
        fail(f"{where}: expected an object")
    return obj


def required(value: object, where: str) -> object:
    if value is MISSING:
        fail(f"{where}: required field missing")
    return value


def string(value: object, where: str) -> str:
    if not isinstance(value, str) or isinstance(value, Num):
        fail(f"{where}: expected a string")
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


def fixed(text: str, decimals: int, units: int, where: str) -> int:
    """Exact DIGITS['.'DIGITS] -> value * 10**decimals / units, which must be a whole int64."""
    whole, dot, frac = text.partition(".")
    if not whole or not all("0" <= c <= "9" for c in whole + frac) or (dot and not frac):
        fail(f"{where}: malformed number {text!r}")
    with localcontext(Context(prec=len(text) + decimals + 2)):
        scaled = Decimal(text).scaleb(decimals)
    if scaled != scaled.to_integral_value():
        fail(f"{where}: {text} has more decimals than {decimals}")
    value = int(scaled)
    if value > INT64_MAX:
        fail(f"{where}: {text} does not fit int64")
    if value % units:
        fail(f"{where}: {text} is not a multiple of {units}e-{decimals}")
    return value // units


def price(text: str, scale: Scale, where: str) -> int:
    ticks = fixed(text, scale.price_decimals, scale.tick_units, where)
    if ticks == 0:
        fail(f"{where}: price must be > 0")
    return ticks


def size(text: str, scale: Scale, where: str) -> int:
    return fixed(text, scale.size_decimals, scale.lot_units, where)


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
    """``{price_key: "price", size_key: integer}`` (sizes in whole contracts)."""

    def read(level: object, scale: Scale, where: str) -> tuple[int, int]:
        at_p, at_s = f"{where}.{price_key}", f"{where}.{size_key}"
        p = string(required(member(level, price_key, where), at_p), at_p)
        s = number_text(required(member(level, size_key, where), at_s), at_s)
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
