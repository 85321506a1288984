"""Several processes on one Redis, or on a Redis Cluster, acting as one server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..support.clients import Member, SocketMember, candidate, host_room, join_as
from ..support.processes import RedisClusterServers, RedisServer, ServerProcess

SENDS = 40
VIEWERS = 8


def shared_redis(request: pytest.FixtureRequest) -> str:
    if request.param == "redis-cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        return cluster.url
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


async def fire(member: SocketMember, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every message without waiting in between, then collect one reply each."""
    assert member.socket is not None
    for message in messages:
        await member.socket.send(json.dumps(message))
    return [await asyncio.wait_for(member.replies.get(), 30) for _ in messages]


async def candidates(member: Member, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The first ``count`` candidates the member receives (other messages are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got: list[dict[str, Any]] = []
    while len(got) < count:
        left = deadline - loop.time()
        assert left > 0, f"{member.participant_id}: {len(got)} of {count} candidates arrived"
        got.extend(m for m in await member._fetch(left) if m["type"] == "candidate")
    return got


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    return shared_redis(request)


async def test_a_burst_larger_than_the_redis_pool_arrives_once_and_in_order(
    start_server: Callable[..., ServerProcess], redis_url: str
) -> None:
    """Two processes with two Redis connections each; eight viewers on one process and
    their host on the other all send at once: callers wait for a connection rather than
    fail, and every message arrives exactly once, in each sender's order."""
    a = start_server(redis_url=redis_url, redis_max_connections=2)
    b = start_server(redis_url=redis_url, redis_max_connections=2)
    host = await host_room(a.base_url)
    viewers = [await join_as(b.base_url, host.room_id) for _ in range(VIEWERS)]
    try:
        assert isinstance(host, SocketMember)
        assert all(isinstance(v, SocketMember) for v in viewers)
        to_host = [
            [
                {"type": "candidate", "to": "host", "id": n, "candidate": candidate(n)}
                for n in range(SENDS)
            ]
            for _ in viewers
        ]
        to_viewers = [
            {"type": "candidate", "to": v.participant_id, "id": n, "candidate": candidate(n)}
            for n in range(SENDS)
            for v in viewers
        ]
        replies = await asyncio.gather(
            *(fire(v, msgs) for v, msgs in zip(viewers, to_host, strict=True)),  # type: ignore[arg-type]
            fire(host, to_viewers),
        )
        for reply in replies:
            assert all(r["type"] == "accepted" for r in reply), reply
        # The host also hears of each viewer joining: keep the candidates only.
        received = await candidates(host, SENDS * VIEWERS)
        for viewer in viewers:
            mine = [
                m["candidate"]["candidate"] for m in received if m["from"] == viewer.participant_id
            ]
            assert mine == [candidate(n)["candidate"] for n in range(SENDS)], viewer.participant_id
        for viewer in viewers:
            got = await candidates(viewer, SENDS)
            assert [m["candidate"]["candidate"] for m in got] == [
                candidate(n)["candidate"] for n in range(SENDS)
            ]
            seqs = [m["seq"] for m in got]
            assert seqs == sorted(set(seqs))
        assert "Traceback" not in a.log() + b.log()
    finally:
        for member in (host, *viewers):
            await member.close()


async def test_a_room_spans_processes_on_a_cluster(
    start_server: Callable[..., ServerProcess], redis_cluster: RedisClusterServers
) -> None:
    """Rooms land on every node of the cluster; each works across two processes, and the
    end of a room reaches the viewer on the other process."""
    a = start_server(redis_url=redis_cluster.url)
    b = start_server(redis_url=redis_cluster.url)
    for _ in range(6):  # six room ids: with three nodes, several land on each
        host = await host_room(a.base_url)
        viewer = await join_as(b.base_url, host.room_id)
        try:
            await host.next("viewer-joined")
            await viewer.send("answer", "host", desc={"type": "answer", "sdp": "v=0"})
            assert (await host.next("answer"))["from"] == viewer.participant_id
            await host.send("candidate", viewer.participant_id, candidate=candidate(1))
            assert (await viewer.next("candidate"))["candidate"] == candidate(1)
            assert isinstance(host, SocketMember) and host.socket is not None
            await host.socket.send(json.dumps({"type": "leave"}))
            ended = await viewer.next("room-ended")
            assert ended["reason"] == "host-ended"
        finally:
            await host.close()
            await viewer.close()


async def test_garbage_collector_pauses_are_timed_in_metrics(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Each process times its collector: the histogram fills as the server works (young
    collections run every few hundred allocations), so a stall can be told apart."""
    server = start_server()
    host = await host_room(server.base_url)
    viewers = [await join_as(server.base_url, host.room_id) for _ in range(3)]
    try:
        deadline = asyncio.get_running_loop().time() + 20
        count = 0.0
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            while count < 1:
                assert asyncio.get_running_loop().time() < deadline, "no collection timed"
                for viewer in viewers:
                    await viewer.send("candidate", "host", candidate=candidate(1))
                for line in (await http.get("/metrics")).text.splitlines():
                    if line.startswith('peerscreen_gc_pause_seconds_count{generation="0"}'):
                        count = float(line.rsplit(" ", 1)[1])
            text = (await http.get("/metrics")).text
        assert 'peerscreen_gc_pause_seconds_bucket{generation="0",le="0.01"}' in text
    finally:
        for member in (host, *viewers):
            await member.close()
