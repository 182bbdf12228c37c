"""arb_core.latency against tests/reference/latency.py and the exact sorted percentiles."""

from __future__ import annotations

import array
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference.latency as ref
from arb_core.latency import (
    DEFAULT_HIGHEST_NS,
    DEFAULT_LOWEST_NS,
    DEFAULT_PRECISION_BITS,
    LatencyHistogram,
)

# --- bad inputs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lowest_ns": 0}, "lowest_ns must be >= 1, got 0"),
        ({"lowest_ns": -5}, "lowest_ns must be >= 1, got -5"),
        ({"lowest_ns": 100, "highest_ns": 100}, r"highest_ns must be in 101\.\.\d+, got 100"),
        ({"highest_ns": 1 << 62}, rf"highest_ns must be in 101\.\.\d+, got {1 << 62}"),
        ({"lowest_ns": (1 << 62) - 1}, rf"lowest_ns must be below {(1 << 62) - 1}, got {(1 << 62) - 1}"),
        # lowest_ns + 1 overflowed int64 here and reported a range from -2**63
        ({"lowest_ns": 2**63 - 1, "highest_ns": 5}, rf"lowest_ns must be below {(1 << 62) - 1}, got {2**63 - 1}"),
        ({"precision_bits": 0}, r"precision_bits must be in 1\.\.14, got 0"),
        ({"precision_bits": 15}, r"precision_bits must be in 1\.\.14, got 15"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatencyHistogram(**kwargs)


def test_negative_value_is_rejected_and_not_recorded() -> None:
    h = LatencyHistogram()
    with pytest.raises(ValueError, match="value_ns must be >= 0, got -1"):
        h.record(-1)
    with pytest.raises(OverflowError):
        h.record(1 << 63)
    with pytest.raises(TypeError):
        h.record(None)  # type: ignore[arg-type]
    assert h.count == 0 and h.buckets() == []


def test_record_many_validates_everything_before_recording() -> None:
    h = LatencyHistogram()
    with pytest.raises(ValueError, match=r"values_ns\[2\] must be >= 0, got -7"):
        h.record_many(np.array([500, 600, -7, 800], dtype=np.int64))
    assert h.count == 0
    with pytest.raises(ValueError):
        h.record_many(np.array([500, 600], dtype=np.int32))  # wrong item type
    with pytest.raises(ValueError):
        h.record_many(np.arange(10, dtype=np.int64)[::2])  # not contiguous
    with pytest.raises(TypeError):
        h.record_many(None)  # type: ignore[arg-type]
    assert h.count == 0


@pytest.mark.parametrize("p", [-0.001, 100.001, math.nan, math.inf, -math.inf])
def test_percentile_out_of_range_is_rejected(p: float) -> None:
    h = LatencyHistogram()
    h.record(1_000)
    with pytest.raises(ValueError, match="p must be in"):
        h.percentile(p)
    with pytest.raises(ValueError, match="p must be in"):
        h.percentiles([50.0, p])


def test_merge_requires_the_same_configuration() -> None:
    h = LatencyHistogram()
    for other in (
        LatencyHistogram(lowest_ns=50),
        LatencyHistogram(highest_ns=10**9),
        LatencyHistogram(precision_bits=8),
    ):
        other.record(1_000)
        with pytest.raises(ValueError, match="cannot merge a histogram configured as"):
            h.merge(other)
    with pytest.raises(TypeError):
        h.merge(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        h.merge(ref.LatencyHistogram())  # type: ignore[arg-type]
    assert h.count == 0


@pytest.mark.parametrize(
    "state",
    [
        (1, 0, 100, 100, 100, [(-1, 1)]),
        (1, 0, 100, 100, 100, [(10**9, 1)]),
        (1, 0, 100, 100, 100, [(0, 0)]),
        (2, 0, 100, 100, 200, [(0, 1)]),
        (1, 2, 100, 100, 100, [(0, 1)]),
        (1, 0, -5, 100, 100, [(0, 1)]),
        (1, 0, 100, 10**12, 100, [(0, 1)]),
        (0, 0, 0, 0, 0, [(0, 2**63 - 1), (1, 2**63 - 1), (2, 2)]),  # sums to 2**64: 0 if it wrapped
        (2**64, 0, 100, 100, 100, [(0, 2**63 - 1), (1, 2**63 - 1), (2, 2)]),  # agrees, but past int64
        (1, 0, 100, 100, -5, [(0, 1)]),  # a negative total would give a negative mean
    ],
)
def test_corrupt_pickle_state_is_rejected_and_leaves_the_histogram_as_it_was(state: tuple[object, ...]) -> None:
    h = LatencyHistogram()
    h.record(1_000)
    before = h.to_dict()
    with pytest.raises(ValueError, match="pickled"):
        h.__setstate__(state)
    assert h.to_dict() == before


def test_a_pickled_count_that_is_not_an_integer_is_refused_not_truncated() -> None:
    h = LatencyHistogram()
    with pytest.raises(TypeError):
        h.__setstate__((1, 0, 100, 100, 100, [(0, 1.9)]))
    with pytest.raises(TypeError):
        h.__setstate__((1.0, 0, 100, 100, 100, [(0, 1)]))
    assert h.count == 0


def test_a_merge_whose_count_would_pass_int64_changes_nothing() -> None:
    full, other = LatencyHistogram(), LatencyHistogram()
    full.__setstate__((2**63 - 1, 0, 100, 100, 100, [(0, 2**63 - 1)]))
    other.record(5)
    before = full.to_dict()
    with pytest.raises(OverflowError, match="merged count passes int64"):
        full.merge(other)
    assert full.to_dict() == before and full.count == 2**63 - 1


TOP = 2**63 - 1


def near_full(config: tuple[int, int, int], room: int) -> tuple[LatencyHistogram, ref.LatencyHistogram]:
    """Twin histograms ``room`` values short of the int64 count, all of them at ``lowest_ns``."""
    lowest, _, bits = config
    count = TOP - room
    compiled = LatencyHistogram(*config)
    compiled.__setstate__((count, 0, lowest, lowest, 0, [(0, count)]))
    reference = ref.LatencyHistogram(*config)
    reference.counts = {ref.bucket_index(lowest, bits): count}
    reference.count, reference.min, reference.max = count, lowest, lowest
    return compiled, reference


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_a_record_whose_count_would_pass_int64_changes_nothing(impl: str) -> None:
    """At the int64 count the count and its bucket wrapped negative, and the histogram's own
    pickle was then refused."""
    compiled, reference = near_full((100, 10**6, 7), 0)
    h = compiled if impl == "compiled" else reference
    before = h.to_dict()
    with pytest.raises(OverflowError, match=rf"count passes int64: {TOP} \+ 1"):
        h.record(5)
    assert h.to_dict() == before and h.count == TOP


def test_a_record_many_whose_count_would_pass_int64_records_nothing() -> None:
    h, _ = near_full((100, 10**6, 7), 2)
    before = h.to_dict()
    with pytest.raises(OverflowError, match=rf"count passes int64: {TOP - 2} \+ 3"):
        h.record_many(np.array([100, 200, 300], dtype=np.int64))
    assert h.to_dict() == before
    h.record_many(np.array([], dtype=np.int64))
    h.record_many(np.array([100, 10**7], dtype=np.int64))  # exactly to the limit
    assert (h.count, h.overflow_count, h.max) == (TOP, 1, 10**6)
    assert pickle.loads(pickle.dumps(h)).to_dict() == h.to_dict()


# --- behaviour ------------------------------------------------------------------------


def test_defaults_cover_100ns_to_60s_at_better_than_one_percent() -> None:
    h = LatencyHistogram()
    assert (DEFAULT_LOWEST_NS, DEFAULT_HIGHEST_NS, DEFAULT_PRECISION_BITS) == (100, 60 * 10**9, 7)
    assert h.config() == (100, 60_000_000_000, 7)
    base = ref.bucket_index(100, 7)
    assert h.bucket_count == ref.bucket_index(60_000_000_000, 7) - base + 1


def test_empty_histogram_reports_zeros() -> None:
    h = LatencyHistogram()
    assert (h.count, h.min, h.max, h.mean, h.overflow_count) == (0, 0, 0, 0.0, 0)
    assert h.percentile(50) == 0 and h.percentiles([0, 100]) == [0, 0]
    assert h.to_dict() == ref.LatencyHistogram().to_dict()


def test_clamping_and_overflow_count() -> None:
    h = LatencyHistogram()
    for v in (0, 7, 99, 100, 60_000_000_000, 60_000_000_001, 10**15):
        h.record(v)
    assert h.count == 7
    assert h.overflow_count == 2
    assert (h.min, h.max) == (100, 60_000_000_000)
    assert h.buckets() == [(100, 4), (60_000_000_000, 3)]
    assert h.percentile(0) == 100 and h.percentile(100) == 60_000_000_000


def test_values_below_256_are_exact_and_buckets_report_their_highest_value() -> None:
    h = LatencyHistogram()
    h.record(150)
    h.record(255)
    h.record(256)  # first 2-ns-wide bucket: 256..257
    h.record(1_000)  # bucket 1000..1003
    assert h.buckets() == [(150, 1), (255, 1), (257, 1), (1_003, 1)]
    assert h.percentile(100) == 1_000  # capped at the recorded maximum


def test_reset_clears_but_keeps_configuration() -> None:
    h = LatencyHistogram(200, 10**9, 5)
    h.record_many(np.arange(100, 100_000, 7, dtype=np.int64))
    h.reset()
    assert h.to_dict() == LatencyHistogram(200, 10**9, 5).to_dict()
    h.record(5_000)
    assert h.buckets() == [(ref.bucket_highest(ref.bucket_index(5_000, 5), 5), 1)]


def test_pickle_round_trip() -> None:
    h = LatencyHistogram(150, 10**10, 9)
    h.record_many(np.array([10, 10_000, 123_456, 10**11], dtype=np.int64))
    restored = pickle.loads(pickle.dumps(h))
    assert restored.config() == h.config()
    assert restored.to_dict() == h.to_dict()
    assert restored.percentiles([0, 50, 99, 100]) == h.percentiles([0, 50, 99, 100])
    empty = pickle.loads(pickle.dumps(LatencyHistogram()))
    assert empty.to_dict() == LatencyHistogram().to_dict()


def test_record_many_accepts_any_contiguous_int64_buffer() -> None:
    a = LatencyHistogram()
    b = LatencyHistogram()
    values = [120, 5_000, 77_777, 10**10]
    a.record_many(array.array("q", values))
    for v in values:
        b.record(v)
    assert a.to_dict() == b.to_dict()
    assert "p50=" in repr(a)


# --- bucket math ----------------------------------------------------------------------


@given(v=st.integers(1, (1 << 62) - 1), bits=st.integers(1, 14))
def test_bucket_math_precision_bound(v: int, bits: int) -> None:
    i = ref.bucket_index(v, bits)
    high = ref.bucket_highest(i, bits)
    assert v <= high
    assert high - v <= v >> bits  # width < lower bound / 2**bits
    assert ref.bucket_index(high, bits) == i
    assert ref.bucket_index(high + 1, bits) == i + 1


# --- differential against the reference -----------------------------------------------

configs = st.one_of(
    st.just((DEFAULT_LOWEST_NS, DEFAULT_HIGHEST_NS, DEFAULT_PRECISION_BITS)),
    st.tuples(st.integers(1, 5_000), st.integers(1, 10**12), st.integers(1, 10)).map(
        lambda c: (c[0], c[0] + c[1], c[2])
    ),
)
values_ns = st.one_of(
    st.integers(0, 2_000),
    st.integers(0, 10**7),
    st.integers(0, 10**13),
    st.integers(0, (1 << 63) - 1),
)
ps = st.lists(st.floats(0.0, 100.0), max_size=8)


def feed(config: tuple[int, int, int], values: list[int]) -> tuple[LatencyHistogram, ref.LatencyHistogram]:
    c = LatencyHistogram(*config)
    r = ref.LatencyHistogram(*config)
    for v in values:
        c.record(v)
        r.record(v)
    return c, r


@settings(max_examples=300)
@given(config=configs, values=st.lists(values_ns, max_size=200), queries=ps)
def test_random_streams_match_reference_exactly(
    config: tuple[int, int, int], values: list[int], queries: list[float]
) -> None:
    c, r = feed(config, values)
    assert c.to_dict() == r.to_dict()
    assert c.percentiles(queries) == r.percentiles(queries)
    for p in queries:
        assert c.percentile(p) == r.percentile(p)


@settings(max_examples=300)
@given(
    config=configs,
    values=st.lists(st.integers(0, 10**12), min_size=1, max_size=300),
    queries=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=8),
)
def test_percentile_within_precision_of_exact_sorted_values(
    config: tuple[int, int, int], values: list[int], queries: list[float]
) -> None:
    lowest, highest, bits = config
    c, _ = feed(config, values)
    for p in queries:
        exact = ref.exact_percentile(values, p, lowest, highest)
        got = c.percentile(p)
        assert exact <= got <= exact + (exact >> bits)
        if bits >= 7:
            assert got <= exact * 1.01


@settings(max_examples=200)
@given(config=configs, a=st.lists(values_ns, max_size=100), b=st.lists(values_ns, max_size=100))
def test_merge_equals_recording_both_streams(
    config: tuple[int, int, int], a: list[int], b: list[int]
) -> None:
    ha, ra = feed(config, a)
    hb, rb = feed(config, b)
    both, _ = feed(config, a + b)
    ha.merge(hb)
    ra.merge(rb)
    assert ha.to_dict() == both.to_dict() == ra.to_dict()
    assert ha.percentiles([0, 25, 50, 99, 99.9, 100]) == both.percentiles([0, 25, 50, 99, 99.9, 100])


@settings(max_examples=100)
@given(values=st.lists(st.integers(0, 10**11), max_size=300))
def test_record_many_matches_record(values: list[int]) -> None:
    one_by_one, _ = feed((100, 60 * 10**9, 7), values)
    bulk = LatencyHistogram()
    bulk.record_many(np.array(values, dtype=np.int64))
    assert bulk.to_dict() == one_by_one.to_dict()


@settings(max_examples=200)
@given(
    config=configs,
    room=st.one_of(st.none(), st.integers(0, 3)),
    before=st.lists(values_ns, max_size=50),
    after=st.lists(values_ns, max_size=50),
)
def test_a_pickled_histogram_is_restored_as_it_was_and_records_on_alike(
    config: tuple[int, int, int], room: int | None, before: list[int], after: list[int]
) -> None:
    """From empty, from a stream, or from a count a few values short of the int64 limit."""
    h, r = feed(config, before) if room is None else near_full(config, room)
    restored = pickle.loads(pickle.dumps(h))
    assert restored.config() == h.config()
    assert restored.to_dict() == h.to_dict() == r.to_dict()
    assert restored.percentiles([0, 25, 50, 99, 100]) == h.percentiles([0, 25, 50, 99, 100])
    for v in after[: room if room is not None else len(after)]:
        h.record(v)
        restored.record(v)
    assert restored.to_dict() == h.to_dict()


@settings(max_examples=100)
@given(config=configs, before=st.lists(values_ns, max_size=50), after=st.lists(values_ns, max_size=50))
def test_reset_then_record_equals_fresh(
    config: tuple[int, int, int], before: list[int], after: list[int]
) -> None:
    c, _ = feed(config, before)
    c.reset()
    assert c.to_dict() == LatencyHistogram(*config).to_dict()
    for v in after:
        c.record(v)
    fresh, _ = feed(config, after)
    assert c.to_dict() == fresh.to_dict()


def test_sum_saturates_instead_of_wrapping() -> None:
    from arb_core.latency import LatencyHistogram as Compiled
    from reference.latency import LatencyHistogram as Reference

    for cls in (Compiled, Reference):
        hist = cls(highest_ns=2**62 - 1)
        hist.record(2**62 - 1)
        hist.record(2**62 - 1)
        hist.record(2**62 - 1)
        assert hist.mean > 0
        assert hist.mean == pytest.approx((2**63 - 1) / 3)


@pytest.mark.parametrize("p", [0.0, 50.0, 99.0, 99.9999999, 100.0])
def test_percentiles_of_a_count_near_the_int64_limit_match_the_reference(p: float) -> None:
    """A count that rounds to 2**63 as a double (a restored or merged histogram) made the rank
    overflow int64: percentile(100) gave the smallest value rather than the largest."""
    top = 2**63 - 1
    compiled = LatencyHistogram(100, 10**6, 7)
    compiled.__setstate__((top, 0, 100, 10**6, 0, [(0, top - 5), (compiled.bucket_count - 1, 5)]))
    reference = ref.LatencyHistogram(100, 10**6, 7)
    reference.counts = {ref.bucket_index(100, 7): top - 5, ref.bucket_index(10**6, 7): 5}
    reference.count, reference.min, reference.max = top, 100, 10**6
    assert compiled.percentile(p) == reference.percentile(p)


@settings(max_examples=100)
@given(config=configs, room=st.integers(0, 5), values=st.lists(values_ns, max_size=10))
def test_recording_up_to_the_int64_count_matches_the_reference(
    config: tuple[int, int, int], room: int, values: list[int]
) -> None:
    compiled, reference = near_full(config, room)
    bulk, _ = near_full(config, room)
    fits = len(values) <= room
    if fits:
        bulk.record_many(np.array(values, dtype=np.int64))
    else:
        with pytest.raises(OverflowError, match="count passes int64"):
            bulk.record_many(np.array(values, dtype=np.int64))
        assert bulk.to_dict() == near_full(config, room)[0].to_dict()
    for v in values:
        outcomes: list[str | None] = []
        for h in (compiled, reference):
            try:
                h.record(v)
                outcomes.append(None)
            except OverflowError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1]
        assert compiled.to_dict() == reference.to_dict()
    if fits:
        assert bulk.to_dict() == compiled.to_dict()
    assert pickle.loads(pickle.dumps(compiled)).to_dict() == compiled.to_dict()
