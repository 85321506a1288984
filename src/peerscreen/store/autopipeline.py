"""One Redis connection shared by every caller, its commands pipelined automatically.

The store's hot path (a script per signal, per read and per acknowledgement) spends more
time in the client than in Redis when each call borrows a pooled connection, writes one
command and waits for it alone. Here every command issued during one turn of the event
loop goes out in one write on one connection, and the replies, which Redis sends in
order, are handed back in order as they arrive: no pool to wait on, one system call for
a batch, and throughput that grows with load. Replies are parsed by hiredis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connect import CONNECT_TIMEOUT, RedisAddress, open_connection

REPLY_TIMEOUT = 2.0
"""Seconds a command may wait for its reply before the connection counts as dead."""


_PACKED: dict[str, bytes] = {}
"""Short text arguments packed before: script digests, a room's keys and channels, limits
as text. A signal's command repeats most of its arguments; packing them again was most of
the cost of packing."""
_PACKED_KEPT = 4096


def pack(args: tuple[Any, ...]) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    cached = _PACKED.get
    for arg in args:
        packed = cached(arg) if type(arg) is str else None
        if packed is None:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            packed = b"$%d\r\n%s\r\n" % (len(data), data)
            if type(arg) is str and len(data) <= 96:
                if len(_PACKED) >= _PACKED_KEPT:
                    _PACKED.clear()  # the rooms of a while ago; today's come back at once
                _PACKED[arg] = packed
        parts.append(packed)
    return b"".join(parts)


class AutoPipeline:
    """Send commands to one Redis over one connection, batched per event-loop turn."""

    def __init__(self, url: str) -> None:
        self._address = RedisAddress.from_url(url)
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._queued: list[bytes] = []
        self._queued_futures: list[asyncio.Future[Any]] = []
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._flush_scheduled = False
        self._watch_task: asyncio.Task[None] | None = None

    async def execute(self, *args: Any) -> Any:
        """Run one command; its reply, or raise what Redis answered or why it could not."""
        if self._connection is None:
            await self._connect()
        reply = await self._queue(args)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def execute_all(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Run several commands, written together; their replies in order. Raises the
        first error Redis answered, after every reply is in.

        Cheaper than gathering :meth:`execute` calls, which makes a task of each."""
        if self._connection is None:
            await self._connect()
        return await self._all([self._queue(args) for args in commands])

    @staticmethod
    async def _all(futures: list[asyncio.Future[Any]]) -> list[Any]:
        try:
            replies = [await future for future in futures]
        except BaseException:
            for future in futures:  # retrieved, so none is reported as never awaited
                if future.done() and not future.cancelled():
                    future.exception()
            raise
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    def _queue(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append(pack(args))
        self._queued_futures.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued:
            return
        data, futures = b"".join(self._queued), self._queued_futures
        self._queued, self._queued_futures = [], []
        connection = self._connection
        if connection is None or connection.transport.is_closing():
            error = RedisConnectionError("connection to Redis lost")
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        now = time.monotonic()
        self._waiting.extend((future, now) for future in futures)
        connection.transport.write(data)

    async def _connect(self) -> None:
        # Callers that arrive while connecting wait for the same attempt.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _open(self) -> None:
        connection = await open_connection(self._address, lambda: _Connection(self))
        self._connection = connection
        try:
            # First on the connection: whatever callers queue meanwhile follows.
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self._all([self._queue(command) for command in self._address.setup])
        except BaseException as exc:
            # Refused or unanswered: no caller may go on using this connection.
            self._drop(connection, RedisConnectionError("Redis refused the setup"))
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError(f"Redis at {self._address} did not answer") from exc
            raise
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = asyncio.create_task(self._watch())

    def _replied(self, connection: _Connection, data: bytes) -> None:
        """Replies arrived: each goes to the oldest command still waiting."""
        if connection is not self._connection:
            return
        parser = connection.parser
        parser.feed(data)
        waiting = self._waiting
        try:
            while (reply := parser.gets()) is not False:
                future, _ = waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except Exception as exc:  # a reply that does not parse ends the connection
            self._drop(connection, exc)

    async def _watch(self) -> None:
        # A Redis that stops answering without closing the connection would hold every
        # caller forever: the oldest unanswered command decides.
        while self._connection is not None:
            await asyncio.sleep(REPLY_TIMEOUT / 4)
            connection = self._connection
            if (
                connection is not None
                and self._waiting
                and time.monotonic() - self._waiting[0][1] > REPLY_TIMEOUT
            ):
                self._drop(connection, RedisTimeoutError("Redis did not answer in time"))

    def _drop(self, connection: _Connection, error: BaseException | None) -> None:
        """The connection failed or closed: every command waiting on it fails."""
        if connection is not self._connection:
            return
        self._connection = None
        connection.transport.close()
        failed = (
            error
            if isinstance(error, RedisConnectionError | RedisTimeoutError)
            else RedisConnectionError(str(error) if error else "Redis closed the connection")
        )
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(failed)

    async def aclose(self) -> None:
        connection = self._connection
        if connection is not None:
            self._drop(connection, RedisConnectionError("closed"))
        task = self._watch_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _Connection(asyncio.Protocol):
    """The socket of an :class:`AutoPipeline`: replies are parsed as they arrive, in the
    event loop's own callback, with no reader task to wake."""

    def __init__(self, pipeline: AutoPipeline) -> None:
        self.pipeline = pipeline
        self.parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.pipeline._replied(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipeline._drop(self, exc)
