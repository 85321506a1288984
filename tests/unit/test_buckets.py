"""Per-participant token buckets (the signaling rate limit), on a fake clock."""

from __future__ import annotations

import pytest
from limits import parse

from peerscreen.ratelimit import Limit, ParticipantBuckets, RateLimited, SlidingWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_the_whole_allowance_then_a_steady_refill() -> None:
    clock = Clock()
    buckets = ParticipantBuckets(Limit.SIGNAL, parse("600/minute"), clock)
    for _ in range(600):
        buckets.take(("room", "host"))
    with pytest.raises(RateLimited) as refused:
        buckets.take(("room", "host"))
    assert refused.value.retry_after == 1 and refused.value.status == 429
    assert "signaling messages too fast" in refused.value.message
    buckets.take(("room", "v1"))  # another participant has its own bucket
    clock.now += 0.1  # 10 a second come back
    buckets.take(("room", "host"))
    with pytest.raises(RateLimited):
        buckets.take(("room", "host"))
    clock.now += 60
    for _ in range(600):
        buckets.take(("room", "host"))


def test_idle_buckets_are_forgotten() -> None:
    clock = Clock()
    buckets = ParticipantBuckets(Limit.SIGNAL, parse("10/second"), clock)
    for n in range(ParticipantBuckets.PRUNE_EVERY - 1):
        buckets.take(("room", f"v{n}"))
    clock.now += 2  # every bucket is full again
    buckets.take(("room", "last"))
    assert len(buckets) == 1


def test_sliding_windows_allow_the_amount_then_say_when_to_retry() -> None:
    clock = Clock()
    clock.now = 3600.0 * 100  # the start of an hour window
    windows = SlidingWindows(parse("50/hour"), clock)
    for _ in range(50):
        assert windows.count(("10.0.0.1",)) is None
    retry = windows.count(("10.0.0.1",))
    # Full within this window: no call before the next hour, and then only once the
    # previous hour's weight has fallen below 49 of 50 calls (1/50 of an hour later).
    assert retry == 3600 + 72
    assert windows.count(("10.0.0.2",)) is None  # another address has its own count
    assert windows.count(("10.0.0.1",), take=False) == retry  # looking counts nothing
    clock.now += retry
    assert windows.count(("10.0.0.1",)) is None
    assert windows.count(("10.0.0.1",)) is not None


def test_sliding_windows_weigh_the_previous_window() -> None:
    clock = Clock()
    clock.now = 60.0 * 1000
    windows = SlidingWindows(parse("10/minute"), clock)
    for _ in range(10):
        assert windows.count(("k",)) is None
    clock.now += 60 + 30  # half-way into the next window: half the last one still counts
    allowed = 0
    while windows.count(("k",)) is None:
        allowed += 1
    assert allowed == 5
    # Quiet for two windows: the key is forgotten at the next prune.
    clock.now += 180
    windows._prune(clock.now // 60)
    assert len(windows) == 0


def test_looking_at_a_limit_counts_nothing() -> None:
    windows = SlidingWindows(parse("1/minute"), Clock())
    for _ in range(5):
        assert windows.count(("k",), take=False) is None
    assert windows.count(("k",)) is None
    assert windows.count(("k",)) is not None
