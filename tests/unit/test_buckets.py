"""Per-participant token buckets (the signaling rate limit), on a fake clock."""

from __future__ import annotations

import pytest
from limits import parse

from peerscreen.ratelimit import Limit, ParticipantBuckets, RateLimited


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
