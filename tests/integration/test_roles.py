"""Roles are enforced on every call: tokens decide who may send and read what."""

from __future__ import annotations

import httpx
import pytest

from ..support.clients import candidate, create_room, join_room, offer_sdp
from ..support.processes import ServerProcess


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]


@pytest.fixture
async def room(http: httpx.AsyncClient) -> dict[str, str]:
    created = await create_room(http)
    alice = await join_room(http, created["roomId"])
    bob = await join_room(http, created["roomId"])
    return {
        "id": created["roomId"],
        "host": created["hostToken"],
        "alice": alice["viewerToken"],
        "alice_id": alice["viewerId"],
        "bob": bob["viewerToken"],
        "bob_id": bob["viewerId"],
    }


async def test_only_the_host_sends_offers(http: httpx.AsyncClient, room: dict[str, str]) -> None:
    body = {"roomId": room["id"], "desc": offer_sdp("x"), "viewerId": room["bob_id"]}
    assert_error(
        await http.post("/api/offer", json=body, headers=bearer(room["alice"])), 403, "forbidden"
    )
    ws_body = {"type": "offer", "to": room["bob_id"], "desc": offer_sdp("x")}
    assert_error(
        await http.post(
            f"/api/rooms/{room['id']}/messages", json=ws_body, headers=bearer(room["alice"])
        ),
        403,
        "forbidden",
    )


async def test_viewers_cannot_read_or_write_as_someone_else(
    http: httpx.AsyncClient, room: dict[str, str]
) -> None:
    host = bearer(room["host"])
    await http.post(
        "/api/offer",
        headers=host,
        json={"roomId": room["id"], "desc": offer_sdp("a"), "viewerId": room["alice_id"]},
    )
    # Bob names Alice: refused. Bob asks for his own offers: there are none.
    params = {"roomId": room["id"], "role": "viewer", "viewerId": room["alice_id"]}
    assert_error(
        await http.get("/api/offer", params=params, headers=bearer(room["bob"])), 403, "forbidden"
    )
    params["viewerId"] = room["bob_id"]
    response = await http.get("/api/offer", params=params, headers=bearer(room["bob"]))
    assert response.json() == {"desc": None}
    # A viewer posing as host.
    assert_error(
        await http.get(
            "/api/answer",
            params={"roomId": room["id"], "role": "host"},
            headers=bearer(room["bob"]),
        ),
        403,
        "forbidden",
    )
    # A viewer's candidate cannot be aimed at another viewer.
    assert_error(
        await http.post(
            f"/api/rooms/{room['id']}/messages",
            headers=bearer(room["bob"]),
            json={"type": "candidate", "to": room["alice_id"], "candidate": candidate(1)},
        ),
        403,
        "forbidden",
    )
    # Alice still gets her offer, untouched by Bob's attempts.
    params["viewerId"] = room["alice_id"]
    response = await http.get("/api/offer", params=params, headers=bearer(room["alice"]))
    assert response.json() == {"desc": offer_sdp("a")}


async def test_tokens_are_checked(http: httpx.AsyncClient, room: dict[str, str]) -> None:
    path = f"/api/rooms/{room['id']}/messages"
    assert_error(await http.get(path), 401, "unauthorized")
    assert_error(await http.get(path, headers=bearer("host.wrong")), 401, "unauthorized")
    assert_error(await http.get(path, headers=bearer(room["alice"] + "x")), 401, "unauthorized")
    assert_error(await http.get(path, headers=bearer("garbage")), 401, "unauthorized")
    other = await create_room(http)
    assert_error(
        await http.get(f"/api/rooms/{other['roomId']}/messages", headers=bearer(room["host"])),
        401,
        "unauthorized",
    )


async def test_only_the_host_ends_the_room_or_removes_others(
    http: httpx.AsyncClient, room: dict[str, str]
) -> None:
    assert_error(
        await http.delete(f"/api/rooms/{room['id']}", headers=bearer(room["alice"])),
        403,
        "forbidden",
    )
    assert_error(
        await http.delete(
            f"/api/rooms/{room['id']}/viewers/{room['bob_id']}", headers=bearer(room["alice"])
        ),
        403,
        "forbidden",
    )
    removed = await http.delete(
        f"/api/rooms/{room['id']}/viewers/{room['bob_id']}", headers=bearer(room["host"])
    )
    assert removed.status_code == 200
    # Bob's token stops working at once.
    assert_error(
        await http.get(f"/api/rooms/{room['id']}/messages", headers=bearer(room["bob"])),
        403,
        "forbidden",
    )


async def test_host_cannot_address_a_viewer_that_is_not_there(
    http: httpx.AsyncClient, room: dict[str, str]
) -> None:
    response = await http.post(
        "/api/candidate",
        headers=bearer(room["host"]),
        json={
            "roomId": room["id"],
            "role": "host",
            "viewerId": "vzzzzzzzzzz",
            "candidate": candidate(1),
        },
    )
    assert_error(response, 404, "viewer_not_found")


async def test_viewer_presence_is_shown_to_the_host_only(
    http: httpx.AsyncClient, room: dict[str, str]
) -> None:
    public = (await http.get("/api/diagnostics", params={"roomId": room["id"]})).json()
    assert public["exists"] and public["viewerCount"] == 2 and public["viewers"] is None
    as_viewer = await http.get(f"/api/rooms/{room['id']}", headers=bearer(room["alice"]))
    assert as_viewer.json()["viewers"] is None
    as_host = (await http.get(f"/api/rooms/{room['id']}", headers=bearer(room["host"]))).json()
    assert {v["viewerId"] for v in as_host["viewers"]} == {room["alice_id"], room["bob_id"]}
    assert {v["presence"] for v in as_host["viewers"]} == {"connected"}


async def test_room_full(start_server: object) -> None:
    server: ServerProcess = start_server(max_viewers=2)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        created = await create_room(client)
        for _ in range(2):
            await join_room(client, created["roomId"])
        response = await client.post(f"/api/rooms/{created['roomId']}/viewers")
        assert_error(response, 409, "room_full")
        assert "Room is full" in response.json()["error"]["message"]
        info = (await client.get(f"/api/rooms/{created['roomId']}")).json()
        assert info["full"] and info["viewerCount"] == 2
