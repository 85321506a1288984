"""Chat: pushed live to everyone in the room, kept for late joiners, text only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from ..support.clients import SocketMember, host_room, join_as
from ..support.processes import ServerProcess

XSS = "<img src=x onerror=alert(1)>"


async def test_chat_reaches_everyone_and_late_joiners_see_history(
    any_server: ServerProcess,
) -> None:
    base = any_server.base_url
    host = await host_room(base, "socket")
    alice = await join_as(base, host.room_id, "socket")
    bob = await join_as(base, host.room_id, "longpoll")
    assert isinstance(alice, SocketMember)
    reply = await alice.send_ws(
        {"type": "chat", "id": "c1", "text": " hello all ", "name": "Alice"}
    )
    assert reply == {"type": "accepted", "id": "c1"}
    response = await bob.http.post(
        f"/api/rooms/{host.room_id}/chat", json={"text": XSS, "name": "Bob\u0007"}
    )
    assert response.status_code == 202
    for member in (host, alice, bob):
        first = await member.next("chat")
        second = await member.next("chat")
        assert (first["name"], first["text"], first["from"]) == (
            "Alice",
            "hello all",
            alice.participant_id,
        )
        assert (second["name"], second["text"]) == ("Bob", XSS)  # kept as text, verbatim
    late = await join_as(base, host.room_id, "poll")
    history = (await late.http.get(f"/api/rooms/{host.room_id}/chat")).json()["messages"]
    assert [m["text"] for m in history][:2] == ["hello all", XSS]
    for member in (host, alice, bob, late):
        await member.close()


async def test_chat_history_keeps_the_last_200(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url, "poll")
    for n in range(205):
        response = await host.http.post(f"/api/rooms/{host.room_id}/chat", json={"text": f"{n}"})
        assert response.status_code == 202
    history = (await host.http.get(f"/api/rooms/{host.room_id}/chat")).json()["messages"]
    assert [m["text"] for m in history] == [str(n) for n in range(5, 205)]
    assert {m["name"] for m in history} == {"Host"}
    await host.close()


async def test_bad_chat_is_refused(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url, "poll")
    path = f"/api/rooms/{host.room_id}/chat"
    too_long = await host.http.post(path, json={"text": "x" * 1001})
    assert too_long.status_code == 413
    assert (await host.http.post(path, json={"text": "   "})).status_code == 422
    assert (await host.http.post(path, json={"text": "hi", "name": "n" * 41})).status_code == 413
    async with httpx.AsyncClient(base_url=memory_server.base_url) as anonymous:
        assert (await anonymous.post(path, json={"text": "hi"})).status_code == 401
    await host.close()


async def test_chat_rate_limit_per_sender_is_reached_and_resets(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(rate_chat="3/2seconds")
    host = await host_room(server.base_url, "poll")
    viewer = await join_as(server.base_url, host.room_id, "poll")
    path = f"/api/rooms/{host.room_id}/chat"
    for _ in range(3):
        assert (await host.http.post(path, json={"text": "hi"})).status_code == 202
    refused = await host.http.post(path, json={"text": "hi"})
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("You are sending chat messages too fast")
    assert refused.headers["Retry-After"]
    # Another sender in the same room has its own allowance.
    assert (await viewer.http.post(path, json={"text": "hi"})).status_code == 202
    deadline = time.monotonic() + 10
    while (await host.http.post(path, json={"text": "again"})).status_code == 429:
        assert time.monotonic() < deadline, "the chat limit did not reset"
        await asyncio.sleep(0.1)
    for member in (host, viewer):
        await member.close()
