"""Watching a room from Python: join, answer the host's offers, receive its tracks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack

from .api import ApiError, Credentials, ServerApi
from .links import RoomAddress
from .peer import PeerLink, fingerprint
from .rtc import connection_path, rtc_configuration
from .signaling import CloseInfo, SignalingError, SignalingSocket

log = logging.getLogger("peerscreen.client")

SFU_ID = "sfu"
"""The addressee of signals for a broadcast room's media server."""

OFFER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ViewerStatus:
    """Where a viewer is, in words for a person.

    ``state`` is one of ``checking``, ``connecting``, ``connected``, ``paused``,
    ``reconnecting``, then for good ``ended`` (the room ended, or we left),
    ``removed`` (by the host) or ``failed``.
    """

    state: str
    message: str

    @property
    def final(self) -> bool:
        return self.state in ("ended", "removed", "failed")


class Viewer:
    """One viewer of a room.

    ``on_track`` hears each track the host sends (again after the host reloads its page:
    its new connection brings new tracks); ``on_status`` each :class:`ViewerStatus`.
    """

    def __init__(
        self,
        api: ServerApi,
        room: RoomAddress,
        *,
        passcode: str | None = None,
        name: str | None = None,
        force_relay: bool = False,
        offer_timeout: float = OFFER_TIMEOUT_S,
        on_track: Callable[[MediaStreamTrack], None] | None = None,
        on_status: Callable[[ViewerStatus], None] | None = None,
        on_chat: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.api = api
        self.room = room
        self.passcode = passcode
        self.name = name
        self.force_relay = force_relay
        self.offer_timeout = offer_timeout
        self.on_track = on_track
        self.on_status = on_status
        self.on_chat = on_chat
        self.status = ViewerStatus("checking", "Checking the room...")
        self.credentials: Credentials | None = None
        self.socket: SignalingSocket | None = None
        self.link: PeerLink | None = None
        """The connection the picture comes from: the host's, or the media server's."""
        self.sfu_link: PeerLink | None = None
        self._held_tracks: dict[int, list[MediaStreamTrack]] = {}
        self.paused = False
        self.ever_connected = False
        self.joined_at = 0.0
        self.connected_after: float | None = None
        self.finished: asyncio.Future[ViewerStatus] = asyncio.get_running_loop().create_future()
        self._ice: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _set(self, state: str, message: str) -> None:
        if self.status.final:
            return
        self.status = ViewerStatus(state, message)
        log.info("viewer: %s", message)
        if self.on_status is not None:
            self.on_status(self.status)
        if self.status.final and not self.finished.done():
            self.finished.set_result(self.status)

    async def join(self) -> None:
        """Join and start answering; raises :class:`ApiError` when the server refuses
        (room not found, ended, full, locked, passcode)."""
        self.joined_at = time.monotonic()
        self.credentials = await self.api.join(self.room.room_id, self.passcode, self.name)
        self.room = self.credentials.room
        self._ice = self.credentials.ice or await self.api.ice_servers(self.credentials)
        self._set("connecting", "Waiting for the host...")
        self.socket = SignalingSocket(self.credentials, on_state=self._signaling_state)
        await self.socket.start()
        self._spawn(self._follow(self.socket))
        self._spawn(self._offer_deadline())

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _signaling_state(self, state: str) -> None:
        if state == "reconnecting" and not self.status.final:
            self._set("reconnecting", "Lost the server; reconnecting...")
        elif state == "open" and self.status.state == "reconnecting":
            self._show_connection()

    def _show_connection(self) -> None:
        if self.link is not None and self.link.pc.connectionState == "connected":
            if self.paused:
                self._set("paused", "The host paused sharing.")
            else:
                self._set("connected", "Connected.")
        else:
            self._set("connecting", "Connecting to the host...")

    async def _offer_deadline(self) -> None:
        await asyncio.sleep(self.offer_timeout)
        if self.link is None:
            self._set(
                "failed",
                "No offer received from host. The host may have stopped sharing; try again later.",
            )
            await self.close()

    async def _follow(self, socket: SignalingSocket) -> None:
        async for message in socket.messages():
            try:
                await self._on_message(message)
            except Exception as exc:  # a bad description must not stop the viewer
                log.warning("could not apply %s: %s", message.get("type"), exc)
        info = await socket.closed
        self._closed(info)

    def _closed(self, info: CloseInfo) -> None:
        if info.code == 4410:
            return  # room-ended said why
        if info.code == 4403:
            self._set("removed", "The host removed you from the room.")
        elif info.code == 1000:
            self._set("ended", "You left the room.")
        else:
            self._set("failed", info.reason or "Lost the connection to the server.")

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if message.get("from") == SFU_ID and kind in ("offer", "candidate"):
            await self._from_media_server(message)
        elif kind == "broadcast":
            await self._broadcast(str(message.get("state")))
        elif kind == "offer":
            desc = message.get("desc") or {}
            if self.link is not None and self.link.remote_fingerprint not in (
                "",
                fingerprint(str(desc.get("sdp", ""))),
            ):
                # The host reloaded its page: its new connection replaces the old one.
                await self.link.close()
                self.link = None
            if self.link is None:
                self.link = self._new_link()
            await self.link.handle(message)
        elif kind == "candidate" and self.link is not None:
            await self.link.handle(message)
        elif kind == "candidate":
            # Candidates before the offer: the link is made for them and holds them.
            self.link = self._new_link()
            await self.link.handle(message)
        elif kind == "host-paused":
            self.paused = True
            self._set("paused", "The host paused sharing.")
        elif kind == "host-resumed":
            self.paused = False
            self._show_connection()
        elif kind == "host-away":
            self._set("reconnecting", "The host's page went away. Waiting for it to come back...")
        elif kind == "host-back":
            self._show_connection()
        elif kind == "chat" and self.on_chat is not None:
            self.on_chat(message)
        elif kind == "room-ended":
            if message.get("reason") == "host-left":
                self._set("ended", "The host left: gone longer than the grace period.")
            else:
                self._set("ended", "The host ended the room.")
            await self.close()

    # --- broadcast rooms: the picture comes from the media server ---------------------

    async def _broadcast(self, state: str) -> None:
        if state == "live" and self.socket is not None:
            try:
                await self.socket.send("subscribe")
            except SignalingError as exc:
                log.warning("could not subscribe to the broadcast: %s", exc.message)
        elif state == "mesh" and self.sfu_link is not None:
            # The media server is gone: the host's own connection comes back.
            await self.sfu_link.close()
            self.sfu_link = None
            self._set("connecting", "Reconnecting to the host...")

    async def _from_media_server(self, message: dict[str, Any]) -> None:
        # Each offer answers a subscribe: a new connection (Janus signs every one with
        # the same certificate, so the fingerprint cannot tell).
        if self.sfu_link is None or message.get("type") == "offer":
            if self.sfu_link is not None:
                await self.sfu_link.close()
            self.sfu_link = self._new_link(to_media_server=True)
            self._spawn(self._switch_when_receiving(self.sfu_link))
        await self.sfu_link.handle(message)

    async def _switch_when_receiving(self, link: PeerLink) -> None:
        """Make before break: the broadcast stream replaces the host's own connection
        once its video arrives; the host then closes that connection."""
        deadline = time.monotonic() + 20
        while link is self.sfu_link and time.monotonic() < deadline:
            report = await link.pc.getStats()
            arrived = sum(
                getattr(s, "packetsReceived", 0)
                for s in report.values()
                if getattr(s, "type", "") == "inbound-rtp" and getattr(s, "kind", "") == "video"
            )
            if arrived:
                old, self.link = self.link, link
                if old is not None and old is not link:
                    await old.close()
                for track in self._held_tracks.pop(id(link), []):
                    if self.on_track is not None:
                        self.on_track(track)
                if link.pc.connectionState == "connected":
                    self._show_connection()
                if self.socket is not None:
                    with contextlib.suppress(SignalingError):
                        await self.socket.send("switched")
                return
            await asyncio.sleep(0.1)

    def _new_link(self, to_media_server: bool = False) -> PeerLink:
        socket = self.socket
        assert socket is not None
        link: PeerLink

        def on_state(state: str) -> None:
            if link is not self.link:
                return  # a replaced connection's last words
            if state == "connected":
                if not self.ever_connected:
                    self.connected_after = time.monotonic() - self.joined_at
                self.ever_connected = True
                self._show_connection()
            elif state == "failed" and self.ever_connected:
                self._set("reconnecting", "Lost the host. Waiting for it to come back...")
            elif state == "failed":
                self._set("failed", ice_failure(self._ice, self.force_relay))

        def on_track(track: MediaStreamTrack) -> None:
            if to_media_server and link is not self.link:
                # Shown once it delivers: until then the host's connection goes on.
                self._held_tracks.setdefault(id(link), []).append(track)
            elif self.on_track is not None:
                self.on_track(track)

        async def send(kind: str, **fields: Any) -> None:
            await socket.send(kind, **({**fields, "to": SFU_ID} if to_media_server else fields))

        link = PeerLink(
            rtc_configuration(self._ice, self.force_relay),
            send,
            on_track=on_track,
            on_state=on_state,
        )
        return link

    async def chat(self, text: str) -> None:
        """Say something to everyone in the room, under this viewer's name."""
        if self.socket is None:
            raise RuntimeError("join() first")
        await self.socket.send("chat", text=text, **({"name": self.name} if self.name else {}))

    @property
    def path(self) -> str:
        """How the media comes: ``direct``, ``relay`` (through TURN) or ``unknown``."""
        return connection_path(self.link.pc) if self.link is not None else "unknown"

    async def report_first_picture(self) -> float:
        """Tell the server how long joining took and by which path (its /metrics shows
        it), as the page does; the seconds since joining."""
        setup = time.monotonic() - self.joined_at
        if self.credentials is not None and self.path != "unknown":
            with contextlib.suppress(ApiError):
                await self.api.report(self.credentials, setup * 1000, self.path)
        return setup

    async def leave(self) -> None:
        """Leave the room: the host hears ``viewer-left``."""
        self._set("ended", "You left the room.")
        if self.socket is not None:
            await self.socket.leave()
        elif self.credentials is not None:
            with contextlib.suppress(ApiError):
                await self.api.leave(self.credentials)
        await self.close()

    async def close(self) -> None:
        if self.sfu_link is not None and self.sfu_link is not self.link:
            await self.sfu_link.close()
        if self.link is not None:
            await self.link.close()
        if self.socket is not None:
            await self.socket.close()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if not self.finished.done():
            self.finished.set_result(self.status)


def ice_failure(ice: dict[str, Any], force_relay: bool) -> str:
    """Why the first connection attempt failed, in words a person can act on."""
    if force_relay or ice.get("iceTransportPolicy") == "relay":
        return (
            "Could not reach the host through the relay (TURN) server: it refused the "
            "credentials or cannot be reached. Ask the server's admin to check the TURN setup."
        )
    if not ice.get("relayAvailable"):
        return (
            "Could not connect to the host directly, and this server has no relay (TURN) "
            "configured: one of you is behind a strict NAT or firewall."
        )
    return "Could not connect to the host, even through the relay: your network may block it."
