"""ICE servers handed to participants: short-lived TURN credentials, never the secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import httpx

from ..support.clients import create_room, join_room
from ..support.processes import ServerProcess

SECRET = "the-shared-turn-secret"


async def test_participants_get_their_own_short_lived_credentials(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        stun_urls="stun:127.0.0.1:3478",
        turn_urls="turn:127.0.0.1:3478?transport=udp",
        turn_secret=SECRET,
        turn_ttl=600,
    )
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room = await create_room(http)
        viewer = await join_room(http, room["roomId"])
        path = f"/api/rooms/{room['roomId']}/ice-servers"
        response = await http.get(
            path, headers={"Authorization": f"Bearer {viewer['viewerToken']}"}
        )
        assert response.status_code == 200
        assert SECRET not in response.text
        data = response.json()
        assert data["relayAvailable"] is True and data["iceTransportPolicy"] == "all"
        stun, turn = data["iceServers"]
        assert stun == {"urls": ["stun:127.0.0.1:3478"]}
        expiry, room_id, participant = turn["username"].split(":")
        assert (room_id, participant) == (room["roomId"], viewer["viewerId"])
        assert 590 <= int(expiry) - time.time() <= 610
        expected = base64.b64encode(
            hmac.new(SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
        ).decode()
        assert turn["credential"] == expected

        assert (await http.get(path)).status_code == 401
        other = await create_room(http)
        foreign = await http.get(path, headers={"Authorization": f"Bearer {other['hostToken']}"})
        assert foreign.status_code == 401
        config = (await http.get("/api/config")).json()
        assert config["relayAvailable"] is True and SECRET not in str(config)


async def test_without_turn_there_is_no_relay(memory_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=memory_server.base_url) as http:
        room = await create_room(http)
        data = (
            await http.get(
                f"/api/rooms/{room['roomId']}/ice-servers",
                headers={"Authorization": f"Bearer {room['hostToken']}"},
            )
        ).json()
        assert data["iceServers"] == [] and data["relayAvailable"] is False
        assert (await http.get("/api/config")).json()["relayAvailable"] is False


async def test_creating_and_joining_answer_with_the_participants_ice_servers(
    start_server: Callable[..., ServerProcess],
) -> None:
    """The page connects from these without another round trip: they must be the
    participant's own, as ice-servers would give them."""
    server = start_server(
        stun_urls="stun:127.0.0.1:3478",
        turn_urls="turn:127.0.0.1:3478?transport=udp",
        turn_secret=SECRET,
        relay_only=True,
    )
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room = await create_room(http)
        viewer = await join_room(http, room["roomId"])
        for answer, participant, token in (
            (room, "host", room["hostToken"]),
            (viewer, viewer["viewerId"], viewer["viewerToken"]),
        ):
            given = answer["ice"]
            fetched = (
                await http.get(
                    f"/api/rooms/{room['roomId']}/ice-servers",
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).json()
            assert given.keys() == fetched.keys()
            assert given["iceTransportPolicy"] == "relay" and given["relayAvailable"] is True
            stun, turn = given["iceServers"]
            assert stun == fetched["iceServers"][0]
            assert turn["username"].split(":")[1:] == [room["roomId"], participant]
            assert SECRET not in str(answer)
