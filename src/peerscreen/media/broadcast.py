"""Broadcast rooms: the host publishes once to Janus, and each viewer receives from it.

A room starts as a mesh (the host's browser sends one stream per viewer). When its
viewers reach ``--mesh-max``, it moves to a media node: the host is told to publish
(``broadcast`` with ``state: publish``), its offer goes to the node's VideoRoom, and once
Janus has answered, viewers are told the stream is live (``state: live``). Each viewer
then asks for its own subscription (``subscribe``); Janus makes the viewer's offer, the
viewer answers. Every signal to or from the media server is addressed ``sfu`` and rides
the participants' mailboxes like any other, so it survives a dropped socket.

Janus handles belong to the process that made them (they live in its Janus session): a
participant's handles are made by the process its messages reach, and dropped when its
socket closes there. The room's VideoRoom is named after the room; the host publishes
under the fixed id ``host``, so subscribers on any process know the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ErrorCode, PeerscreenError
from ..metrics import Metrics
from ..rooms import HOST_ID, SFU_ID, Event, Participant, Signal, check_sfu_signal
from ..store import Store
from ..store.base import RoomRecord
from .janus import JanusError, JanusHandle, candidate_event
from .nodes import MediaNode, MediaNodes

if TYPE_CHECKING:  # the signaling service imports this module
    from ..signaling.mail import Mail

log = logging.getLogger("peerscreen.broadcast")

FEED = "host"
ROOM_EXISTS = 427  # Janus VideoRoom: "Room ... already exists"
RECOVERY_S = 5.0
"""How long a room whose media node died waits for one to answer before it goes back to
a mesh."""


def not_broadcast() -> PeerscreenError:
    return PeerscreenError(
        ErrorCode.INVALID_REQUEST, "This room is not in broadcast: send signals to the host."
    )


def media_unavailable(detail: str) -> PeerscreenError:
    return PeerscreenError(
        ErrorCode.MEDIA_UNAVAILABLE, f"The media server is unavailable ({detail}); retry soon."
    )


class _Link:
    """A handle this process holds for one participant, and the task relaying its
    Janus events (trickled candidates) to the participant's mailbox."""

    def __init__(
        self,
        node: MediaNode,
        handle: JanusHandle,
        pump: asyncio.Task[None],
        described: asyncio.Event,
    ) -> None:
        self.node = node
        self.handle = handle
        self.pump = pump
        self.described = described
        """Set once Janus's description is in the mailbox: its candidates wait for it."""


class Broadcasts:
    """This process's part of every broadcast room."""

    def __init__(
        self, settings: Settings, store: Store, mail: Mail, nodes: MediaNodes, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.mail = mail
        self.nodes = nodes
        self._links: dict[tuple[str, str], _Link] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        for node in nodes.nodes:
            node.on_lost = self._node_lost

    @property
    def enabled(self) -> bool:
        return self.nodes.enabled

    # --- the room's path ------------------------------------------------------------

    def viewer_cap(self, room: RoomRecord) -> int:
        """How many viewers the room takes: more once it broadcasts."""
        return self.settings.max_viewers_broadcast if room.media_node else room.max_viewers

    async def viewers_changed(self, room: RoomRecord, viewers: int) -> None:
        """A viewer joined: at ``--mesh-max`` viewers the room moves to a media node."""
        if not self.enabled or room.media_node is not None or viewers < self.settings.mesh_max:
            return
        try:
            node = await self.nodes.pick()
        except JanusError as exc:
            log.warning("room %s: stays a mesh: %s", room.room_id, exc)
            return
        await self.move(room.room_id, node)

    async def move(self, room_id: str, node: MediaNode) -> None:
        """Put the room on ``node`` and have the host publish there."""
        await self.store.set_media_node(room_id, node.url)
        log.info("room %s: broadcast through %s", room_id, node.url)
        await self.mail.notify(room_id, HOST_ID, {"type": Event.BROADCAST, "state": "publish"})

    async def joined(self, room: RoomRecord, viewer_id: str) -> None:
        """A viewer joining a room that broadcasts subscribes at once."""
        if room.media_node is not None and await self._published(room):
            await self.mail.notify(
                room.room_id, viewer_id, {"type": Event.BROADCAST, "state": "live"}
            )

    async def _published(self, room: RoomRecord) -> bool:
        node = self.nodes.get(room.media_node or "")
        if node is None:
            return False
        try:
            session = await node.session()
            handle = await session.attach()
        except JanusError:
            return False
        try:
            data, _ = await handle.message({"request": "listparticipants", "room": room.room_id})
            return any(
                p.get("id") == FEED and p.get("publisher") for p in data.get("participants", [])
            )
        except JanusError:
            return False
        finally:
            await handle.detach()

    # --- signals to the media server ---------------------------------------------------

    async def signal(self, sender: Participant, signal: Signal, desc: Any, candidate: Any) -> None:
        """An offer, answer or candidate addressed ``sfu``."""
        check_sfu_signal(sender, signal)
        self._count(sender)
        room = await self.store.get_room(sender.room_id)
        if room is None or room.media_node is None:
            raise not_broadcast()
        key = (sender.room_id, sender.participant_id)
        if signal is Signal.OFFER:
            await self._publish(sender, room, desc)
        elif signal is Signal.ANSWER:
            link = self._links.get(key)
            if link is None:
                raise PeerscreenError(
                    ErrorCode.INVALID_REQUEST, "No subscription to answer: send subscribe first."
                )
            await self._call(link.handle.message({"request": "start"}, jsep=desc))
        else:
            link = self._links.get(key)
            if link is not None:  # candidates for a handle gone (a move) are moot
                text = (candidate or {}).get("candidate")
                await self._call(link.handle.trickle(candidate if text else None))

    async def subscribe(self, viewer: Participant) -> None:
        """Ask the media server for this viewer's offer, which arrives in its mailbox."""
        if viewer.is_host:
            raise PeerscreenError(ErrorCode.FORBIDDEN, "The host publishes; viewers subscribe.")
        self._count(viewer)  # each subscription costs Janus a handle and an offer
        room = await self.store.get_room(viewer.room_id)
        if room is None or room.media_node is None:
            raise not_broadcast()
        node = await self._node_of(room)
        key = (viewer.room_id, viewer.participant_id)
        async with self._lock(key):
            await self._drop(key)
            handle = await self._call(node.attach())
            link = self._links[key] = self._link(viewer, node, handle)
            _, jsep = await self._call(
                handle.message(
                    {
                        "request": "join",
                        "ptype": "subscriber",
                        "room": room.room_id,
                        "streams": [{"feed": FEED}],
                    }
                )
            )
        if jsep is None:
            raise media_unavailable("no offer from the media server")
        log.info("room %s: %s subscribes", viewer.room_id, viewer.participant_id)
        await self.mail.notify(
            viewer.room_id,
            viewer.participant_id,
            {"type": Signal.OFFER.value, "from": SFU_ID, "desc": jsep},
        )
        link.described.set()

    async def _publish(self, host: Participant, room: RoomRecord, desc: Any) -> None:
        node = await self._node_of(room)
        key = (host.room_id, HOST_ID)
        async with self._lock(key):
            # A new offer is a new peer connection (a reload, a move): start over.
            await self._drop(key)
            handle = await self._call(node.attach())
            link = self._links[key] = self._link(host, node, handle)
            await self._ensure_room(handle, node, room.room_id)
            # A publisher left over from the host's last page, possibly on another
            # process's session, would hold the feed id: it goes first.
            with contextlib.suppress(JanusError):
                await handle.message({"request": "kick", "room": room.room_id, "id": FEED})
            _, jsep = await self._call(
                handle.message(
                    {
                        "request": "joinandconfigure",
                        "ptype": "publisher",
                        "room": room.room_id,
                        "id": FEED,
                        "display": "host",
                    },
                    jsep=desc,
                )
            )
        if jsep is None:
            raise media_unavailable("no answer from the media server")
        log.info("room %s: the host publishes to %s", host.room_id, node.url)
        await self.mail.notify(
            host.room_id, HOST_ID, {"type": Signal.ANSWER.value, "from": SFU_ID, "desc": jsep}
        )
        link.described.set()
        # Viewers hear the stream is live once Janus receives the host's video: before
        # that, a subscription finds no feed, or one with nothing in it.

    async def _ensure_room(self, handle: JanusHandle, node: MediaNode, room_id: str) -> None:
        request: dict[str, Any] = {
            "request": "create",
            "room": room_id,
            "publishers": 1,
            "is_private": True,
            "permanent": False,
            "videocodec": "vp8",
            "audiocodec": "opus",
            "bitrate": 3_000_000,
            "fir_freq": 10,
        }
        if node.admin_key:
            request["admin_key"] = node.admin_key
        try:
            await handle.message(request)
        except JanusError as exc:
            if exc.code != ROOM_EXISTS:
                raise media_unavailable(str(exc)) from exc

    def _link(self, participant: Participant, node: MediaNode, handle: JanusHandle) -> _Link:
        """A handle and the task relaying its events to the participant."""
        described = asyncio.Event()
        pump = self._pump(participant, handle, described)
        self.metrics.media_handles.set(len(self._links) + 1)
        return _Link(node, handle, pump, described)

    def _pump(
        self, participant: Participant, handle: JanusHandle, described: asyncio.Event
    ) -> asyncio.Task[None]:
        async def relay() -> None:
            # Janus trickles as soon as it has a description: a candidate the client
            # got before that description would be dropped.
            await described.wait()
            live = False
            while True:
                event = await handle.events.get()
                candidate = candidate_event(event)
                if candidate is not None:
                    await self.mail.notify(
                        participant.room_id,
                        participant.participant_id,
                        {"type": Signal.CANDIDATE.value, "from": SFU_ID, "candidate": candidate},
                    )
                elif _receiving_video(event) and participant.is_host and not live:
                    # Once per publication: Janus says so again after every pause.
                    live = True
                    await self._live(participant.room_id)
                elif event.get("janus") == "hangup":
                    log.info(
                        "room %s: %s's media connection hung up (%s)",
                        participant.room_id,
                        participant.participant_id,
                        event.get("reason"),
                    )

        return asyncio.create_task(relay(), name=f"janus-events {participant.participant_id}")

    async def switched(self, viewer: Participant) -> None:
        """The viewer's stream from the media server renders: the host may close their
        mesh connection (make-before-break)."""
        if viewer.is_host:
            raise PeerscreenError(ErrorCode.FORBIDDEN, "Only viewers switch to the broadcast.")
        log.info("room %s: %s receives the broadcast", viewer.room_id, viewer.participant_id)
        await self.mail.notify(
            viewer.room_id,
            HOST_ID,
            {"type": Event.VIEWER_SWITCHED, "viewerId": viewer.participant_id},
        )

    async def _live(self, room_id: str) -> None:
        log.info("room %s: the broadcast is live", room_id)
        for viewer_id in await self.store.get_viewers(room_id):
            await self.mail.notify(room_id, viewer_id, {"type": Event.BROADCAST, "state": "live"})

    # --- leaving ---------------------------------------------------------------------

    async def left(self, participant: Participant) -> None:
        """The participant's socket closed here, or it left: its handles go."""
        key = (participant.room_id, participant.participant_id)
        await self._drop(key)
        self._forget_lock(key)

    async def ended(self, room: RoomRecord) -> None:
        """The room ended: this process's handles go, and so does the VideoRoom."""
        for key in [k for k in self._links if k[0] == room.room_id]:
            await self._drop(key)
        for key in [k for k in self._locks if k[0] == room.room_id]:
            self._forget_lock(key)
        node = self.nodes.get(room.media_node or "")
        if node is None or not node.healthy:
            return
        with contextlib.suppress(JanusError):
            handle = await node.attach()
            request: dict[str, Any] = {"request": "destroy", "room": room.room_id}
            if node.admin_key:
                request["admin_key"] = node.admin_key
            with contextlib.suppress(JanusError):
                await handle.message(request)
            await node.detach(handle)

    async def _drop(self, key: tuple[str, str]) -> None:
        link = self._links.pop(key, None)
        if link is None:
            return
        self.metrics.media_handles.set(len(self._links))
        link.pump.cancel()
        with contextlib.suppress(JanusError):
            await link.node.detach(link.handle)

    async def _node_lost(self, node: MediaNode) -> None:
        """A media node died with every room on it. The rooms whose host publishes
        through this process move (the host publishes again, then viewers resubscribe)."""
        lost = [key for key, link in self._links.items() if link.node is node]
        for key in lost:
            link = self._links.pop(key)
            link.pump.cancel()
        self.metrics.media_handles.set(len(self._links))
        for room_id in {room_id for room_id, who in lost if who == HOST_ID}:
            await self._recover(room_id, node)

    async def _recover(self, room_id: str, lost: MediaNode) -> None:
        """Another node if one answers; else the same one once it is back (a supervised
        Janus restarts within a second). After RECOVERY_S, a room small enough for the
        host to serve goes back to a mesh; a larger one keeps waiting for a node."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECOVERY_S
        waiting_said = False
        while True:
            for avoid in (lost.url, None):
                try:
                    await self.move(room_id, await self.nodes.pick(avoid=avoid))
                    return
                except JanusError:
                    pass
            room = await self.store.get_room(room_id)
            if room is None or room.ended:
                return
            if loop.time() > deadline:
                viewers = len(await self.store.get_viewers(room_id))
                if viewers <= room.max_viewers:
                    break
                if not waiting_said:
                    log.warning(
                        "room %s: no media server answers, and its %d viewers are too many "
                        "for a mesh: waiting for one",
                        room_id,
                        viewers,
                    )
                    waiting_said = True
            await asyncio.sleep(0.25 if loop.time() <= deadline else 1.0)
        log.warning("room %s: no media server answers; back to a mesh", room_id)
        await self.store.set_media_node(room_id, None)
        mesh = {"type": Event.BROADCAST, "state": "mesh"}
        await self.mail.notify(room_id, HOST_ID, mesh)
        for viewer_id in await self.store.get_viewers(room_id):
            await self.mail.notify(room_id, viewer_id, mesh)

    async def close(self) -> None:
        for key in list(self._links):
            await self._drop(key)
        await self.nodes.close()

    # --- helpers -----------------------------------------------------------------------

    async def _node_of(self, room: RoomRecord) -> MediaNode:
        node = self.nodes.get(room.media_node or "")
        if node is None:
            raise media_unavailable(f"{room.media_node} is not one of this server's")
        return node

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _forget_lock(self, key: tuple[str, str]) -> None:
        """A participant gone holds no lock here: the map stays as large as the room."""
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    def _count(self, sender: Participant) -> None:
        """Signals to the media server count against --rate-signal like any others: each
        costs a Janus request."""
        if self.mail.rate_limits is not None:
            self.mail.rate_limits.take_signal(sender.room_id, sender.participant_id)

    @staticmethod
    async def _call(work: Any) -> Any:
        try:
            return await work
        except JanusError as exc:
            raise media_unavailable(str(exc)) from exc


def _receiving_video(event: dict[str, Any]) -> bool:
    """Janus's ``media`` event saying video from this peer arrives."""
    return bool(
        event.get("janus") == "media" and event.get("type") == "video" and event.get("receiving")
    )
