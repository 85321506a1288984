"""Test clients for room participants, one per transport, with the same interface."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

Message = dict[str, Any]


def offer_sdp(tag: str) -> dict[str, str]:
    return {"type": "offer", "sdp": f"v=0\r\no=- {tag} 2 IN IP4 127.0.0.1\r\ns=-\r\n"}


def answer_sdp(tag: str) -> dict[str, str]:
    return {"type": "answer", "sdp": f"v=0\r\no=- {tag} 2 IN IP4 127.0.0.1\r\ns=-\r\n"}


def candidate(n: int) -> dict[str, Any]:
    return {
        "candidate": f"candidate:{n} 1 udp 2122260223 127.0.0.1 {50000 + n} typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }


async def create_room(http: httpx.AsyncClient, **headers: str) -> Message:
    response = await http.post("/api/rooms", headers=headers)
    assert response.status_code == 201, response.text
    room: Message = response.json()
    return room


async def join_room(http: httpx.AsyncClient, room_id: str) -> Message:
    response = await http.post(f"/api/rooms/{room_id}/viewers")
    assert response.status_code == 201, response.text
    viewer: Message = response.json()
    return viewer


class Member:
    """A participant: sends signals and receives what is addressed to it, in order."""

    def __init__(self, base_url: str, room_id: str, participant_id: str, token: str) -> None:
        self.base_url = base_url
        self.room_id = room_id
        self.participant_id = participant_id
        self.token = token
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=40
        )
        self.received: list[Message] = []
        self._unread: deque[Message] = deque()

    async def start(self) -> Member:
        return self

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, kind: str, to: str | None = None, **payload: Any) -> Message:
        body = {"type": kind, **payload}
        if to is not None:
            body["to"] = to
        response = await self.http.post(f"/api/rooms/{self.room_id}/messages", json=body)
        assert response.status_code == 202, response.text
        result: Message = response.json()
        return result

    async def _fetch(self, timeout: float) -> list[Message]:
        raise NotImplementedError

    def _accept(self, messages: list[Message]) -> None:
        for message in messages:
            if self.received:
                assert message["seq"] > self.received[-1]["seq"], (self.received[-1], message)
            self.received.append(message)
            self._unread.append(message)

    async def next(self, match: str | Callable[[Message], bool], timeout: float = 10.0) -> Message:
        """The next unread message matching ``match`` (a type or a predicate)."""
        test = (lambda m: m["type"] == match) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        while True:
            for message in list(self._unread):
                if test(message):
                    self._unread.remove(message)
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.participant_id}: no {match} within {timeout}s; got {self.received}"
                )
            self._accept(await self._fetch(remaining))


class PollMember(Member):
    """Polls GET /messages without waiting, like a client on the plainest network."""

    interval = 0.05

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.after = 0

    async def _get(self, wait: float | None) -> list[Message]:
        params: dict[str, Any] = {"after": self.after}
        if wait is not None:
            params["wait"] = wait
        response = await self.http.get(f"/api/rooms/{self.room_id}/messages", params=params)
        assert response.status_code == 200, response.text
        data = response.json()
        self.after = data["lastSeq"]
        messages: list[Message] = data["messages"]
        return messages

    async def _fetch(self, timeout: float) -> list[Message]:
        messages = await self._get(None)
        if not messages:
            await asyncio.sleep(min(self.interval, timeout))
        return messages


class LongPollMember(PollMember):
    """Holds GET /messages?wait= open until something arrives."""

    async def _fetch(self, timeout: float) -> list[Message]:
        return await self._get(max(0.1, min(timeout, 5.0)))


class SocketMember(Member):
    """Receives over the WebSocket, acknowledging and answering pings as a browser would."""

    def __init__(
        self, *args: Any, resume: int = 0, answer_pings: bool = True, auto_ack: bool = True
    ) -> None:
        super().__init__(*args)
        self.resume = resume
        self.answer_pings = answer_pings
        self.auto_ack = auto_ack
        self.socket: ClientConnection | None = None
        self.welcome: Message = {}
        self.replies: asyncio.Queue[Message] = asyncio.Queue()
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.pings = 0

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + f"/api/rooms/{self.room_id}/ws"

    async def start(self) -> SocketMember:
        self.socket = await websockets.connect(self.ws_url)
        await self.socket.send(
            json.dumps({"type": "hello", "token": self.token, "resume": self.resume})
        )
        self.welcome = json.loads(await asyncio.wait_for(self.socket.recv(), 10))
        assert self.welcome["type"] == "welcome", self.welcome
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.socket is not None
        try:
            async for raw in self.socket:
                message = json.loads(raw)
                if message["type"] == "ping":
                    self.pings += 1
                    if self.answer_pings:
                        await self._reply({"type": "pong"})
                elif "seq" in message:
                    self._inbox.put_nowait(message)
                    if self.auto_ack:
                        await self._reply({"type": "ack", "seq": message["seq"]})
                else:
                    self.replies.put_nowait(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.socket.close_code is not None:
                self.close_code = self.socket.close_code
                self.close_reason = self.socket.close_reason
            self._inbox.put_nowait(None)

    async def _reply(self, message: Message) -> None:
        # The server may close right after its last message: keep reading what it sent.
        assert self.socket is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.socket.send(json.dumps(message))

    async def _fetch(self, timeout: float) -> list[Message]:
        try:
            message = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            return []
        if message is None:
            self._inbox.put_nowait(None)  # stay closed for later calls
            raise AssertionError(
                f"{self.participant_id}: socket closed ({self.close_code} {self.close_reason})"
            )
        return [message]

    async def send_ws(self, message: Message) -> Message:
        """Send over the socket and return the server's reply to it (ack or error)."""
        assert self.socket is not None
        await self.socket.send(json.dumps(message))
        return await asyncio.wait_for(self.replies.get(), 10)

    async def send(self, kind: str, to: str | None = None, **payload: Any) -> Message:
        message_id = f"m{time.monotonic_ns()}"
        body: Message = {"type": kind, "id": message_id, **payload}
        if to is not None:
            body["to"] = to
        reply = await self.send_ws(body)
        assert reply == {"type": "accepted", "id": message_id}, reply
        return {"ok": True}

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code, self.close_reason

    async def drop(self) -> None:
        """Lose the connection abruptly, as a network change would."""
        if self._reader is not None:
            self._reader.cancel()
        if self.socket is not None:
            self.socket.transport.abort()
        await asyncio.sleep(0)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            self._reader.cancel()
        await super().close()


TRANSPORTS: dict[str, type[Member]] = {
    "socket": SocketMember,
    "poll": PollMember,
    "longpoll": LongPollMember,
}


async def open_member(
    kind: type[Member] | str,
    base_url: str,
    room_id: str,
    participant_id: str,
    token: str,
    **options: Any,
) -> Member:
    cls = TRANSPORTS[kind] if isinstance(kind, str) else kind
    member = cls(base_url, room_id, participant_id, token, **options)
    return await member.start()


async def host_room(base_url: str, transport: str = "socket") -> Member:
    """Create a room and connect its host."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        room = await create_room(http)
    return await open_member(transport, base_url, room["roomId"], "host", room["hostToken"])


async def join_as(base_url: str, room_id: str, transport: str = "socket", **options: Any) -> Member:
    """Join a room as a new viewer over the given transport."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        viewer = await join_room(http, room_id)
    return await open_member(
        transport, base_url, room_id, viewer["viewerId"], viewer["viewerToken"], **options
    )
