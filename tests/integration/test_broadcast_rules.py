"""The broadcast messages' rules, on a server with no media server or a dead one: who may
signal the media server, and a room that stays a mesh when no Janus answers."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from peerscreen.ice import turn_credential

from ..support.clients import SocketMember, host_room, join_as, offer_sdp
from ..support.processes import ServerProcess, free_port


async def refusal(member: SocketMember, message: dict[str, object]) -> tuple[str, str]:
    reply = await member.send_ws({**message, "id": "m1"})
    assert reply["type"] == "error", reply
    return str(reply["code"]), str(reply["message"])


async def test_who_may_signal_the_media_server(memory_server: ServerProcess) -> None:
    host = await host_room(memory_server.base_url)
    viewer = await join_as(memory_server.base_url, host.room_id)
    assert isinstance(host, SocketMember) and isinstance(viewer, SocketMember)
    # A viewer never offers to the media server, nor the host answers it.
    assert await refusal(viewer, {"type": "offer", "to": "sfu", "desc": offer_sdp("v")}) == (
        "forbidden",
        "The media server makes the viewer's offer; answer it.",
    )
    answer = {"type": "answer", "sdp": "v=0\r\n"}
    code, _ = await refusal(host, {"type": "answer", "to": "sfu", "desc": answer})
    assert code == "forbidden"
    # In a mesh room there is no media server to talk to.
    assert await refusal(host, {"type": "offer", "to": "sfu", "desc": offer_sdp("h")}) == (
        "invalid_request",
        "This room is not in broadcast: send signals to the host.",
    )
    code, _ = await refusal(viewer, {"type": "subscribe"})
    assert code == "invalid_request"
    code, message = await refusal(host, {"type": "subscribe"})
    assert (code, message) == ("forbidden", "The host publishes; viewers subscribe.")
    code, _ = await refusal(host, {"type": "switched"})
    assert code == "forbidden"
    for member in (host, viewer):
        await member.close()


async def test_with_no_media_server_answering_the_room_stays_a_mesh(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(janus_urls=f"ws://127.0.0.1:{free_port()}", mesh_max=1)
    host = await host_room(server.base_url)
    viewers = [await join_as(server.base_url, host.room_id) for _ in range(2)]
    await host.next("viewer-joined")
    await host.next("viewer-joined")
    info = (await host.http.get(f"/api/rooms/{host.room_id}")).json()
    assert (info["path"], info["maxViewers"]) == ("mesh", 10)
    assert not [m for m in host.received if m["type"] == "broadcast"]
    assert "stays a mesh: No media server answers" in server.log()
    for member in (host, *viewers):
        await member.close()


async def test_the_media_server_gets_turn_credentials_with_its_key_only(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        janus_urls=f"ws://127.0.0.1:{free_port()}",
        janus_admin_key="media-key",
        turn_urls="turn:127.0.0.1:3478?transport=udp",
        turn_secret="turn-secret",
    )
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        for params in ({}, {"api": "wrong"}, {"key": "media-ke"}):
            refused = await http.get("/api/media/turn", params=params)
            assert refused.status_code == 401, refused.text
        answer = await http.get(
            "/api/media/turn", params={"service": "turn", "api": "media-key", "username": "1"}
        )
        assert answer.status_code == 200, answer.text
        credentials = answer.json()
    assert credentials["uris"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert credentials["username"].endswith(":media:janus") and credentials["ttl"] == 3600
    assert credentials["password"] == turn_credential("turn-secret", credentials["username"])


async def test_signals_to_the_media_server_count_against_the_signal_rate(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A viewer asking for subscriptions in a loop is stopped like any other flood."""
    server = start_server(rate_signal="5/minute")
    host = await host_room(server.base_url)
    viewer = await join_as(server.base_url, host.room_id)
    assert isinstance(viewer, SocketMember)
    codes = [(await refusal(viewer, {"type": "subscribe"}))[0] for _ in range(8)]
    assert codes[:5] == ["invalid_request"] * 5  # counted, then refused: not broadcast
    assert codes[5:] == ["rate_limited"] * 3
    for member in (host, viewer):
        await member.close()
