"""Sharing from Python: create a room, offer each viewer a connection of its own, all
fed by one source through aiortc's MediaRelay (like the page: one capture, one peer
connection per viewer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay

from .api import ApiError, Credentials, ServerApi
from .peer import PeerLink
from .rtc import rtc_configuration
from .signaling import SignalingSocket

log = logging.getLogger("peerscreen.client")

SFU_ID = "sfu"

MAX_FRESH_STARTS = 3
"""How often a viewer's failed connection is replaced by a new one before giving up
(aiortc has no ICE restart; a new connection finds paths again)."""


@dataclass
class ViewerLink:
    """A viewer as the host sees it."""

    viewer_id: str
    name: str
    state: str = "joining"
    link: PeerLink | None = None
    fresh_starts: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)


class Host:
    """The host of a room.

    ``on_viewers`` hears the list of viewers each time one joins, leaves or changes
    state; ``ended`` resolves with the reason the room ended (``host-ended``,
    ``host-left``, or why the server connection was lost).
    """

    def __init__(
        self,
        api: ServerApi,
        tracks: Sequence[MediaStreamTrack],
        *,
        auth_secret: str | None = None,
        passcode: str | None = None,
        force_relay: bool = False,
        on_viewers: Callable[[list[ViewerLink]], None] | None = None,
        on_chat: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.api = api
        self.relay = MediaRelay()
        self.tracks = list(tracks)
        self.auth_secret = auth_secret
        self.passcode = passcode
        self.force_relay = force_relay
        self.on_viewers = on_viewers
        self.on_chat = on_chat
        self.viewers: dict[str, ViewerLink] = {}
        self.path = "mesh"
        """How viewers receive: ``mesh`` (from this host) or ``broadcast`` (media server)."""
        self.publisher: PeerLink | None = None
        self.credentials: Credentials | None = None
        self.room: dict[str, Any] = {}
        self.socket: SignalingSocket | None = None
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._ice: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # One viewer's failed offer (the socket closed under it) must not go unseen.
            log.warning("could not connect a viewer: %s", task.exception())

    @property
    def url(self) -> str:
        """The link viewers open."""
        return str(self.room.get("url", ""))

    async def start(self) -> None:
        """Create the room and start answering viewers; raises :class:`ApiError` when
        the server refuses (AUTH_SECRET, a bad passcode)."""
        self.credentials, self.room = await self.api.create_room(self.auth_secret, self.passcode)
        self._ice = self.credentials.ice or await self.api.ice_servers(self.credentials)
        self.socket = SignalingSocket(self.credentials)
        await self.socket.start()
        self._task = asyncio.create_task(self._follow(self.socket))

    async def _follow(self, socket: SignalingSocket) -> None:
        async for message in socket.messages():
            try:
                await self._on_message(message)
            except Exception as exc:  # one viewer's bad answer must not end the room
                log.warning("could not apply %s: %s", message.get("type"), exc)
        info = await socket.closed
        self._finish("host-ended" if info.code in (1000, 4410) else info.reason)

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "viewer-joined":
            viewer_id = str(message["viewerId"])
            name = str(message.get("name") or f"Viewer {viewer_id[1:5]}")
            if self.path == "broadcast":
                # It receives from the media server alone.
                self.viewers[viewer_id] = ViewerLink(viewer_id, name, state="broadcast")
                self._tell()
            else:
                # Gathering takes a while with STUN and TURN: the other viewers' messages
                # must not wait for it.
                self._spawn(self._connect(viewer_id, name))
        elif kind == "viewer-left":
            await self._drop(str(message.get("viewerId")))
        elif kind in ("answer", "candidate") and message.get("from") == SFU_ID:
            if self.publisher is not None:
                await self.publisher.handle(message)
        elif kind == "broadcast":
            await self._broadcast(str(message.get("state")))
        elif kind == "viewer-switched":
            entry = self.viewers.get(str(message.get("viewerId")))
            if entry is not None and entry.link is not None:
                link, entry.link, entry.state = entry.link, None, "broadcast"
                await link.close()  # after: its last state change is not news
                self._tell()
        elif kind in ("answer", "candidate"):
            entry = self.viewers.get(str(message.get("from")))
            if entry is not None and entry.link is not None:
                await entry.link.handle(message)
        elif kind == "room-ended":
            self._finish(str(message.get("reason", "host-ended")))
        elif kind == "chat" and self.on_chat is not None:
            self.on_chat(message)

    async def _connect(self, viewer_id: str, name: str) -> None:
        """Offer this viewer a new connection (again, replacing the old, after a failure)."""
        socket = self.socket
        if socket is None or self.ended.done():
            return
        entry = self.viewers.get(viewer_id)
        if entry is None:
            entry = self.viewers[viewer_id] = ViewerLink(viewer_id, name)
        elif entry.link is not None:
            await entry.link.close()

        async def send(kind: str, **fields: Any) -> None:
            await socket.send(kind, to=viewer_id, **fields)

        link: PeerLink

        def on_state(state: str) -> None:
            if entry.link is not link:
                return
            entry.state = state
            self._tell()
            if state == "failed" and entry.fresh_starts < MAX_FRESH_STARTS:
                entry.fresh_starts += 1
                self._spawn(self._connect(viewer_id, entry.name))

        link = PeerLink(rtc_configuration(self._ice, self.force_relay), send, on_state=on_state)
        entry.link = link
        for track in self.tracks:
            link.pc.addTrack(self.relay.subscribe(track, buffered=False))
        self._tell()
        await link.offer()

    async def _broadcast(self, state: str) -> None:
        """The room's path changes: publish once to the media server, or serve each
        viewer again when it is gone."""
        socket = self.socket
        if socket is None:
            return
        if self.publisher is not None:
            await self.publisher.close()
            self.publisher = None
        if state == "publish":
            self.path = "broadcast"

            async def send(kind: str, **fields: Any) -> None:
                await socket.send(kind, to=SFU_ID, **fields)

            self.publisher = PeerLink(rtc_configuration(self._ice, self.force_relay), send)
            for track in self.tracks:
                self.publisher.pc.addTrack(self.relay.subscribe(track, buffered=False))
            self._spawn(self.publisher.offer())
        elif state == "mesh":
            self.path = "mesh"
            for entry in list(self.viewers.values()):
                if entry.link is None:
                    self._spawn(self._connect(entry.viewer_id, entry.name))

    async def chat(self, text: str, name: str | None = None) -> None:
        """Say something to everyone in the room."""
        if self.socket is None:
            raise RuntimeError("start() the host first")
        await self.socket.send("chat", text=text, **({"name": name} if name else {}))

    async def _drop(self, viewer_id: str) -> None:
        entry = self.viewers.pop(viewer_id, None)
        if entry is not None and entry.link is not None:
            await entry.link.close()
        self._tell()

    def _tell(self) -> None:
        if self.on_viewers is not None:
            self.on_viewers(list(self.viewers.values()))

    def _finish(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    async def end(self) -> None:
        """End the room for everyone, close every connection, stop the source."""
        if self.credentials is not None and not self.ended.done():
            with contextlib.suppress(ApiError):
                await self.api.end_room(self.credentials)
        self._finish("host-ended")
        await self.close()

    async def close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
        for entry in list(self.viewers.values()):
            if entry.link is not None:
                await entry.link.close()
        self.viewers.clear()
        if self.socket is not None:
            await self.socket.close()
        for task in [self._task, *self._tasks]:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        for track in self.tracks:
            track.stop()
