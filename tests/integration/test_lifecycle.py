"""Rooms end, viewers leave, sockets drop and resume, dead clients are dropped."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from ..support.clients import (
    PollMember,
    SocketMember,
    candidate,
    host_room,
    join_as,
    offer_sdp,
)
from ..support.processes import ServerProcess

FAST = {
    "heartbeat_interval": 0.3,
    "heartbeat_timeout": 1.0,
    "grace_period": 1.5,
    "hello_timeout": 1.0,
}


async def test_ending_the_room_tells_every_viewer_at_once(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url)
    on_socket = await join_as(memory_server.base_url, host.room_id, "socket")
    polling = await join_as(memory_server.base_url, host.room_id, "longpoll")
    assert isinstance(on_socket, SocketMember)
    response = await host.http.delete(f"/api/rooms/{host.room_id}")
    assert response.status_code == 200
    ended = await on_socket.next("room-ended", timeout=5)
    assert ended["reason"] == "host-ended"
    assert await on_socket.wait_closed() == (4410, "The host ended this room.")
    assert (await polling.next("room-ended", timeout=5))["reason"] == "host-ended"
    # Nothing more can be sent, and nobody new gets in; the room says it ended.
    refused = await polling.http.post(
        f"/api/rooms/{host.room_id}/messages", json={"type": "candidate", "candidate": candidate(1)}
    )
    assert refused.status_code == 410
    assert refused.json()["error"]["code"] == "room_ended"
    join = await polling.http.post(f"/api/rooms/{host.room_id}/viewers")
    assert join.status_code == 410
    info = (await polling.http.get(f"/api/rooms/{host.room_id}")).json()
    assert info["ended"] is True
    for member in (host, on_socket, polling):
        await member.close()


async def test_a_viewer_leaving_is_reported_to_the_host(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url)
    leaving = await join_as(memory_server.base_url, host.room_id, "socket")
    staying = await join_as(memory_server.base_url, host.room_id, "poll")
    assert isinstance(leaving, SocketMember)
    await host.next("viewer-joined")
    await host.next("viewer-joined")
    assert leaving.socket is not None
    await leaving.socket.send(json.dumps({"type": "leave"}))
    assert await leaving.wait_closed() == (1000, "Left the room")
    left = await host.next("viewer-left", timeout=5)
    assert left == {
        "type": "viewer-left",
        "viewerId": leaving.participant_id,
        "reason": "left",
        "seq": left["seq"],
    }
    # The other viewer is unaffected.
    await host.send("offer", to=staying.participant_id, desc=offer_sdp("s"))
    assert (await staying.next("offer"))["desc"] == offer_sdp("s")
    # REST leave works the same.
    response = await staying.http.delete(
        f"/api/rooms/{host.room_id}/viewers/{staying.participant_id}"
    )
    assert response.status_code == 200
    assert (await host.next("viewer-left", timeout=5))["viewerId"] == staying.participant_id
    for member in (host, leaving, staying):
        await member.close()


async def test_a_dropped_socket_resumes_without_loss_or_repeat(
    any_server: ServerProcess,
) -> None:
    host = await host_room(any_server.base_url, "poll")
    viewer = await join_as(any_server.base_url, host.room_id, "socket")
    assert isinstance(viewer, SocketMember)
    await host.send("offer", to=viewer.participant_id, desc=offer_sdp("1"))
    for n in range(1, 4):
        await host.send("candidate", to=viewer.participant_id, candidate=candidate(n))
    for _ in range(5):  # how many watch, the offer, three candidates
        await viewer.next(lambda m: True)
    seen = viewer.received[-1]["seq"]
    await viewer.drop()
    # Accepted (202) while the viewer is away: must all arrive after it resumes.
    for n in range(4, 10):
        await host.send("candidate", to=viewer.participant_id, candidate=candidate(n))
    again = await SocketMember(
        any_server.base_url, host.room_id, viewer.participant_id, viewer.token, resume=seen
    ).start()
    for _ in range(6):
        await again.next(lambda m: True)
    everything = viewer.received + again.received
    assert [m["seq"] for m in everything] == list(range(1, 12))
    candidates = [m["candidate"] for m in everything if m["type"] == "candidate"]
    assert candidates == [candidate(n) for n in range(1, 10)]
    for member in (host, viewer, again):
        await member.close()


async def test_unacknowledged_messages_are_sent_again(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url, "poll")
    viewer = await join_as(memory_server.base_url, host.room_id, "socket", auto_ack=False)
    assert isinstance(viewer, SocketMember)
    for n in range(1, 4):
        await host.send("candidate", to=viewer.participant_id, candidate=candidate(n))
    for _ in range(3):
        await viewer.next("candidate")
    await viewer.drop()
    # The client only processed the first one before its network went away.
    again = await SocketMember(
        memory_server.base_url, host.room_id, viewer.participant_id, viewer.token, resume=1
    ).start()
    redelivered = [await again.next("candidate") for _ in range(2)]
    assert [m["seq"] for m in redelivered] == [2, 3]
    await again.close()
    await host.close()


async def test_a_newer_socket_replaces_the_older_one(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url)
    first = await join_as(memory_server.base_url, host.room_id, "socket")
    assert isinstance(first, SocketMember)
    second = await SocketMember(
        memory_server.base_url, host.room_id, first.participant_id, first.token
    ).start()
    assert await first.wait_closed() == (4409, "Replaced by a newer connection")
    await host.send("offer", to=first.participant_id, desc=offer_sdp("2"))
    assert (await second.next("offer"))["desc"] == offer_sdp("2")
    for member in (host, first, second):
        await member.close()


async def test_silent_sockets_are_dropped_and_reported_after_the_grace_period(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(**FAST)
    host = await host_room(server.base_url)
    healthy = await join_as(server.base_url, host.room_id, "socket")
    silent = await join_as(server.base_url, host.room_id, "socket", answer_pings=False)
    assert isinstance(silent, SocketMember) and isinstance(healthy, SocketMember)
    assert await silent.wait_closed(timeout=5) == (4408, "No reply to heartbeats")
    left = await host.next("viewer-left", timeout=5)
    assert left["viewerId"] == silent.participant_id and left["reason"] == "timeout"
    # The viewer that answers pings is still there, and still reachable.
    assert healthy.pings >= 3 and healthy.close_code is None
    await host.send("offer", to=healthy.participant_id, desc=offer_sdp("h"))
    assert (await healthy.next("offer"))["desc"] == offer_sdp("h")
    for member in (host, healthy, silent):
        await member.close()


async def test_a_viewer_back_within_the_grace_period_stays(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(**FAST)
    host = await host_room(server.base_url)
    viewer = await join_as(server.base_url, host.room_id, "socket")
    assert isinstance(viewer, SocketMember)
    await viewer.drop()
    back = await SocketMember(
        server.base_url, host.room_id, viewer.participant_id, viewer.token
    ).start()
    # Longer than the grace period: the viewer must not be reported as left.
    with pytest.raises(AssertionError, match="no viewer-left"):
        await host.next("viewer-left", timeout=2.5)
    info = (await host.http.get(f"/api/rooms/{host.room_id}")).json()
    assert [v["presence"] for v in info["viewers"]] == ["connected"]
    for member in (host, viewer, back):
        await member.close()


async def test_a_host_gone_past_the_grace_period_ends_the_room(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(**FAST)
    host = await host_room(server.base_url)
    viewer = await join_as(server.base_url, host.room_id, "socket")
    assert isinstance(host, SocketMember)
    await host.drop()
    ended = await viewer.next("room-ended", timeout=6)
    assert ended["reason"] == "host-left"
    # Everything after says the host left, not that it ended the room.
    left = "The host left: gone longer than the grace period, so the room ended."
    assert isinstance(viewer, SocketMember)
    assert await viewer.wait_closed() == (4410, left)
    response = await viewer.http.post(
        f"/api/rooms/{host.room_id}/messages",
        json={"type": "candidate", "candidate": {"candidate": "", "sdpMid": "0"}},
    )
    assert response.status_code == 410
    assert response.json()["error"] == {"code": "room_ended", "message": left}
    await viewer.close()


async def test_socket_errors_have_close_codes_with_reasons(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(**FAST)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room = (await http.post("/api/rooms")).json()

    async def close_of(path: str, first: str | None) -> tuple[int, str]:
        async with websockets.connect(server.ws_url + path) as ws:
            if first is not None:
                with contextlib.suppress(websockets.ConnectionClosed):  # may close first
                    await ws.send(first)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code, closed.value.rcvd.reason

    ws_path = f"/api/rooms/{room['roomId']}/ws"
    hello = json.dumps({"type": "hello", "token": room["hostToken"]})
    assert (await close_of(ws_path, "not json"))[0] == 4400
    assert (await close_of(ws_path, json.dumps({"type": "hello", "token": "host.bad"}))) == (
        4401,
        "Invalid token for this room.",
    )
    code, reason = await close_of("/api/rooms/zzzz-zzzzz-zzzz/ws", hello)
    assert code == 4404 and reason.startswith("Room not found")
    assert (await close_of("/api/rooms/nonsense/ws", hello))[0] == 4400
    assert await close_of(ws_path, None) == (4408, "No hello message in time")
    resume = json.dumps({"type": "hello", "token": room["hostToken"], "resume": 99})
    assert (await close_of(ws_path, resume))[0] == 4400


async def test_bad_socket_messages_get_error_replies(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url)
    viewer = await join_as(memory_server.base_url, host.room_id, "socket")
    assert isinstance(viewer, SocketMember) and isinstance(host, SocketMember)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "offer", "id": 1, "desc": offer_sdp("x")}, "forbidden"),
        ({"type": "answer", "id": 2}, "validation_error"),
        ({"type": "answer", "id": 3, "desc": offer_sdp("x")}, "validation_error"),
        ({"type": "dance", "id": 4}, "validation_error"),
        (
            {"type": "answer", "id": 5, "desc": {"type": "answer", "sdp": "x" * 70000}},
            "payload_too_large",
        ),
        ({"type": "hello", "token": "again"}, "invalid_request"),
    ]
    for message, code in cases:
        reply = await viewer.send_ws(message)
        assert reply["type"] == "error" and reply["code"] == code, (message, reply)
        assert reply["message"]
        assert reply["id"] == message.get("id")
    assert (await viewer.send_ws({"type": "ping", "id": "p"})) == {"type": "pong", "id": "p"}
    # The socket still works after all of that.
    await viewer.send("answer", desc={"type": "answer", "sdp": "v=0"})
    assert (await host.next("answer"))["from"] == viewer.participant_id
    for member in (host, viewer):
        await member.close()


async def test_polling_viewer_sees_the_room_end_after_it_returns(
    memory_server: ServerProcess,
) -> None:
    host = await host_room(memory_server.base_url)
    viewer = await join_as(memory_server.base_url, host.room_id, "poll")
    assert isinstance(viewer, PollMember)
    await host.http.delete(f"/api/rooms/{host.room_id}")
    assert (await viewer.next("room-ended"))["reason"] == "host-ended"
    for member in (host, viewer):
        await member.close()


async def test_viewers_hear_at_once_when_the_host_goes_away_and_comes_back(
    memory_server: ServerProcess,
) -> None:
    host = await host_room(memory_server.base_url, "socket")
    viewer = await join_as(memory_server.base_url, host.room_id, "longpoll")
    try:
        await host.next("viewer-joined")
        assert isinstance(host, SocketMember)
        await host.drop()
        assert (await viewer.next("host-away", timeout=2))["type"] == "host-away"
        back = await SocketMember(
            memory_server.base_url,
            host.room_id,
            "host",
            host.token,
            resume=host.received[-1]["seq"],
        ).start()
        assert (await viewer.next("host-back", timeout=2))["type"] == "host-back"
        # Still the same room: the host's messages reach the viewer.
        await back.send("offer", to=viewer.participant_id, desc=offer_sdp("again"))
        assert (await viewer.next("offer"))["desc"] == offer_sdp("again")
        await back.close()
    finally:
        await host.close()
        await viewer.close()


async def test_viewers_hear_how_many_watch(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url, "poll")
    first = await join_as(memory_server.base_url, host.room_id, "socket")
    assert (await first.next("audience"))["viewers"] == 1
    second = await join_as(memory_server.base_url, host.room_id, "longpoll")
    assert (await first.next("audience"))["viewers"] == 2
    assert (await second.next("audience"))["viewers"] == 2
    await second.http.delete(f"/api/rooms/{host.room_id}/viewers/{second.participant_id}")
    assert (await first.next("audience"))["viewers"] == 1
    for member in (host, first, second):
        await member.close()


async def test_the_host_pauses_and_resumes_and_viewers_are_told(
    memory_server: ServerProcess,
) -> None:
    host = await host_room(memory_server.base_url, "poll")
    viewer = await join_as(memory_server.base_url, host.room_id, "socket")
    path = f"/api/rooms/{host.room_id}"
    paused = await host.http.patch(path, json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert (await viewer.next("host-paused"))["type"] == "host-paused"
    # Told again only when it changes; a viewer joining meanwhile hears it at once.
    await host.http.patch(path, json={"paused": True})
    late = await join_as(memory_server.base_url, host.room_id, "longpoll")
    assert (await late.next("host-paused"))["type"] == "host-paused"
    # Only the host may pause.
    refused = await viewer.http.patch(path, json={"paused": False})
    assert refused.status_code == 403
    resumed = await host.http.patch(path, json={"paused": False})
    assert resumed.json()["paused"] is False
    for member in (viewer, late):
        assert (await member.next("host-resumed"))["type"] == "host-resumed"
    assert [m["type"] for m in viewer.received].count("host-paused") == 1
    for member in (host, viewer, late):
        await member.close()
