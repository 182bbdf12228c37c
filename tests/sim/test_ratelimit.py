"""arb.sim.ratelimit: a venue's documented budget enforced as a sliding window."""

from arb.sim.ratelimit import Admission, RateLimits, VenueRateLimit

BUDGET = VenueRateLimit("orders", 3, 1_000)
MS = 1_000_000


def test_no_window_of_the_budgets_length_takes_more_than_its_limit() -> None:
    limits = RateLimits()
    assert [limits.spend(BUDGET, "alice", t * MS) for t in (0, 400, 800)] == [
        Admission(True, 3, 2, 0), Admission(True, 3, 1, 0), Admission(True, 3, 0, 0)
    ]
    assert limits.spend(BUDGET, "alice", 999 * MS) == Admission(False, 3, 0, 1 * MS)  # the first leaves at 1000
    assert limits.spend(BUDGET, "alice", 1_000 * MS).admitted
    assert limits.spend(BUDGET, "alice", 1_300 * MS) == Admission(False, 3, 0, 100 * MS)  # refusals are not counted
    assert limits.spend(BUDGET, "alice", 1_400 * MS).admitted
    assert limits.refused == {"orders": 2}


def test_each_key_and_each_budget_is_counted_on_its_own() -> None:
    limits = RateLimits()
    for _ in range(3):
        limits.spend(BUDGET, ("alice", "BTC_USDT"), 0)
    assert not limits.spend(BUDGET, ("alice", "BTC_USDT"), 0).admitted
    assert limits.spend(BUDGET, ("alice", "ETH_USDT"), 0).admitted
    assert limits.spend(BUDGET, ("bob", "BTC_USDT"), 0).admitted
    assert limits.spend(VenueRateLimit("cancels", 3, 1_000), ("alice", "BTC_USDT"), 0).admitted
