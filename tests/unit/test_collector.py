"""The freezing collector: survivors of full collections are frozen, and cycles among
frozen objects are reclaimed once the frozen set has doubled."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from peerscreen.collector import RECKON_GROWTH, FreezingCollector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, b


@pytest.fixture
def collector() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave the test process as it was


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_survivors_of_a_full_collection_are_frozen(collector: None) -> None:
    freezer = FreezingCollector()
    freezer.start()
    try:
        kept = [cycle() for _ in range(1000)]
        before = gc.get_freeze_count()
        gc.collect()  # a full collection, as the collector would run by itself
        await wait_for(lambda: gc.get_freeze_count() >= before + 2000)
        assert all(gc.is_tracked(a) for a, _ in kept[:1])
        assert not any(a in gc.get_objects(2) for a, _ in kept[:10])  # frozen, not in gen 2
    finally:
        freezer.stop()


async def test_cycles_that_die_frozen_are_reclaimed_when_the_frozen_set_doubles(
    collector: None,
) -> None:
    freezer = FreezingCollector()
    freezer.count_every = 0  # count at every freeze, not every 30 s
    freezer.start()
    try:
        doomed = [cycle() for _ in range(100)]
        probe = weakref.ref(doomed[0][0])
        gc.collect()
        await wait_for(lambda: gc.get_freeze_count() > 0 and not freezer._pending)
        del doomed  # garbage now, but frozen: no collection looks at it
        gc.collect()
        await asyncio.sleep(0.05)
        assert probe() is not None
        # Enough new long-lived objects to double the frozen set: the next full
        # collection reckons with everything, and the dead cycle goes.
        grown = [cycle() for _ in range(int(gc.get_freeze_count() * RECKON_GROWTH) // 2 + 10)]
        reckonings = freezer.reckonings
        gc.collect()
        await wait_for(lambda: freezer.reckonings > reckonings)
        assert probe() is None
        assert len(grown) > 0
    finally:
        freezer.stop()
