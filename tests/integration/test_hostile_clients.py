"""A client that means harm, on real servers: what it sends is refused cleanly, what it
asks for reveals no secret, and nothing it does reaches a 500, a traceback or a leak."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import socket
import time
from collections.abc import Callable

import httpx
import pytest
import websockets

from peerscreen.ice import turn_credential

from ..support.clients import SocketMember, create_room, host_room, join_as, join_room
from ..support.processes import RedisServer, ServerProcess


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity"])
async def test_nan_and_infinities_are_refused_with_400(http: httpx.AsyncClient, value: str) -> None:
    room = await create_room(http)
    auth = {"Authorization": f"Bearer {room['hostToken']}"}
    messages = await http.get(
        f"/api/rooms/{room['roomId']}/messages", params={"wait": value}, headers=auth
    )
    assert_error(messages, 400, "invalid_request")
    classic = await http.get(
        "/api/candidate", params={"roomId": room["roomId"], "wait": value}, headers=auth
    )
    assert_error(classic, 400, "invalid_request")
    # Non-standard JSON numbers in a body: the same answer.
    number = "NaN" if value.lower() == "nan" else "Infinity"
    report = await http.post(
        f"/api/rooms/{room['roomId']}/report",
        content=f'{{"setupMs": {number}, "path": "direct"}}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_error(report, 400, "invalid_request")
    assert "finite" in report.json()["error"]["message"]


async def test_deeply_nested_json_is_refused_on_every_transport(
    memory_server: ServerProcess, http: httpx.AsyncClient
) -> None:
    room = await create_room(http)
    auth = {"Authorization": f"Bearer {room['hostToken']}"}
    deep = "[" * 60_000 + "]" * 60_000  # within the 128 KB a message may take
    over_http = await http.post(
        f"/api/rooms/{room['roomId']}/messages",
        content=deep,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_error(over_http, 400, "invalid_request")
    url = f"{memory_server.ws_url}/api/rooms/{room['roomId']}/ws"
    # Deep within the size limit: 4400, not 1000 (which would mean the host left). Deeper
    # still, 100,000 levels, is over the 128 KB a message may take: 1009, message too big.
    for message, code in ((deep, 4400), ("[" * 100_000 + "]" * 100_000, 1009)):
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "token": room["hostToken"]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
            await ws.send(message)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:  # pings may come first
                    await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == code
    # The room is still there and the host can come back.
    status = await http.get(f"/api/rooms/{room['roomId']}")
    assert status.json()["ended"] is False
    assert "Traceback" not in memory_server.log()


async def test_links_come_from_validated_host_names_only(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(trusted_proxies="10.9.0.0/16")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room = await create_room(http)
        qr = f"/api/rooms/{room['roomId']}/qr.svg"
        assert_error(await http.get(qr, headers={"Host": "a" * 3000}), 400, "invalid_request")
        assert_error(
            await http.get(qr, headers={"Host": "evil.example/<script>"}), 400, "invalid_request"
        )
        assert_error(await http.post("/api/rooms", headers={"Host": "x y"}), 400, "invalid_request")
        assert (await http.get(qr, headers={"Host": "share.example.org:8443"})).status_code == 200
        made = await http.post("/api/rooms", headers={"Host": "share.example.org:8443"})
        assert made.json()["url"] == f"http://share.example.org:8443/r/{made.json()['roomId']}"
        # Forwarded host and scheme count only from a trusted proxy; this client is not one.
        forwarded = await http.post(
            "/api/rooms", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
        )
        assert forwarded.json()["url"].startswith(server.base_url + "/r/")
    assert "Traceback" not in server.log()


async def test_links_behind_a_trusted_tls_proxy_are_https(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(trusted_proxies="127.0.0.1/32")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "share.example.org"}
        made = (await http.post("/api/rooms", headers=forwarded)).json()
        assert made["url"] == f"https://share.example.org/r/{made['roomId']}"
        # Only the proto forwarded: the Host header the proxy passed on.
        only_proto = {"X-Forwarded-Proto": "https", "Host": "share.example.org"}
        made = (await http.post("/api/rooms", headers=only_proto)).json()
        assert made["url"] == f"https://share.example.org/r/{made['roomId']}"


async def test_public_url_is_used_for_every_link(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(public_url="https://share.example.org/screens/")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        made = await http.post("/api/rooms", headers={"Host": "whatever.example"})
        room_id = made.json()["roomId"]
        assert made.json()["url"] == f"https://share.example.org/screens/r/{room_id}"
        # Even a Host header no link could be made of does not matter then.
        qr = await http.get(f"/api/rooms/{room_id}/qr.svg", headers={"Host": "a" * 3000})
        assert qr.status_code == 200


async def test_check_page_never_gets_static_turn_credentials(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        turn_urls="turn:127.0.0.1:3478?transport=udp",
        turn_username="static-user",
        turn_password="static-password-never-shown",
    )
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        check = await http.get("/api/check/ice-servers")
        assert check.status_code == 200
        assert "static-password-never-shown" not in check.text
        assert "static-user" not in check.text
        assert check.json()["relayAvailable"] is True
        assert check.json()["relayCheckable"] is False
        # Participants of a room still get the relay's credentials.
        room = await create_room(http)
        mine = await http.get(
            f"/api/rooms/{room['roomId']}/ice-servers",
            headers={"Authorization": f"Bearer {room['hostToken']}"},
        )
        assert "static-password-never-shown" in mine.text


async def test_check_page_gets_one_minute_credentials_from_a_shared_secret(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(turn_urls="turn:127.0.0.1:3478", turn_secret="shared-secret-value")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        check = (await http.get("/api/check/ice-servers")).json()
    assert check["relayCheckable"] is True
    turn = check["iceServers"][-1]
    expiry = int(turn["username"].split(":")[0])
    # Good for a minute, derived from the secret, and the secret itself never shown.
    assert 0 < expiry - time.time() <= 61
    assert turn["credential"] == turn_credential("shared-secret-value", turn["username"])
    assert "shared-secret-value" not in json.dumps(check)


async def test_wrong_auth_secret_does_not_use_up_the_room_quota(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(auth_secret="the-secret", rate_rooms="2/minute")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        for _ in range(5):
            wrong = await http.post("/api/rooms", headers={"Authorization": "Bearer nope"})
            assert_error(wrong, 401, "unauthorized")
        right = {"Authorization": "Bearer the-secret"}
        assert (await http.post("/api/rooms", headers=right)).status_code == 201
        assert (await http.post("/api/rooms", headers=right)).status_code == 201
        assert_error(await http.post("/api/rooms", headers=right), 429, "rate_limited")


_TOKEN_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")


async def test_logs_hold_no_token_material_and_no_room_code_at_debug_level(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(log_level="debug")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room = await create_room(http)
        room_id = room["roomId"]
        viewer = await join_room(http, room_id)
        host_auth = {"Authorization": f"Bearer {room['hostToken']}"}
        # The room code typed as people do, in a path and in a query.
        compact = room_id.replace("-", "").upper()
        await http.get(f"/api/rooms/{compact}", headers=host_auth)
        await http.get("/api/diagnostics", params={"roomId": compact})
        await http.get(f"/r/{room_id}")
        url = f"{server.ws_url}/api/rooms/{room_id}/ws"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "token": viewer["viewerToken"]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
            await ws.send(json.dumps({"type": "chat", "text": "hello", "id": 1}))
            await asyncio.wait_for(ws.recv(), 10)
        await http.delete(f"/api/rooms/{room_id}", headers=host_auth)
    log = server.log()
    assert "socket open" in log and "GET /r/" in log, "the debug log is not being written"
    for secret in (room["hostToken"], viewer["viewerToken"]):
        material = secret.partition(".")[2]
        for start in range(0, len(material) - 8):
            assert material[start : start + 8] not in log, "token material in the log"
    for form in (room_id, compact, compact.lower(), room_id.upper()):
        assert form not in log, f"room code {form} in the log"
    assert "room#" in log


async def test_chat_strips_what_cannot_be_shown_and_keeps_the_host_unmistakable(
    http: httpx.AsyncClient,
) -> None:
    room = await create_room(http)
    viewer = await join_room(http, room["roomId"])
    chat = f"/api/rooms/{room['roomId']}/chat"
    as_viewer = {"Authorization": f"Bearer {viewer['viewerToken']}"}
    as_host = {"Authorization": f"Bearer {room['hostToken']}"}
    for text in ("\x01\x02\x7f", "\u202e\u200b\u2066", "\x85\x9b", "  \u200b  "):
        refused = await http.post(chat, json={"text": text}, headers=as_viewer)
        assert_error(refused, 422, "validation_error")
    kept = await http.post(
        chat,
        json={"text": "abc\u202edef\u200b\x9b ok 👨\u200d👩\u200d👧", "name": "Ann\u202e"},
        headers=as_viewer,
    )
    assert kept.status_code == 202, kept.text
    for name in ("Host", "host", "HOST", "\uff28\uff4f\uff53\uff54", "The host", "Ann (host)"):
        posing = await http.post(chat, json={"text": "hi", "name": name}, headers=as_viewer)
        assert_error(posing, 422, "validation_error")
    assert (
        await http.post(chat, json={"text": "hi", "name": "Hostel"}, headers=as_viewer)
    ).status_code == 202
    # A blank name is the default name, for the host and for viewers.
    assert (
        await http.post(chat, json={"text": "x", "name": ""}, headers=as_host)
    ).status_code == 202
    assert (
        await http.post(chat, json={"text": "y", "name": " "}, headers=as_viewer)
    ).status_code == 202
    history = (await http.get(chat, headers=as_host)).json()["messages"]
    assert history[0]["text"] == "abcdef ok 👨\u200d👩\u200d👧"
    assert history[0]["name"] == "Ann"
    assert history[-2]["name"] == "Host" and history[-2]["from"] == "host"
    assert history[-1]["name"] == f"Viewer {viewer['viewerId'][1:5]}"


# --- connections, heads and slow clients ----------------------------------------------


async def exchange(port: int, data: bytes, timeout: float = 10, source: str = "127.0.0.1") -> bytes:
    """Send raw bytes, read until the server closes (or the deadline); what it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()


async def hold(port: int, data: bytes, source: str = "127.0.0.1") -> asyncio.StreamWriter:
    """Open a connection, send ``data`` and keep it open without reading."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(data)
    await writer.drain()
    return writer


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:100]
    return int(response[9:12])


async def test_oversized_request_heads_get_431(memory_server: ServerProcess) -> None:
    port = memory_server.port
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    one_long_line = start + b"X-Long: " + b"a" * 20_000 + b"\r\n\r\n"
    many_lines = start + b"".join(b"X-%d: a\r\n" % i for i in range(150)) + b"\r\n"
    large_in_all = start + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 10_000) for i in range(8))
    # A head that never ends: refused once it passes the limit, not buffered for ever.
    endless = start + b"X-Endless: " + b"c" * 200_000
    for head in (one_long_line, many_lines, large_in_all, endless):
        response = await exchange(port, head)
        assert status_of(response) == 431, response[:200]
        assert b'"headers_too_large"' in response
    # Browsers' heads are nowhere near: still served.
    normal = start + b"".join(b"X-%d: %s\r\n" % (i, b"d" * 200) for i in range(40))
    assert status_of(await exchange(port, normal + b"Connection: close\r\n\r\n")) == 200


async def test_head_limit_counts_only_the_head(memory_server: ServerProcess) -> None:
    """A head and a large body in one packet are a body too large, not a head too large;
    a request pipelined behind a body is its own head, counted from its first byte."""
    port = memory_server.port
    body = b'{"roomId": "x", "desc": {"type": "offer", "sdp": "' + b"a" * 70_000 + b'"}}'
    post = (
        b"POST /api/offer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    ) + body
    response = await exchange(port, post)
    assert status_of(response) == 413, response[:200]
    assert b'"payload_too_large"' in response
    # 60 KB of head, a small body, then a second request: the second head starts past the
    # first 64 KB of the packet and is still served.
    padding = b"".join(b"X-%d: %s\r\n" % (i, b"p" * 1_000) for i in range(60))
    first = b"POST /healthz HTTP/1.1\r\nHost: x\r\n" + padding + b"Content-Length: 3\r\n\r\nabc"
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = await exchange(port, first + second)
    statuses = [int(part[:3]) for part in response.split(b"HTTP/1.1 ")[1:]]
    assert len(statuses) == 2 and statuses[1] == 200, response[:400]


async def test_slow_request_heads_are_closed_in_time(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(header_timeout=1)
    started = asyncio.get_running_loop().time()
    slow = await exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", timeout=5)
    assert status_of(slow) == 408 and b'"request_timeout"' in slow
    silent = await exchange(server.port, b"", timeout=5)
    assert status_of(silent) == 408
    assert asyncio.get_running_loop().time() - started < 5
    # A long-poll outlasts the head deadline: only the head is timed.
    room = await create_room_at(server.base_url)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        polled = await http.get(
            f"/api/rooms/{room['roomId']}/messages",
            params={"wait": 2},
            headers={"Authorization": f"Bearer {room['hostToken']}"},
        )
    assert polled.status_code == 200


async def create_room_at(base_url: str, **headers: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        room: dict[str, str] = await create_room(http, **headers)
        return room


async def test_one_address_holds_at_most_its_share_of_connections(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Default settings: 100 connections per address. An attacker that opens 300 (held
    long-polls, sockets, unfinished heads) gets 100; others are served all the while."""
    psutil = pytest.importorskip("psutil")
    server = start_server()
    assert server.process is not None
    fds_before = psutil.Process(server.process.pid).num_fds()
    rooms = [await create_room_at(server.base_url) for _ in range(5)]
    held: list[asyncio.StreamWriter] = []
    for n in range(300):
        room = rooms[n % len(rooms)]
        kind = n % 3
        if kind == 0:  # a long-poll
            request = (
                f"GET /api/rooms/{room['roomId']}/messages?wait=30 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {room['hostToken']}\r\n\r\n"
            ).encode()
        elif kind == 1:  # a WebSocket handshake
            request = (
                f"GET /api/rooms/{room['roomId']}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        else:  # a head that is still coming
            request = b"GET / HTTP/1.1\r\nHost: x\r\n"
        writer = await hold(server.port, request)
        held.append(writer)
    try:
        answer = await exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 5)
        assert status_of(answer) == 429 and b'"too_many_connections"' in answer
        # Another address is served: health, a new room, a join.
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=server.base_url, transport=transport) as other:
            assert (await other.get("/healthz")).status_code == 200
            fresh = (await other.post("/api/rooms")).json()
            assert (await other.post(f"/api/rooms/{fresh['roomId']}/viewers")).status_code == 201
        # Refused connections linger a second at most (to deliver their 429), then close.
        deadline = asyncio.get_running_loop().time() + 10
        while (extra := psutil.Process(server.process.pid).num_fds() - fds_before) >= 120:
            assert asyncio.get_running_loop().time() < deadline, f"{extra} descriptors held"
            await asyncio.sleep(0.1)
    finally:
        for writer in held:
            writer.close()
    # Closed connections give their places back.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        response = await exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5
        )
        if status_of(response) == 200:
            break
        assert asyncio.get_running_loop().time() < deadline, "places were not given back"
        await asyncio.sleep(0.1)
    assert "Traceback" not in server.log()


async def test_clients_behind_a_trusted_proxy_are_capped_by_their_own_address(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(trusted_proxies="127.0.0.1/32", max_connections_per_client=3)
    room = await create_room_at(server.base_url)
    poll = (
        f"GET /api/rooms/{room['roomId']}/messages?wait=30 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {room['hostToken']}\r\nX-Forwarded-For: 203.0.113.9\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    held = [await hold(server.port, poll) for _ in range(3)]
    try:
        over = await exchange(server.port, poll, timeout=5)
        assert status_of(over) == 429 and b'"too_many_connections"' in over
        other = poll.replace(b"203.0.113.9", b"203.0.113.10").replace(b"wait=30", b"wait=0")
        assert status_of(await exchange(server.port, other, timeout=5)) == 200
    finally:
        for writer in held:
            writer.close()


# --- faults -------------------------------------------------------------------------------


async def gauge(server: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        metrics = (await http.get("/metrics")).text
    return float(next(m for m in metrics.splitlines() if m.startswith(name + " ")).split()[1])


async def until_waiting(server: ServerProcess, poll: asyncio.Task[httpx.Response]) -> None:
    """Return once the server holds the long-poll (it waits for mail); fail after 5 s."""
    deadline = asyncio.get_running_loop().time() + 5
    while await gauge(server, "peerscreen_long_polls_waiting") < 1:
        assert not poll.done(), poll.result().text
        assert asyncio.get_running_loop().time() < deadline, "the long-poll is not waiting"
        await asyncio.sleep(0.05)


async def test_a_removed_viewers_long_poll_ends_at_once_with_403(
    http: httpx.AsyncClient, memory_server: ServerProcess
) -> None:
    room = await create_room(http)
    viewer = await join_room(http, room["roomId"])
    as_viewer = {"Authorization": f"Bearer {viewer['viewerToken']}"}
    loop = asyncio.get_running_loop()
    path = f"/api/rooms/{room['roomId']}/messages"
    last = (await http.get(path, headers=as_viewer)).json()["lastSeq"]  # read what is there
    poll = asyncio.create_task(
        http.get(path, params={"wait": 30, "after": last}, headers=as_viewer)
    )
    await until_waiting(memory_server, poll)
    started = loop.time()
    removed = await http.delete(
        f"/api/rooms/{room['roomId']}/viewers/{viewer['viewerId']}",
        headers={"Authorization": f"Bearer {room['hostToken']}"},
    )
    assert removed.status_code == 200
    response = await asyncio.wait_for(poll, 5)
    assert loop.time() - started < 2
    assert_error(response, 403, "forbidden")


async def test_stopping_the_server_ends_long_polls_at_once(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    room = await create_room_at(server.base_url)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=40) as http:
        poll = asyncio.create_task(
            http.get(
                f"/api/rooms/{room['roomId']}/messages",
                params={"wait": 30},
                headers={"Authorization": f"Bearer {room['hostToken']}"},
            )
        )
        await until_waiting(server, poll)
        assert server.process is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        server.process.terminate()
        response = await asyncio.wait_for(poll, 10)
        assert response.status_code == 200 and response.json()["messages"] == []
        code = await loop.run_in_executor(None, server.process.wait, 10)
        assert loop.time() - started < 4, "the server took its time to stop"
        assert code in (0, -15)  # uvicorn ends by re-raising the signal it caught


# --- memory a client can make the server hold ------------------------------------------


def rss_of(server: ServerProcess) -> int:
    psutil = pytest.importorskip("psutil")
    assert server.process is not None
    rss: int = psutil.Process(server.process.pid).memory_info().rss
    return rss


async def test_a_flood_of_large_offers_is_refused_without_growing_the_server(
    start_server: Callable[..., ServerProcess],
) -> None:
    """3,000 offers of 65 KB from one host socket (default limits): the server keeps one
    mailbox share of them and answers the rest with documented errors."""
    server = start_server(rate_signal="600/minute")
    room = await create_room_at(server.base_url)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        viewer = await join_room(http, room["roomId"])
    before = rss_of(server)
    sdp = "v=0\r\n" + "a=x-padding:" + "p" * 65_000
    offer = {"type": "offer", "to": viewer["viewerId"], "desc": {"type": "offer", "sdp": sdp}}
    codes: dict[str, int] = {}
    url = f"{server.ws_url}/api/rooms/{room['roomId']}/ws"
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "token": room["hostToken"]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"

        async def flood() -> None:
            for n in range(3000):
                await ws.send(json.dumps({**offer, "id": n}))

        sender = asyncio.create_task(flood())
        replies = 0
        async with asyncio.timeout(120):
            while replies < 3000:
                reply = json.loads(await ws.recv())
                if reply.get("id") is None:
                    continue  # pings, mail
                replies += 1
                code = reply["code"] if reply["type"] == "error" else reply["type"]
                codes[code] = codes.get(code, 0) + 1
        await sender
    grown = rss_of(server) - before
    # Accepted: what fits in the viewer's mailbox (its share for one sender); then the
    # mailbox refuses; past 600 a minute, the rate limit does.
    assert 1 <= codes.get("accepted", 0) <= 4, codes
    assert codes.get("mailbox_full", 0) > 100 and codes.get("rate_limited", 0) >= 2000, codes
    assert set(codes) <= {"accepted", "mailbox_full", "rate_limited"}, codes
    assert grown < 40 * 1024 * 1024, f"the server grew by {grown / 1e6:.0f} MB"
    # The room still works: the viewer reads its offer.
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        mail = await http.get(
            f"/api/rooms/{room['roomId']}/messages",
            headers={"Authorization": f"Bearer {viewer['viewerToken']}"},
        )
    assert "offer" in [m["type"] for m in mail.json()["messages"]]


async def test_one_sender_cannot_fill_a_mailbox_for_everyone_else(
    http: httpx.AsyncClient, memory_server: ServerProcess
) -> None:
    """While the host is away, one viewer posts 1,000 candidates: the next viewer's
    arrival still reaches the host, and its answer is accepted."""
    room = await create_room(http)
    noisy = await join_room(http, room["roomId"])
    path = f"/api/rooms/{room['roomId']}/messages"
    as_noisy = {"Authorization": f"Bearer {noisy['viewerToken']}"}
    statuses: dict[int, int] = {}
    for n in range(1000):
        body = {
            "type": "candidate",
            "candidate": {"candidate": f"candidate:{n} 1 udp 1 x 1 typ host"},
        }
        status = (await http.post(path, json=body, headers=as_noisy)).status_code
        statuses[status] = statuses.get(status, 0) + 1
    # A quarter of the host's mailbox at most; then the mailbox, then the rate limit
    # (600 a minute) refuse.
    assert statuses.get(202, 0) <= 250, statuses
    assert statuses.get(409, 0) + statuses.get(429, 0) >= 750, statuses
    second = await join_room(http, room["roomId"])
    answer = {"type": "answer", "desc": {"type": "answer", "sdp": "v=0\r\n"}}
    accepted = await http.post(
        path, json=answer, headers={"Authorization": f"Bearer {second['viewerToken']}"}
    )
    assert accepted.status_code == 202, accepted.text
    mail = await http.get(path, headers={"Authorization": f"Bearer {room['hostToken']}"})
    kinds = [(m["type"], m.get("viewerId") or m.get("from")) for m in mail.json()["messages"]]
    assert ("viewer-joined", second["viewerId"]) in kinds
    assert ("answer", second["viewerId"]) in kinds


async def test_signaling_rate_limit_holds_on_every_transport(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(rate_signal="5/minute")
    room = await create_room_at(server.base_url)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        viewer = await join_room(http, room["roomId"])
        path = f"/api/rooms/{room['roomId']}/messages"
        auth = {"Authorization": f"Bearer {viewer['viewerToken']}"}
        body = {"type": "candidate", "candidate": {"candidate": ""}}
        for _ in range(3):
            assert (await http.post(path, json=body, headers=auth)).status_code == 202
        classic = {"roomId": room["roomId"], "candidate": {"candidate": ""}}
        for _ in range(2):
            assert (
                await http.post("/api/candidate", json=classic, headers=auth)
            ).status_code == 200
        over = await http.post(path, json=body, headers=auth)
        assert_error(over, 429, "rate_limited")
        assert int(over.headers["Retry-After"]) >= 1
        assert_error(
            await http.post("/api/candidate", json=classic, headers=auth), 429, "rate_limited"
        )
    url = f"{server.ws_url}/api/rooms/{room['roomId']}/ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": viewer["viewerToken"]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
        await ws.send(json.dumps({**body, "id": "c1"}))
        while (reply := json.loads(await asyncio.wait_for(ws.recv(), 10))).get("id") != "c1":
            pass
    assert reply["type"] == "error" and reply["code"] == "rate_limited"


async def test_the_first_call_after_a_redis_restart_succeeds(
    start_server: Callable[..., ServerProcess], private_redis: RedisServer
) -> None:
    server = start_server(redis_url=private_redis.url)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        # Several calls at once leave several pooled connections behind.
        made = await asyncio.gather(*(http.post("/api/rooms") for _ in range(5)))
        assert all(r.status_code == 201 for r in made)
        private_redis.stop()
        private_redis.start()
        deadline = asyncio.get_running_loop().time() + 15
        while (await http.get("/healthz")).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, "did not recover"
            await asyncio.sleep(0.1)
        after = await asyncio.gather(*(http.post("/api/rooms") for _ in range(5)))
        assert [r.status_code for r in after] == [201] * 5, [r.text for r in after]


async def test_everyone_is_told_when_redis_comes_back_empty(
    start_server: Callable[..., ServerProcess], private_redis: RedisServer
) -> None:
    server = start_server(redis_url=private_redis.url)
    host = await host_room(server.base_url, "socket")
    viewer = await join_as(server.base_url, host.room_id, "socket")
    try:
        await host.next("viewer-joined")
        private_redis.stop()
        private_redis.start()  # no persistence: every room is gone
        for member in (host, viewer):
            assert isinstance(member, SocketMember)
            code, reason = await member.wait_closed(15)
            assert code == 4404, (member.participant_id, code, reason)
            assert reason is not None and "no longer exists" in reason
    finally:
        await host.close()
        await viewer.close()
    assert "Traceback" not in server.log()


async def test_a_room_whose_hosts_process_died_is_ended_by_another(
    start_server: Callable[..., ServerProcess], redis_server: RedisServer
) -> None:
    """Two processes on one Redis; the process holding the host is killed and the host
    never returns: the surviving process ends the room after the grace period."""
    redis_server.flush()
    fast = {"heartbeat_interval": 0.3, "heartbeat_timeout": 1.0, "grace_period": 1.5}
    a = start_server(redis_url=redis_server.url, **fast)
    b = start_server(redis_url=redis_server.url, **fast)
    host = await host_room(a.base_url, "socket")
    viewer = await join_as(b.base_url, host.room_id, "socket")
    try:
        await host.next("viewer-joined")
        assert a.process is not None
        a.process.kill()  # no goodbye of any kind
        a.process.wait(10)
        ended = await viewer.next("room-ended", timeout=10)
        assert ended["reason"] == "host-left"
        async with httpx.AsyncClient(base_url=b.base_url) as http:
            status = (await http.get(f"/api/rooms/{host.room_id}")).json()
        assert status["ended"] is True
    finally:
        await host.close()
        await viewer.close()


# --- secrets and access ----------------------------------------------------------------


async def test_a_wrong_token_gets_the_same_answer_whoever_it_names(
    any_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=any_server.base_url) as http:
        room = await create_room(http)
        stays = await join_room(http, room["roomId"])
        leaves = await join_room(http, room["roomId"])
        gone = await http.delete(
            f"/api/rooms/{room['roomId']}/viewers/{leaves['viewerId']}",
            headers={"Authorization": f"Bearer {room['hostToken']}"},
        )
        assert gone.status_code == 200
        path = f"/api/rooms/{room['roomId']}/messages"

        async def answer(token: str) -> tuple[int, str]:
            response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
            return response.status_code, response.text

        wrong = "W" * 43
        answers = {
            await answer(f"{stays['viewerId']}.{wrong}"),  # exists
            await answer(f"{leaves['viewerId']}.{wrong}"),  # was removed
            await answer(f"vzzzzzzzzzz.{wrong}"),  # never existed
            await answer(f"host.{wrong}"),
        }
        assert len(answers) == 1, answers
        assert next(iter(answers))[0] == 401
        # The removed viewer's own token is told what happened.
        status, text = await answer(leaves["viewerToken"])
        assert status == 403 and "no longer in this room" in text


async def open_sockets(server: ServerProcess) -> int:
    return int(await gauge(server, "peerscreen_sockets_open"))


async def test_a_socket_that_stops_reading_is_dropped_and_holds_up_no_one(
    start_server: Callable[..., ServerProcess],
) -> None:
    fast = {"heartbeat_interval": 0.3, "heartbeat_timeout": 1.0, "grace_period": 1.5}
    # Budgets large enough that the server has megabytes to push at the stalled reader.
    roomy = {"max_pending_bytes": 16 << 20, "max_room_pending_bytes": 32 << 20}
    server = start_server(**fast, **roomy, rate_signal="10000/minute")
    room = await create_room_at(server.base_url)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        viewer = await join_room(http, room["roomId"])
    bystander = await host_room(server.base_url, "socket")
    assert isinstance(bystander, SocketMember)
    # A client with a tiny receive window that reads one message, then nothing more.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", server.port))
    url = f"{server.ws_url}/api/rooms/{room['roomId']}/ws"
    stalled = await websockets.connect(url, sock=raw, max_queue=1)
    try:
        await stalled.send(json.dumps({"type": "hello", "token": viewer["viewerToken"]}))
        assert json.loads(await asyncio.wait_for(stalled.recv(), 10))["type"] == "welcome"
        sdp = "v=0\r\n" + "a=x-padding:" + "p" * 65_000
        offer = {"type": "offer", "to": viewer["viewerId"], "desc": {"type": "offer", "sdp": sdp}}
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            auth = {"Authorization": f"Bearer {room['hostToken']}"}
            for _ in range(55):  # 3.6 MB, within the sender's share of 4 MB
                sent = await http.post(
                    f"/api/rooms/{room['roomId']}/messages", json=offer, headers=auth
                )
                assert sent.status_code == 202, sent.text
        pings_before = bystander.pings
        # Dropped: only the bystander's socket is left open on the server.
        deadline = asyncio.get_running_loop().time() + 10
        while await open_sockets(server) != 1:
            assert asyncio.get_running_loop().time() < deadline, "the stalled socket stayed"
            await asyncio.sleep(0.1)
        assert "dropped a WebSocket that read nothing" in server.log()
        # The heartbeat went on for everyone else meanwhile.
        deadline = asyncio.get_running_loop().time() + 5
        while bystander.pings < pings_before + 2:
            assert asyncio.get_running_loop().time() < deadline, "pings stopped"
            await asyncio.sleep(0.1)
        assert bystander.close_code is None
    finally:
        stalled.transport.abort()
        await bystander.close()


def test_the_open_file_limit_is_raised_to_the_hard_limit(
    start_server: Callable[..., ServerProcess],
) -> None:
    psutil = pytest.importorskip("psutil")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 1024:
        pytest.skip("the hard limit leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # inherited by the server
    try:
        server = start_server()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert server.process is not None
    assert psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE) == (hard, hard)
