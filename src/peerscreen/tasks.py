"""Tasks: background tasks that live as long as the server, and coroutines run eagerly."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

A = TypeVar("A")
B = TypeVar("B")


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has finished."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def both(concurrently: bool, first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results: awaited together when ``concurrently`` (calls to a shared store, one
    round trip for both), else one after the other (a store that never waits: no task
    for each)."""
    if concurrently:
        a, b = await asyncio.gather(first, second)
        return a, b
    return await first, await second


async def all_of(concurrently: bool, *steps: Awaitable[Any]) -> None:
    """Await every step: together when ``concurrently``, else in order (see :func:`both`)."""
    if concurrently:
        await asyncio.gather(*steps)
        return
    for step in steps:
        await step


def run_eagerly(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` now, up to the first time it waits; the rest in a task.

    For work that usually completes without waiting (a message relayed through the
    in-memory store): it then costs no task to create and schedule. Like the eager tasks
    of Python 3.12, the part run now has no current task: code that needs one
    (``asyncio.timeout``) must not run in it. The coroutine must handle its own errors.
    """
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return
    task = asyncio.get_running_loop().create_task(_finish(coroutine, waiting_on))
    task.add_done_callback(lambda done: _cancel_if_left(coroutine, done))


async def _finish(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _resumed(coroutine, waiting_on)


def _cancel_if_left(coroutine: Coroutine[Any, Any, None], task: asyncio.Task[None]) -> None:
    """A task cancelled before its first step never reached the coroutine: cancel it."""
    if not task.cancelled() or inspect.getcoroutinestate(coroutine) != inspect.CORO_SUSPENDED:
        return
    try:
        coroutine.throw(asyncio.CancelledError())
    except (asyncio.CancelledError, StopIteration):
        return
    coroutine.close()  # it went on to wait for something else: stop it there


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    """Hand the task what the coroutine waits on, and the outcome back to the coroutine."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:  # cancellation, thrown in by the task
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration:
                return
