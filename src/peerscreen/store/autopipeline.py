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
from typing import Any

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

CONNECT_TIMEOUT = 1.0
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
        options = parse_url(url)  # type: ignore[no-untyped-call]
        self._host = str(options.get("host", "localhost"))
        self._port = int(options.get("port", 6379))
        self._path = options.get("path")  # unix socket URLs
        setup: list[tuple[Any, ...]] = []
        if options.get("password") is not None:
            user = options.get("username")
            setup.append(
                ("AUTH", user, options["password"]) if user else ("AUTH", options["password"])
            )
        if int(options.get("db", 0) or 0):
            setup.append(("SELECT", int(options["db"])))
        self._setup = setup
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._queued: list[bytes] = []
        self._queued_futures: list[asyncio.Future[Any]] = []
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._flush_scheduled = False
        self._read_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None

    async def execute(self, *args: Any) -> Any:
        """Run one command; its reply, or raise what Redis answered or why it could not."""
        if self._writer is None:
            await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append(pack(args))
        self._queued_futures.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        reply = await future
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued:
            return
        data, futures = b"".join(self._queued), self._queued_futures
        self._queued, self._queued_futures = [], []
        writer = self._writer
        if writer is None or writer.is_closing():
            error = RedisConnectionError("connection to Redis lost")
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        now = time.monotonic()
        self._waiting.extend((future, now) for future in futures)
        writer.write(data)

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
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if self._path:
                    reader, writer = await asyncio.open_unix_connection(self._path)
                else:
                    reader, writer = await asyncio.open_connection(self._host, self._port)
                parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
                for command in self._setup:
                    writer.write(pack(command))
                    reply = await _read_one(reader, parser)
                    if isinstance(reply, ResponseError):
                        writer.close()
                        raise reply
        except TimeoutError as exc:
            raise RedisTimeoutError(f"connecting to Redis at {self._host}:{self._port}") from exc
        except OSError as exc:
            raise RedisConnectionError(f"connecting to Redis: {exc}") from exc
        self._reader, self._writer = reader, writer
        self._read_task = asyncio.create_task(self._read_replies(reader, writer, parser))
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = asyncio.create_task(self._watch())

    async def _read_replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: hiredis.Reader
    ) -> None:
        waiting = self._waiting
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    raise RedisConnectionError("Redis closed the connection")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    future, _ = waiting.popleft()
                    if not future.done():
                        future.set_result(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure ends this connection for every caller
            self._drop(writer, exc)

    async def _watch(self) -> None:
        # A Redis that stops answering without closing the connection would hold every
        # caller forever: the oldest unanswered command decides.
        while self._writer is not None:
            await asyncio.sleep(REPLY_TIMEOUT / 4)
            if self._waiting and time.monotonic() - self._waiting[0][1] > REPLY_TIMEOUT:
                self._drop(self._writer, RedisTimeoutError("Redis did not answer in time"))

    def _drop(self, writer: asyncio.StreamWriter, error: BaseException) -> None:
        if writer is not self._writer:
            return
        self._reader = self._writer = None
        writer.close()
        failed = (
            error
            if isinstance(error, RedisConnectionError | RedisTimeoutError)
            else RedisConnectionError(str(error))
        )
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(failed)
        if self._read_task is not None and self._read_task is not asyncio.current_task():
            self._read_task.cancel()

    async def aclose(self) -> None:
        writer = self._writer
        if writer is not None:
            self._drop(writer, RedisConnectionError("closed"))
        for task in (self._read_task, self._watch_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _read_one(reader: asyncio.StreamReader, parser: hiredis.Reader) -> Any:
    while (reply := parser.gets()) is False:
        data = await reader.read(1 << 16)
        if not data:
            raise RedisConnectionError("Redis closed the connection")
        parser.feed(data)
    return reply
