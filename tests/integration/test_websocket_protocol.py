"""peerscreen's WebSocket protocol (websocket.py) against raw frames on a real server:
the handshake, fragments and control frames a client may send, the protocol errors it
may make, and a client that asks for replies without reading them."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import struct
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from ..support.clients import create_room
from ..support.processes import ServerProcess

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455, section 1.3


def masked(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """A client frame: masked (as a client must) unless told otherwise."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        head = bytes((first, (0x80 if mask else 0) | length))
    elif length < 1 << 16:
        head = bytes((first, (0x80 if mask else 0) | 126)) + struct.pack("!H", length)
    else:
        head = bytes((first, (0x80 if mask else 0) | 127)) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


class RawSocket:
    """A WebSocket client that sends exactly the bytes a test asks for."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, path: str, extra: bytes = b"", sock: socket.socket | None = None
    ) -> tuple[RawSocket, bytes]:
        if sock is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(
            b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            % path.encode()
            + (extra or b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + KEY + b"\r\n")
            + b"\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return cls(reader, writer), head

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def send_text(self, text: str) -> None:
        self.send(masked(0x1, text.encode()))

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: opcode and payload (never masked)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 10)
        assert not second & 0x80, "server frames are not masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await asyncio.wait_for(self.reader.readexactly(length), 10)

    async def message(self, kind: str) -> dict[str, object]:
        """The next text message of type ``kind`` (pings and others skipped)."""
        while True:
            opcode, payload = await self.frame()
            assert opcode == 0x1, (opcode, payload)
            data = json.loads(payload)
            if data["type"] == kind:
                return data  # type: ignore[no-any-return]

    async def close_code(self) -> int:
        """Read until the server's close frame; its code. The server then ends TCP."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x8:
                (code,) = struct.unpack("!H", payload[:2])
                assert await asyncio.wait_for(self.reader.read(), 10) == b""
                return int(code)

    def close(self) -> None:
        self.writer.transport.abort()


async def new_room(server: ServerProcess) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room = await create_room(http)
    return f"/api/rooms/{room['roomId']}/ws", room["hostToken"]


def pid_of(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


def hello(token: str) -> str:
    return json.dumps({"type": "hello", "token": token})


async def test_the_handshake_refuses_with_http_errors(memory_server: ServerProcess) -> None:
    port = memory_server.port
    path, _ = await new_room(memory_server)
    cases = [
        ("/api/rooms/x/other", b"", b"404", b'"not_found"'),
        (path, b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " + KEY + b"\r\n", b"426", b""),
        (path, b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n", b"400", b""),
    ]
    for where, extra, status, code in cases:
        raw, head = await RawSocket.connect(port, where, extra)
        assert head.startswith(b"HTTP/1.1 " + status), head
        body = await asyncio.wait_for(raw.reader.read(), 10)
        assert code in body and b'"error"' in body, body
        if status == b"426":
            assert b"sec-websocket-version: 13" in head.lower()
        raw.close()
    raw, head = await RawSocket.connect(port, path)
    assert head.startswith(b"HTTP/1.1 101 ")
    # The RFC's own example: this key gets this accept value.
    accept = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert b"\r\nsec-websocket-accept: " + accept + b"\r\n" in head
    raw.close()


async def test_fragments_and_control_frames_are_understood(memory_server: ServerProcess) -> None:
    path, token = await new_room(memory_server)
    raw, _ = await RawSocket.connect(memory_server.port, path)
    text = hello(token).encode()
    # The hello in three fragments, a ping frame between two of them.
    raw.send(masked(0x1, text[:5], fin=False))
    raw.send(masked(0x9, b"are you there", fin=True))
    raw.send(masked(0x0, text[5:20], fin=False))
    raw.send(masked(0x0, text[20:], fin=True))
    assert await raw.frame() == (0xA, b"are you there")
    assert (await raw.message("welcome"))["role"] == "host"
    # A binary message is read as text; two messages in one packet are both answered.
    raw.send(masked(0x2, b'{"type": "ping", "id": 1}') + masked(0x1, b'{"type":"ping","id":2}'))
    assert (await raw.message("pong"))["id"] == 1
    assert (await raw.message("pong"))["id"] == 2
    # A message cut across packets, its header split too.
    whole = masked(0x1, b'{"type": "ping",' + b" " * 300 + b'"id": "long"}')
    for part in (whole[:1], whole[1:3], whole[3:100], whole[100:]):
        raw.send(part)
        await raw.writer.drain()
    assert (await raw.message("pong"))["id"] == "long"
    # And one that arrives a byte at a time.
    drip = masked(0x1, b'{"type": "ping",' + b" " * 2000 + b'"id": "drip"}')
    for at in range(len(drip)):
        raw.send(drip[at : at + 1])
        await raw.writer.drain()
    assert (await raw.message("pong"))["id"] == "drip"
    # The client closes: the server answers with the same code and ends the connection.
    raw.send(masked(0x8, struct.pack("!H", 1000) + b"bye"))
    assert await raw.close_code() == 1000
    raw.close()


async def test_protocol_errors_close_with_their_codes(memory_server: ServerProcess) -> None:
    path, token = await new_room(memory_server)
    rss = psutil.Process(pid_of(memory_server)).memory_info().rss
    cases: list[tuple[bytes, int]] = [
        (masked(0x1, b'{"type": "ping"}', mask=False), 1002),  # unmasked
        (bytes((0xC1, 0x80)) + b"\0\0\0\0", 1002),  # a reserved bit set
        (masked(0x9, b"x" * 126), 1002),  # a control frame over 125 bytes
        (masked(0x0, b"more"), 1002),  # a continuation with nothing to continue
        (masked(0x3, b""), 1002),  # an unknown opcode
        (masked(0x1, b"\xff\xfe"), 1007),  # not UTF-8
        # A header announcing 1 GB: refused at once, nothing buffered.
        (bytes((0x81, 0xFF)) + struct.pack("!Q", 1 << 30) + b"\0\0\0\0", 1009),
    ]
    for data, code in cases:
        raw, _ = await RawSocket.connect(memory_server.port, path)
        raw.send_text(hello(token))
        await raw.message("welcome")
        raw.send(data)
        assert await raw.close_code() == code, data[:20]
        raw.close()
    # Fragments adding up to more than a message may hold: 1009 too.
    raw, _ = await RawSocket.connect(memory_server.port, path)
    raw.send_text(hello(token))
    await raw.message("welcome")
    raw.send(masked(0x1, b"a" * 100_000, fin=False))
    raw.send(masked(0x0, b"a" * 100_000, fin=False))
    assert await raw.close_code() == 1009
    raw.close()
    grown = psutil.Process(pid_of(memory_server)).memory_info().rss - rss
    assert grown < 20 << 20, f"the server grew by {grown / 1e6:.0f} MB"


@pytest.mark.parametrize("asking", ["protocol pings", "application pings"])
async def test_a_client_that_asks_without_reading_is_read_no_more_and_dropped(
    start_server: Callable[..., ServerProcess], asking: str
) -> None:
    """Pings sent as fast as possible, no reply read: the server stops reading from the
    socket once its replies wait, so neither its memory nor the client's backlog in it
    grows, and it drops the socket after the heartbeat timeout."""
    server = start_server(heartbeat_interval=0.5, heartbeat_timeout=2, rate_signal="100000/minute")
    path, token = await new_room(server)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    raw, _ = await RawSocket.connect(server.port, path, sock=sock)
    raw.send_text(hello(token))
    await raw.message("welcome")
    before = psutil.Process(pid_of(server)).memory_info().rss
    if asking == "protocol pings":
        burst = masked(0x9, b"p" * 125) * 1000
    else:
        burst = b"".join(masked(0x1, b'{"type":"ping","id":"%d"}' % n) for n in range(1000))
    sent = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    blocked = False
    while loop.time() < deadline and sent < 400 << 20:
        raw.send(burst)
        try:
            await asyncio.wait_for(raw.writer.drain(), 1)
        except TimeoutError:
            blocked = True  # the server reads no more
            break
        sent += len(burst)
    assert blocked, f"the server kept reading: {sent / 1e6:.0f} MB sent"
    grown = psutil.Process(pid_of(server)).memory_info().rss - before
    assert grown < 20 << 20, f"the server grew by {grown / 1e6:.0f} MB after {sent / 1e6:.1f} MB"
    # Dropped once the heartbeat timeout passes with the client reading nothing.
    deadline = loop.time() + 10
    while "dropped a WebSocket that read nothing" not in server.log():
        assert loop.time() < deadline, "the socket that reads nothing stayed"
        await asyncio.sleep(0.1)
    raw.close()


async def test_every_socket_is_pinged_once_an_interval_from_its_opening(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A socket's first ping comes within one heartbeat interval of its welcome, and the
    next ones one interval apart, whenever it opened: a socket that waited longer could
    be dropped as silent, or reported gone, by a short timeout or grace period."""
    interval = 1.0
    server = start_server(heartbeat_interval=interval, heartbeat_timeout=1.6, grace_period=4)
    loop = asyncio.get_running_loop()

    async def pings_of_one_socket(delay: float) -> list[float]:
        await asyncio.sleep(delay)  # spread the openings over the interval
        path, token = await new_room(server)
        raw, _ = await RawSocket.connect(server.port, path)
        raw.send_text(hello(token))
        await raw.message("welcome")
        times = [loop.time()]
        while len(times) < 4:
            await raw.message("ping")
            times.append(loop.time())
            raw.send_text('{"type":"pong"}')
        raw.close()
        return times

    # Three pings each (3 intervals), with a deadline well past them.
    runs = await asyncio.wait_for(
        asyncio.gather(*(pings_of_one_socket(n * interval / 8) for n in range(8))), 15
    )
    for times in runs:
        first, *gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert first <= interval + 0.15, f"first ping {first:.2f} s after the welcome"
        assert all(interval - 0.15 <= gap <= interval + 0.15 for gap in gaps), gaps
    # None was dropped as silent (a close frame would have failed message("ping")).


async def test_a_socket_that_talks_is_not_pinged_and_stays_open(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Messages from a client prove it alive as a pong would: the server pings only
    sockets that sent nothing but pongs and acks for an interval, and drops none that
    talk."""
    interval = 0.4
    server = start_server(heartbeat_interval=interval, heartbeat_timeout=1.2, grace_period=2)
    path, token = await new_room(server)
    raw, _ = await RawSocket.connect(server.port, path)
    raw.send_text(hello(token))
    await raw.message("welcome")
    loop = asyncio.get_running_loop()
    talking_until = loop.time() + 4 * interval
    n = 0
    while loop.time() < talking_until:  # bounded: four intervals
        raw.send_text(json.dumps({"type": "ping", "id": str(n)}))
        opcode, payload = await raw.frame()
        assert opcode == 0x1
        # Its own ping's answer, never the server's ping (nor a close for silence).
        assert json.loads(payload) == {"type": "pong", "id": str(n)}
        n += 1
        await asyncio.sleep(interval / 4)  # the client's pace
    # Quiet now: the server's pings resume within two intervals, and it stays present.
    started = loop.time()
    await raw.message("ping")
    assert loop.time() - started < 2 * interval + 0.3
    # Acks alone do not count as talking: a client that only acks acks with its pongs.
    raw.send_text('{"type":"pong"}')
    started = loop.time()
    pinged = asyncio.ensure_future(raw.message("ping"))
    while not pinged.done():  # bounded: message() gives up after 10 s
        raw.send_text('{"type":"ack","seq":0}')
        await asyncio.wait({pinged}, timeout=interval / 4)
    await pinged
    assert loop.time() - started < 2 * interval + 0.3
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        room_id = path.split("/")[3]
        info = await http.get(
            "/api/diagnostics",
            params={"roomId": room_id},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert info.json()["hostPresence"] == "connected", info.json()
    raw.close()


async def test_stopping_the_server_closes_every_socket_with_1001(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A stopping server says why to every socket, and a client that never answers the
    close handshake does not hold the stop for longer than the handshake's timeout."""
    server = start_server()
    path, token = await new_room(server)
    polite, _ = await RawSocket.connect(server.port, path)
    polite.send_text(hello(token))
    await polite.message("welcome")
    silent, _ = await RawSocket.connect(server.port, path)  # the same participant: replaces
    silent.send_text(hello(token))
    await silent.message("welcome")
    assert await polite.close_code() == 4409
    process = server.process
    assert process is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    stopping = asyncio.create_task(asyncio.to_thread(server.stop))
    # The silent client reads the close frame but never answers it.
    opcode, payload = await silent.frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1001
    assert payload[2:] == b"Server shutting down"
    await stopping
    # uvicorn ends by re-raising the SIGTERM it handled; a kill would be SIGKILL.
    assert process.returncode == -signal.SIGTERM, "the server had to be killed"
    assert "Finished server process" in server.log()
    assert loop.time() - started < 9
    silent.close()


async def test_sockets_through_a_trusted_proxy_are_capped_by_their_own_address(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(trusted_proxies="127.0.0.1/32", max_connections_per_client=3)
    path, token = await new_room(server)

    def forwarded(address: bytes) -> bytes:
        return (
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            + KEY
            + b"\r\nX-Forwarded-For: "
            + address
            + b"\r\n"
        )

    held = []
    for _ in range(3):
        raw, head = await RawSocket.connect(server.port, path, forwarded(b"203.0.113.9"))
        assert head.startswith(b"HTTP/1.1 101 ")
        held.append(raw)
    # The fourth from that client is told why, with a close code a browser can read.
    over, head = await RawSocket.connect(server.port, path, forwarded(b"203.0.113.9"))
    assert head.startswith(b"HTTP/1.1 101 ")
    assert await over.close_code() == 4429
    over.close()
    # Another client behind the same proxy is not affected.
    other, _ = await RawSocket.connect(server.port, path, forwarded(b"203.0.113.10"))
    other.send_text(hello(token))
    assert (await other.message("welcome"))["role"] == "host"
    # A closed socket gives its place back.
    held.pop().close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        again, _ = await RawSocket.connect(server.port, path, forwarded(b"203.0.113.9"))
        again.send_text(hello(token))
        opcode, _ = await again.frame()
        if opcode == 0x1:
            break  # welcome: admitted
        again.close()
        assert loop.time() < deadline, "the closed socket's place was not given back"
        await asyncio.sleep(0.1)
    for raw in [*held, other, again]:
        raw.close()


async def test_the_hello_can_ride_in_the_handshake(memory_server: ServerProcess) -> None:
    """``peerscreen``, ``auth.<token>`` and ``resume.<seq>`` offered as subprotocols: the
    server picks ``peerscreen`` and the welcome follows the upgrade with no hello sent."""
    async with httpx.AsyncClient(base_url=memory_server.base_url) as http:
        room = await create_room(http)
        viewer = (await http.post(f"/api/rooms/{room['roomId']}/viewers")).json()
    url = f"{memory_server.ws_url}/api/rooms/{room['roomId']}/ws"

    def offer(*parts: str) -> list[Subprotocol]:
        return [Subprotocol(part) for part in parts]

    host_auth = f"auth.{room['hostToken']}"
    async with websockets.connect(url, subprotocols=offer("peerscreen", host_auth)) as host:
        assert host.subprotocol == "peerscreen"
        welcome = json.loads(await asyncio.wait_for(host.recv(), 10))
        assert welcome["type"] == "welcome" and welcome["role"] == "host"
        assert welcome["lastSeq"] == 1
        joined = await next_of(host, "viewer-joined")
        assert joined["seq"] == 1 and joined["viewerId"] == viewer["viewerId"]
        # A message sent right after the handshake is handled once the socket is in.
        await host.send(json.dumps({"type": "ping", "id": "early"}))
        assert await next_of(host, "pong") == {"type": "pong", "id": "early"}
    # Resuming after 1: nothing is sent again before the reply to a new ping.
    resuming = offer("peerscreen", host_auth, "resume.1")
    async with websockets.connect(url, subprotocols=resuming) as again:
        assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "welcome"
        await again.send(json.dumps({"type": "ping", "id": "after"}))
        async with asyncio.timeout(10):
            while (reply := json.loads(await again.recv()))["type"] == "ping":
                pass
        assert reply == {"type": "pong", "id": "after"}
    # Refusals keep their close codes.
    viewer_auth = f"auth.{viewer['viewerToken']}"
    for offered, code in (
        (offer("peerscreen", "auth.host.wrong"), 4401),
        (offer("peerscreen", viewer_auth, "resume.99"), 4400),
        (offer("peerscreen", viewer_auth, "resume.x"), 4400),
    ):
        async with websockets.connect(url, subprotocols=offered) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code, offered
    # Without auth among them, the hello is awaited as a message, as before.
    async with websockets.connect(url, subprotocols=offer("peerscreen")) as plain:
        assert plain.subprotocol == "peerscreen"
        await plain.send(hello(viewer["viewerToken"]))
        assert json.loads(await asyncio.wait_for(plain.recv(), 10))["role"] == "viewer"


async def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of type ``kind`` within 10 s (others skipped)."""
    async with asyncio.timeout(10):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] == kind:
                return message
