"""Access control: AUTH_SECRET, room passcodes, locking, removing a viewer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
import websockets

from ..support.clients import SocketMember, host_room, join_as
from ..support.processes import ServerProcess


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_auth_secret_guards_room_creation_only(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(auth_secret="s3cret-for-tests")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        missing = await http.post("/api/rooms")
        assert missing.status_code == 401 and "AUTH_SECRET" in missing.json()["error"]["message"]
        wrong = await http.post("/api/rooms", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        room = await http.post("/api/rooms", headers={"Authorization": "Bearer s3cret-for-tests"})
        assert room.status_code == 201
        # Viewers never need it.
        joined = await http.post(f"/api/rooms/{room.json()['roomId']}/viewers")
        assert joined.status_code == 201


async def test_without_auth_secret_anyone_creates_rooms(memory_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=memory_server.base_url) as http:
        assert (await http.post("/api/rooms")).status_code == 201


async def test_passcode_right_wrong_and_rate_limited(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(rate_passcode="3/2seconds")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room = (await http.post("/api/rooms", json={"passcode": "tulip 42"})).json()
        path = f"/api/rooms/{room['roomId']}/viewers"
        info = (await http.get(f"/api/rooms/{room['roomId']}")).json()
        assert info["passcodeRequired"] is True
        none = await http.post(path)
        assert none.status_code == 401 and error_code(none) == "passcode_required"
        assert (await http.post(path, json={"passcode": "tulip 42"})).status_code == 201
        for _ in range(3):
            wrong = await http.post(path, json={"passcode": "rose"})
            assert wrong.status_code == 403 and error_code(wrong) == "passcode_wrong"
        # Out of attempts: even the right passcode waits, and says so.
        limited = await http.post(path, json={"passcode": "tulip 42"})
        assert limited.status_code == 429 and limited.headers["Retry-After"]
        assert limited.json()["error"]["message"].startswith("Too many wrong passcodes")
        deadline = time.monotonic() + 10
        while (await http.post(path, json={"passcode": "tulip 42"})).status_code == 429:
            assert time.monotonic() < deadline, "the passcode limit did not reset"
            await asyncio.sleep(0.1)


async def test_host_sets_and_clears_a_passcode_and_locks_the_room(
    memory_server: ServerProcess,
) -> None:
    host = await host_room(memory_server.base_url, "poll")
    room_path = f"/api/rooms/{host.room_id}"
    async with httpx.AsyncClient(base_url=memory_server.base_url) as anonymous:
        viewer = await join_as(memory_server.base_url, host.room_id, "poll")
        # Only the host changes access.
        refused = await viewer.http.patch(room_path, json={"locked": True})
        assert refused.status_code == 403
        set_code = await host.http.patch(room_path, json={"passcode": "1234"})
        assert set_code.json()["passcodeRequired"] is True
        assert (await anonymous.post(room_path + "/viewers")).status_code == 401
        locked = await host.http.patch(room_path, json={"locked": True})
        assert locked.json()["locked"] is True
        refused_join = await anonymous.post(room_path + "/viewers", json={"passcode": "1234"})
        assert refused_join.status_code == 403 and error_code(refused_join) == "room_locked"
        # Viewers already in stay in.
        assert (await viewer.http.get(room_path + "/messages")).status_code == 200
        await host.http.patch(room_path, json={"locked": False, "passcode": None})
        assert (await anonymous.post(room_path + "/viewers")).status_code == 201
    await viewer.close()
    await host.close()


async def test_a_removed_viewer_is_refused_at_once(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url, "socket")
    viewer = await join_as(memory_server.base_url, host.room_id, "socket")
    assert isinstance(viewer, SocketMember)
    await host.next("viewer-joined")
    response = await host.http.delete(f"/api/rooms/{host.room_id}/viewers/{viewer.participant_id}")
    assert response.status_code == 200
    left = await host.next("viewer-left")
    assert left["reason"] == "removed"
    assert (await viewer.wait_closed())[0] == 4403
    again = await viewer.http.get(f"/api/rooms/{host.room_id}/messages")
    assert again.status_code == 403
    async with websockets.connect(viewer.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": viewer.token}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    await host.close()
