"""Janus's API over its WebSocket transport (subprotocol ``janus-protocol``).

peerscreen is the only client of this API: browsers talk to peerscreen's signaling, never
to Janus, and never learn its secret. Requests are matched to replies by transaction. A
plugin message is first ``ack``ed, then answered by an ``event`` with the same
transaction; events with no transaction we know (trickled candidates, ``webrtcup``,
``media``, ``hangup``) are routed to the handle they name as ``sender``.

When Janus dies its socket closes without a word and every session, handle and room on it
is gone: :attr:`JanusConnection.closed` resolves, and the owner rebuilds elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

log = logging.getLogger("peerscreen.janus")

Message = dict[str, Any]
KEEPALIVE_S = 25.0
"""Janus ends a session it has not heard from in ``session_timeout`` (60 s)."""
REQUEST_TIMEOUT_S = 10.0
ACK_ENDS = frozenset({"trickle", "keepalive"})
"""Requests Janus answers with an ``ack`` alone; a plugin ``message`` is acked, then
answered by an event."""


class JanusError(Exception):
    """Janus refused a request, or could not be reached."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class JanusConnection:
    """One WebSocket to one Janus, shared by every session made on it."""

    def __init__(self, url: str, socket: ClientConnection, api_secret: str | None) -> None:
        self.url = url
        self._socket = socket
        self._secret = api_secret
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self._ack_ends: set[str] = set()
        """Transactions whose ``ack`` is the whole answer (trickle, keepalive)."""
        self._handles: dict[int, JanusHandle] = {}
        self._sessions: set[int] = set()
        self._transactions = itertools.count(1)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name=f"janus-reader {url}")
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"janus-keepalive {url}")

    @classmethod
    async def open(
        cls, url: str, api_secret: str | None, timeout: float = REQUEST_TIMEOUT_S
    ) -> JanusConnection:
        """Connect; raises :class:`JanusError` when Janus does not answer."""
        try:
            socket = await connect(
                url,
                subprotocols=[Subprotocol("janus-protocol")],
                open_timeout=timeout,
                max_size=1 << 22,
                ping_interval=None,  # the keepalive request is Janus's own heartbeat
                compression=None,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise JanusError(f"Cannot reach Janus at {url}: {exc}") from exc
        return cls(url, socket, api_secret)

    async def request(self, body: Message, timeout: float = REQUEST_TIMEOUT_S) -> Message:
        """Send a request; its ``success`` (or, for an acknowledged plugin message, its
        ``event``). Raises :class:`JanusError` for an ``error`` or a lost connection."""
        if self.closed.done():
            raise JanusError(f"The connection to Janus at {self.url} is closed.")
        transaction = f"t{next(self._transactions)}"
        message = {**body, "transaction": transaction}
        if self._secret is not None:
            message["apisecret"] = self._secret
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = reply
        if body.get("janus") in ACK_ENDS:
            self._ack_ends.add(transaction)
        try:
            await self._socket.send(json.dumps(message))
            # wait_for, not asyncio.timeout: the server runs some handlers eagerly,
            # outside any task.
            answer = await asyncio.wait_for(reply, timeout)
        except ConnectionClosed as exc:
            raise JanusError(f"Janus at {self.url} went away.") from exc
        except TimeoutError as exc:
            raise JanusError(f"Janus at {self.url} did not answer {body.get('janus')}.") from exc
        finally:
            self._waiting.pop(transaction, None)
            self._ack_ends.discard(transaction)
        if answer.get("janus") == "error":
            error = answer.get("error", {})
            raise JanusError(str(error.get("reason", "error")), error.get("code"))
        return answer

    async def create_session(self) -> JanusSession:
        answer = await self.request({"janus": "create"})
        session_id = int(answer["data"]["id"])
        self._sessions.add(session_id)
        return JanusSession(self, session_id)

    async def close(self) -> None:
        self._keepalive.cancel()
        with contextlib.suppress(WebSocketException, OSError):
            await self._socket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._closed()

    def _closed(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(JanusError(f"Janus at {self.url} went away."))
        for handle in self._handles.values():
            handle.events.put_nowait({"janus": "hangup", "reason": "Janus went away"})

    async def _read(self) -> None:
        try:
            async for raw in self._socket:
                message = json.loads(raw)
                if isinstance(message, dict):
                    self._route(message)
        except (ConnectionClosed, ValueError) as exc:
            log.warning("Janus at %s: connection lost (%s)", self.url, exc)
        finally:
            self._closed()

    def _route(self, message: Message) -> None:
        kind = message.get("janus")
        transaction = str(message.get("transaction"))
        waiting = self._waiting.get(transaction)
        if waiting is not None and (kind != "ack" or transaction in self._ack_ends):
            if not waiting.done():
                waiting.set_result(message)
            return
        if kind == "ack":
            return  # a plugin message's event follows with the same transaction
        handle = self._handles.get(int(message.get("sender") or 0))
        if handle is not None:
            handle.events.put_nowait(message)
        elif kind == "timeout":
            log.warning("Janus at %s: session %s timed out", self.url, message.get("session_id"))

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            for session_id in list(self._sessions):
                with contextlib.suppress(JanusError):
                    await self.request({"janus": "keepalive", "session_id": session_id})


class JanusSession:
    """A Janus session: handles attach to it."""

    def __init__(self, connection: JanusConnection, session_id: int) -> None:
        self.connection = connection
        self.id = session_id

    async def attach(self, plugin: str = "janus.plugin.videoroom") -> JanusHandle:
        answer = await self.connection.request(
            {"janus": "attach", "session_id": self.id, "plugin": plugin}
        )
        handle = JanusHandle(self, int(answer["data"]["id"]))
        self.connection._handles[handle.id] = handle
        return handle

    async def destroy(self) -> None:
        self.connection._sessions.discard(self.id)
        with contextlib.suppress(JanusError):
            await self.connection.request({"janus": "destroy", "session_id": self.id})


class JanusHandle:
    """A handle on a plugin: one peer connection on the Janus side."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id
        self.events: asyncio.Queue[Message] = asyncio.Queue()

    async def message(
        self, body: Message, jsep: Message | None = None
    ) -> tuple[Message, Message | None]:
        """A plugin request: the plugin's data and the JSEP it answered with, if any."""
        request: Message = {
            "janus": "message",
            "session_id": self.session.id,
            "handle_id": self.id,
            "body": body,
        }
        if jsep is not None:
            request["jsep"] = jsep
        answer = await self.session.connection.request(request)
        data: Message = answer.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(str(data["error"]), data.get("error_code"))
        return data, answer.get("jsep")

    async def trickle(self, candidate: Message | None) -> None:
        """A remote candidate for this handle's peer connection; None when gathering ended."""
        request: Message = {
            "janus": "trickle",
            "session_id": self.session.id,
            "handle_id": self.id,
            "candidate": candidate if candidate else {"completed": True},
        }
        await self.session.connection.request(request)

    async def detach(self) -> None:
        self.session.connection._handles.pop(self.id, None)
        with contextlib.suppress(JanusError):
            await self.session.connection.request(
                {"janus": "detach", "session_id": self.session.id, "handle_id": self.id}
            )


def candidate_event(message: Message) -> Message | None:
    """The browser candidate in a Janus ``trickle`` event: ``{"candidate": ""}`` for its
    ``completed``, None for any other event."""
    if message.get("janus") != "trickle":
        return None
    candidate = message.get("candidate", {})
    if candidate.get("completed"):
        return {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
    return {k: candidate[k] for k in ("candidate", "sdpMid", "sdpMLineIndex") if k in candidate}
