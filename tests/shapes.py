"""Structural comparison of decoded messages: same keys in the same order, same value types.

Used by the simulator conformance tests: a simulated venue's message must have the shape
of the venue's recorded one, whatever the values. ``shape_differences(actual, expected)``
lists every difference as ``$.path: ...``; ``assert_same_shape`` fails with that list.

* Objects: the keys present in both must come in the same order; a key on one side only
  is a difference unless its path is in ``optional`` (documented fields that one era or
  one kind of push carries and another does not, e.g. ``$.result.full``).
* Arrays: every element of ``actual`` is compared with the first element of ``expected``
  (venue arrays are homogeneous); an empty side compares as "any element".
  Arrays named in ``tuples`` (paths with indices written ``[]``, e.g. ``$.data.asks``)
  hold fixed-position tuples such as ``[price, vol, count]``: each actual element must
  match, position by position, at least one expected element of the same length.
* Scalars: JSON types must match: str, int, float, bool, null (int and float differ,
  since a venue that writes sizes as integers must keep doing so).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

_INDEX = re.compile(r"\[\d+\]")


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    for kind, name in ((int, "int"), (float, "float"), (str, "str"), (list, "array"), (dict, "object")):
        if isinstance(value, kind):
            return name
    raise TypeError(f"not a decoded JSON value: {value!r}")


def shape_differences(
    actual: Any, expected: Any, *, optional: Collection[str] = (), tuples: Collection[str] = (), path: str = "$"
) -> list[str]:
    """Every structural difference between two decoded JSON documents (empty when alike)."""
    kind, want = json_type(actual), json_type(expected)
    if kind != want:
        return [f"{path}: {kind} where {want} was expected"]
    if kind == "object":
        return _object_differences(actual, expected, optional, tuples, path)
    if kind == "array" and actual and expected:
        out: list[str] = []
        if _INDEX.sub("[]", path) in tuples:
            for i, item in enumerate(actual):
                out += _tuple_differences(item, expected, optional, tuples, f"{path}[{i}]")
            return out
        for i, item in enumerate(actual):
            out += shape_differences(item, expected[0], optional=optional, tuples=tuples, path=f"{path}[{i}]")
        return out
    return []


def _tuple_differences(
    item: Any, expected: list[Any], optional: Collection[str], tuples: Collection[str], path: str
) -> list[str]:
    """``item`` against the expected elements of its length; alike if any of them matches."""
    if json_type(item) != "array":
        return [f"{path}: {json_type(item)} where a tuple array was expected"]
    candidates = [e for e in expected if json_type(e) == "array" and len(e) == len(item)]
    if not candidates:
        return [f"{path}: a tuple of {len(item)} items, expected lengths {sorted({len(e) for e in expected})}"]
    best: list[str] = []
    for i, candidate in enumerate(candidates):
        out = [
            d
            for j, (got, want) in enumerate(zip(item, candidate))
            for d in shape_differences(got, want, optional=optional, tuples=tuples, path=f"{path}[{j}]")
        ]
        if not out:
            return []
        if i == 0:
            best = out
    return best


def _object_differences(
    actual: dict[str, Any], expected: dict[str, Any], optional: Collection[str], tuples: Collection[str], path: str
) -> list[str]:
    out = [
        f"{path}.{key}: {'unexpected key' if key in actual else 'missing key'}"
        for key in [*actual, *(k for k in expected if k not in actual)]
        if (key in actual) != (key in expected) and f"{path}.{key}" not in optional
    ]
    common_actual = [k for k in actual if k in expected]
    common_expected = [k for k in expected if k in actual]
    if common_actual != common_expected:
        out.append(f"{path}: keys in order {common_actual}, expected {common_expected}")
    for key in common_actual:
        out += shape_differences(actual[key], expected[key], optional=optional, tuples=tuples, path=f"{path}.{key}")
    return out


def assert_same_shape(
    actual: Any, expected: Any, *, optional: Collection[str] = (), tuples: Collection[str] = ()
) -> None:
    """Fail listing every difference when ``actual`` is not shaped like ``expected``."""
    differences = shape_differences(actual, expected, optional=optional, tuples=tuples)
    assert not differences, "shape differs:\n  " + "\n  ".join(differences)
