"""The heartbeat's clock: ticks on its own timer when idle, on the loop's other wake-ups
when there are some, never twice for one turn."""

from __future__ import annotations

import asyncio
import itertools
import time

from peerscreen.api.heartbeat import Heartbeat

EVERY = 0.02


async def ticks_of(heartbeat: Heartbeat, count: int, poke_every: float | None) -> list[float]:
    """Run the clock until ``count`` ticks, poking it as messages would; tick times."""
    times: list[float] = []
    done = asyncio.Event()

    def tick(turn: int) -> None:
        assert turn == len(times), "turns come in order, once each"
        times.append(time.monotonic())
        if len(times) == count:
            done.set()

    heartbeat._tick = tick
    heartbeat.start()
    deadline = time.monotonic() + 10
    try:
        while not done.is_set():
            assert time.monotonic() < deadline, f"{len(times)} ticks of {count}"
            if poke_every is None:
                await asyncio.wait_for(done.wait(), 10)
            else:
                await asyncio.sleep(poke_every)  # a message arrives
                heartbeat.poke(time.monotonic())
    finally:
        heartbeat.stop()
    return times


async def test_idle_it_ticks_on_its_timer() -> None:
    heartbeat = Heartbeat(EVERY, lambda turn: None, early=EVERY / 5)
    times = await ticks_of(heartbeat, 20, poke_every=None)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= EVERY * 0.9 for gap in gaps), gaps
    assert times[-1] - times[0] < 19 * EVERY * 1.5


async def test_busy_it_rides_on_other_wake_ups_and_never_ticks_twice() -> None:
    heartbeat = Heartbeat(EVERY, lambda turn: None, early=EVERY / 5)
    ran_by: list[bool] = []
    run = heartbeat._run

    def counted(from_timer: bool) -> None:
        before = heartbeat._turn
        run(from_timer)
        if heartbeat._turn != before:
            ran_by.append(from_timer)

    heartbeat._run = counted  # type: ignore[method-assign]
    times = await ticks_of(heartbeat, 30, poke_every=0.001)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # A tick may come up to `early` before its time, never a second one for a turn.
    assert all(gap >= EVERY - EVERY / 5 - 0.002 for gap in gaps), gaps
    assert len(ran_by) == 30
    # With a wake-up every millisecond, the timer is (nearly) never what runs a tick.
    assert ran_by.count(True) <= 3, ran_by


async def test_a_stopped_clock_ticks_no_more() -> None:
    ticked: list[int] = []
    heartbeat = Heartbeat(0.005, ticked.append)
    heartbeat.start()
    deadline = time.monotonic() + 5
    while len(ticked) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    heartbeat.stop()
    heartbeat.poke(time.monotonic() + 1)
    stopped_at = len(ticked)
    # Several periods pass (bounded): nothing more runs.
    for _ in range(5):
        await asyncio.sleep(0.005)
    assert len(ticked) == stopped_at
