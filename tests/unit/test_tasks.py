"""run_eagerly: a coroutine run up to its first wait, the rest in a task; both and all_of."""

from __future__ import annotations

import asyncio

import pytest

from peerscreen.tasks import all_of, both, run_eagerly


async def test_a_coroutine_that_never_waits_finishes_at_once_without_a_task() -> None:
    done: list[str] = []

    async def stored() -> int:
        return 1  # an async call that never waits, like the in-memory store's

    async def relay() -> None:
        await stored()
        done.append("sent")

    tasks_before = len(asyncio.all_tasks())
    run_eagerly(relay())
    assert done == ["sent"]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_one_that_waits_goes_on_in_a_task_with_results_and_errors() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []
    finished = asyncio.Event()

    async def handle() -> None:
        seen.append("before")
        seen.append(await first)
        await asyncio.sleep(0)  # a bare yield to the loop
        try:
            await second
        except ValueError as exc:
            seen.append(str(exc))
        assert asyncio.current_task() is not None  # the rest runs in a task
        finished.set()

    run_eagerly(handle())
    assert seen == ["before"]
    first.set_result(7)
    second.set_exception(ValueError("refused"))
    async with asyncio.timeout(5):
        await finished.wait()
    assert seen == ["before", 7, "refused"]


@pytest.mark.parametrize("started", [False, True])
async def test_cancelling_the_task_cancels_the_coroutine(started: bool) -> None:
    waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    outcome: list[str] = []

    async def handle() -> None:
        try:
            await waiting
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    tasks_before = asyncio.all_tasks()
    run_eagerly(handle())
    (task,) = asyncio.all_tasks() - tasks_before
    if started:
        await asyncio.sleep(0)  # the task takes its first step: it waits now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["cancelled"]


async def test_both_and_all_of_run_together_only_when_asked() -> None:
    order: list[str] = []

    async def step(name: str, wait_for: asyncio.Event | None, then: asyncio.Event) -> str:
        order.append(f"{name} starts")
        if wait_for is not None:
            await wait_for.wait()  # only the other step can set it
        then.set()
        order.append(f"{name} ends")
        return name

    a_done, b_done = asyncio.Event(), asyncio.Event()
    # Together: the first step waits on the second, which runs meanwhile.
    async with asyncio.timeout(5):
        assert await both(True, step("a", b_done, a_done), step("b", None, b_done)) == ("a", "b")
    order.clear()
    # One after the other: each finishes before the next starts.
    assert await both(False, step("a", None, a_done), step("b", a_done, b_done)) == ("a", "b")
    assert order == ["a starts", "a ends", "b starts", "b ends"]
    order.clear()
    await all_of(False, step("a", None, a_done), step("b", None, b_done), step("c", None, a_done))
    assert order == [f"{n} {e}" for n in "abc" for e in ("starts", "ends")]
    order.clear()
    a_done.clear()
    async with asyncio.timeout(5):
        await all_of(True, step("a", a_done, b_done), step("b", None, a_done))
    assert set(order) == {"a starts", "a ends", "b starts", "b ends"}
