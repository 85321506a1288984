"""The auto-pipelined Redis connection, against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from peerscreen.store.autopipeline import REPLY_TIMEOUT, AutoPipeline
from peerscreen.store.base import RoomRecord
from peerscreen.store.redis import RedisStore

from ..support.processes import RedisServer

pytestmark = pytest.mark.redis


async def test_concurrent_commands_get_their_own_replies_in_one_connection(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    pipe = AutoPipeline(redis_server.url)
    try:
        replies = await asyncio.gather(*(pipe.execute("INCR", f"k{n % 7}") for n in range(700)))
        # Seven counters, each incremented 100 times in the order the calls were made.
        for key in range(7):
            assert [r for n, r in enumerate(replies) if n % 7 == key] == list(range(1, 101))
        assert await pipe.execute("GET", "k3") == "100"
        assert await pipe.execute("SET", "text", "ünïcode") == "OK"
        assert await pipe.execute("GET", "text") == "ünïcode"
        assert await pipe.execute("GET", "missing") is None
    finally:
        await pipe.aclose()


async def test_several_commands_written_together_reply_in_order(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    pipe = AutoPipeline(redis_server.url)
    try:
        assert await pipe.execute_all(
            ("SET", "a", "1"), ("INCR", "a"), ("GET", "a"), ("GET", "missing")
        ) == ["OK", 2, "2", None]
        # An error reply is raised once every reply is in: the others still ran.
        with pytest.raises(ResponseError):
            await pipe.execute_all(("INCR", "a"), ("INCR", "not a number", "extra"), ("INCR", "a"))
        assert await pipe.execute("GET", "a") == "4"
    finally:
        await pipe.aclose()


async def test_an_error_reply_fails_its_own_call_only(redis_server: RedisServer) -> None:
    redis_server.flush()
    pipe = AutoPipeline(redis_server.url)
    try:
        await pipe.execute("SET", "text", "x")
        replies: list[object] = await asyncio.gather(
            pipe.execute("GET", "text"),
            pipe.execute("INCR", "text"),  # not a number
            pipe.execute("GET", "text"),
            return_exceptions=True,
        )
        assert replies[0] == "x" and replies[2] == "x"
        assert isinstance(replies[1], ResponseError)
    finally:
        await pipe.aclose()


async def test_a_restarted_redis_fails_calls_then_serves_again(
    private_redis: RedisServer,
) -> None:
    pipe = AutoPipeline(private_redis.url)
    try:
        assert await pipe.execute("PING") == "PONG"
        private_redis.stop()
        with pytest.raises(RedisConnectionError):
            await pipe.execute("PING")
        private_redis.start()
        assert await pipe.execute("PING") == "PONG"
    finally:
        await pipe.aclose()


async def test_a_redis_that_stops_answering_times_out(private_redis: RedisServer) -> None:
    """Redis frozen with its connection open: calls fail after REPLY_TIMEOUT rather than
    wait for ever, and work again once it answers."""
    pipe = AutoPipeline(private_redis.url)
    assert private_redis.process is not None
    pid = private_redis.process.pid
    try:
        assert await pipe.execute("PING") == "PONG"
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(RedisTimeoutError):
                await pipe.execute("PING")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert time.monotonic() - started < REPLY_TIMEOUT + 2
        assert await pipe.execute("PING") == "PONG"
    finally:
        await pipe.aclose()


async def test_the_store_loads_its_scripts_again_after_redis_forgot_them(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        record = RoomRecord("abcd-efghj-kmnp", "digest", time.time(), 3)
        await store.create_room(record, 60)
        assert await store.append(record.room_id, "host", {"type": "x"}, 60, None) == 1
        await store._redis.script_flush()
        assert await store.append(record.room_id, "host", {"type": "x"}, 60, None) == 2
        assert [m["seq"] for m in await store.read(record.room_id, "host", 0, 0)] == [1, 2]
    finally:
        await store.close()
