"""Several server processes on one Redis act as one server; Redis outages are survived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from ..support.clients import (
    SocketMember,
    answer_sdp,
    candidate,
    create_room,
    host_room,
    join_as,
    offer_sdp,
)
from ..support.processes import RedisServer, ServerProcess, wait_until

PUSH_DEADLINE = 2.0
"""Well under the heartbeat interval (10 s): a message that arrives within it was pushed,
not found by a periodic rescan."""


async def test_host_and_viewers_on_different_processes(
    start_server: Callable[..., ServerProcess], redis_server: RedisServer
) -> None:
    a = start_server(redis_url=redis_server.url)
    b = start_server(redis_url=redis_server.url)
    host = await host_room(a.base_url, "socket")
    on_b_socket = await join_as(b.base_url, host.room_id, "socket")
    on_b_longpoll = await join_as(b.base_url, host.room_id, "longpoll")
    on_a = await join_as(a.base_url, host.room_id, "socket")
    viewers = [on_b_socket, on_b_longpoll, on_a]
    try:
        for _ in viewers:
            await host.next("viewer-joined", timeout=PUSH_DEADLINE)
        for v in viewers:
            await host.send("offer", to=v.participant_id, desc=offer_sdp(v.participant_id))
        for v in viewers:
            offer = await v.next("offer", timeout=PUSH_DEADLINE)
            assert offer["desc"] == offer_sdp(v.participant_id)
            await v.send("answer", desc=answer_sdp(v.participant_id))
            await v.send("candidate", candidate=candidate(7))
        for v in viewers:
            answer = await host.next(
                lambda m, v=v: m["type"] == "answer" and m["from"] == v.participant_id,  # type: ignore[misc]
                timeout=PUSH_DEADLINE,
            )
            assert answer["desc"] == answer_sdp(v.participant_id)
        # Ending the room on process A reaches the viewers on process B.
        await host.http.delete(f"/api/rooms/{host.room_id}")
        assert (await on_b_socket.next("room-ended", timeout=PUSH_DEADLINE))["reason"] == (
            "host-ended"
        )
    finally:
        for member in [host, *viewers]:
            await member.close()


async def test_grace_period_is_judged_across_processes(
    start_server: Callable[..., ServerProcess], redis_server: RedisServer
) -> None:
    fast = {"heartbeat_interval": 0.3, "heartbeat_timeout": 1.0, "grace_period": 1.5}
    a = start_server(redis_url=redis_server.url, **fast)
    b = start_server(redis_url=redis_server.url, **fast)
    host = await host_room(a.base_url, "socket")
    viewer = await join_as(a.base_url, host.room_id, "socket")
    assert isinstance(viewer, SocketMember)
    await viewer.drop()
    # The viewer comes back through the other process: process A must not report it gone.
    back = await SocketMember(b.base_url, host.room_id, viewer.participant_id, viewer.token).start()
    with pytest.raises(AssertionError, match="no viewer-left"):
        await host.next("viewer-left", timeout=3)
    for member in (host, viewer, back):
        await member.close()


async def test_redis_outage_fails_fast_and_recovers(
    start_server: Callable[..., ServerProcess], private_redis: RedisServer
) -> None:
    a = start_server(redis_url=private_redis.url)
    b = start_server(redis_url=private_redis.url)
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok", "store": "redis"}
        private_redis.stop()

        started = time.monotonic()
        response = await http.post("/api/rooms")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        assert "try again" in response.json()["error"]["message"]
        assert response.headers["Retry-After"]
        assert elapsed < 5, f"took {elapsed:.1f}s to fail"
        assert (await http.get("/healthz")).status_code == 503
        assert a.process is not None and a.process.poll() is None

        private_redis.start()

        async def recovered() -> bool:
            return (await http.get("/healthz")).status_code == 200

        deadline = time.monotonic() + 15
        while not await recovered():
            assert time.monotonic() < deadline, "server did not recover"
            await asyncio.sleep(0.1)
        room = await create_room(http)

    # Push across processes works again: the notification channel came back by itself.
    host = await SocketMember(a.base_url, room["roomId"], "host", room["hostToken"]).start()
    viewer = await join_as(b.base_url, room["roomId"], "socket")
    try:
        await host.next("viewer-joined", timeout=PUSH_DEADLINE)
        await host.send("offer", to=viewer.participant_id, desc=offer_sdp("back"))
        assert (await viewer.next("offer", timeout=PUSH_DEADLINE))["desc"] == offer_sdp("back")
    finally:
        await host.close()
        await viewer.close()
    assert "Traceback" not in a.log() + b.log()


def test_wait_until_is_bounded() -> None:
    with pytest.raises(AssertionError, match="timed out"):
        wait_until(lambda: False, 0.2, "nothing")


async def test_a_burst_larger_than_the_redis_pool_is_delivered_in_full(
    start_server: Callable[..., ServerProcess], redis_server: RedisServer
) -> None:
    """With a pool of 2 Redis connections and 200 messages posted at once, every message
    is accepted (a busy pool waits, it does not fail) and arrives once, in order."""
    redis_server.flush()
    server = start_server(
        redis_url=redis_server.url, redis_max_connections=2, max_connections_per_client=1000
    )
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=30, limits=httpx.Limits(max_connections=200)
    ) as http:
        room = await create_room(http)
        viewer = (await http.post(f"/api/rooms/{room['roomId']}/viewers")).json()
        auth = {"Authorization": f"Bearer {room['hostToken']}"}
        path = f"/api/rooms/{room['roomId']}/messages"

        async def post(n: int) -> int:
            body = {"type": "candidate", "to": viewer["viewerId"], "candidate": candidate(n)}
            response = await http.post(path, json=body, headers=auth)
            assert response.status_code == 202, response.text
            seq: int = response.json()["seq"]
            return seq

        seqs = await asyncio.gather(*(post(n) for n in range(200)))
        assert sorted(seqs) == list(range(2, 202))  # 1 is the viewer's audience event
        mail = await http.get(path, headers={"Authorization": f"Bearer {viewer['viewerToken']}"})
    candidates = [m for m in mail.json()["messages"] if m["type"] == "candidate"]
    assert [m["seq"] for m in candidates] == list(range(2, 202))
    assert sorted(m["candidate"]["candidate"] for m in candidates) == sorted(
        candidate(n)["candidate"] for n in range(200)
    )
