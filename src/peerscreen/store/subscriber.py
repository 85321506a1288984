"""A Redis connection in pub/sub mode, its pushes handed over as they are parsed.

Every signal that crosses processes arrives as one push. redis-py's asyncio pub/sub
reads each through a reader task, a timeout context and a message dictionary (about
55-70 us of CPU a push on the benchmark machine); this protocol parses the pushes with
hiredis in the event loop's own callback and hands each to a function (about 17 us).
It only writes subscriptions and reads pushes: Redis answers a subscribed connection with
nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .autopipeline import pack
from .connect import CONNECT_TIMEOUT, RedisAddress, open_connection

logger = logging.getLogger("peerscreen.store.redis")

Push = list[Any]
"""A push as Redis sends it, e.g. ``["smessage", channel, data]``."""


class Subscriber(asyncio.Protocol):
    """One pub/sub connection: :meth:`send` subscriptions, get pushes in ``on_push``.

    ``closed`` resolves when the connection ends, with the error that ended it (None
    when Redis or :meth:`close` closed it). An error reply (a cluster node that does not
    serve a channel's slot answers MOVED) ends it too: the caller reconnects and asks
    again where each channel lives.
    """

    def __init__(self, on_push: Callable[[Push], None]) -> None:
        self._on_push = on_push
        self._parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self._transport: asyncio.Transport | None = None
        self._setup_replies: list[asyncio.Future[Any]] = []
        self.closed: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )

    @classmethod
    async def open(cls, address: RedisAddress, on_push: Callable[[Push], None]) -> Subscriber:
        """Connect and run the address's setup commands (AUTH, SELECT)."""
        subscriber = await open_connection(address, lambda: cls(on_push))
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                for command in address.setup:
                    reply = await subscriber._request(command)
                    if isinstance(reply, ResponseError):
                        raise RedisConnectionError(f"Redis refused the setup: {reply}")
        except TimeoutError as exc:
            subscriber.close()
            raise RedisTimeoutError(f"Redis at {address} did not answer") from exc
        except BaseException:
            subscriber.close()
            raise
        return subscriber

    def _request(self, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._setup_replies.append(future)
        self.send(*command)
        return future

    def send(self, *command: Any) -> None:
        """Write a command (SSUBSCRIBE, SUNSUBSCRIBE) without waiting: Redis confirms
        it with a push."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(pack(command))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._end(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        try:
            while (reply := parser.gets()) is not False:
                if self._setup_replies:
                    future = self._setup_replies.pop(0)
                    if not future.done():
                        future.set_result(reply)
                elif isinstance(reply, ResponseError):
                    raise reply
                elif isinstance(reply, list):
                    self._hand_over(reply)
        except Exception as exc:  # an error reply, or one that does not parse
            if self._transport is not None:
                self._transport.close()
            self._end(exc)

    def _hand_over(self, push: Push) -> None:
        try:
            self._on_push(push)
        except Exception:
            # One push its reader could not take must not end the others' connection.
            logger.exception("redis notifications: a push failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        for future in self._setup_replies:
            if not future.done():
                future.set_exception(RedisConnectionError("Redis closed the connection"))
        self._setup_replies.clear()
        if not self.closed.done():
            self.closed.set_result(exc)


__all__ = ["Push", "Subscriber"]
