"""Rate-limit counters on a fake clock: per-participant token buckets (signals) and
the in-memory store's moving windows (every other limit)."""

from __future__ import annotations

import pytest
from limits import parse

from peerscreen.ratelimit import Limit, ParticipantBuckets, RateLimited
from peerscreen.store.windows import CallWindows


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


def test_call_windows_allow_the_amount_then_say_exactly_when_to_retry() -> None:
    clock = Clock()
    windows = CallWindows(clock)
    for _ in range(50):
        assert windows.count("rooms/10.0.0.1", 50, 3600) is None
        clock.now += 10  # one call every 10 s: the first is 490 s old at the 50th
    assert windows.count("rooms/10.0.0.1", 50, 3600) == 3600 - 500  # when the first leaves
    assert windows.count("rooms/10.0.0.2", 50, 3600) is None  # another address
    clock.now += 3600 - 500
    assert windows.count("rooms/10.0.0.1", 50, 3600) is None  # the first left
    assert windows.count("rooms/10.0.0.1", 50, 3600) == 10


def test_a_moving_window_never_asks_to_wait_longer_than_the_window() -> None:
    clock = Clock()
    windows = CallWindows(clock)
    for _ in range(3):
        assert windows.count("k", 3, 2.0) is None
        clock.now += 0.01
    retry = windows.count("k", 3, 2.0)
    assert retry is not None and 1 <= retry <= 2


def test_looking_at_a_limit_counts_nothing() -> None:
    windows = CallWindows(Clock())
    for _ in range(5):
        assert windows.count("k", 1, 60, take=False) is None
    assert windows.count("k", 1, 60) is None
    assert windows.count("k", 1, 60) is not None


def test_idle_keys_are_forgotten_and_memory_per_key_is_bounded() -> None:
    clock = Clock()
    windows = CallWindows(clock)
    for n in range(100):
        windows.count(f"api/10.0.0.{n}", 5, 60)
    for _ in range(50):
        windows.count("busy", 5, 60)  # refused past 5: the kept times stay at 5
    assert len(windows._times["busy"][1]) == 5
    clock.now += 61
    windows.prune()
    assert len(windows) == 0
