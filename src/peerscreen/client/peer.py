"""One aiortc peer connection to one other participant, driven by signaling messages.

aiortc gathers every local candidate before ``setLocalDescription`` returns, so its
descriptions carry their candidates and no trickle follows, only the end-of-candidates
marker. Remote candidates (a browser trickles them) wait until the remote description
is set, as in the page's ``peer.js``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from .rtc import END_OF_CANDIDATES, candidate_from_json

log = logging.getLogger("peerscreen.client")

SendSignal = Callable[..., Awaitable[None]]
"""``send(kind, **fields)``: an offer, answer or candidate to the other side."""


def fingerprint(sdp: str) -> str:
    """The DTLS fingerprint of a description: a new one means a new peer connection."""
    found = re.search(r"^a=fingerprint:.*$", sdp, re.MULTILINE)
    return found.group(0).strip() if found else ""


class PeerLink:
    """An RTCPeerConnection and the signaling that drives it.

    ``on_track`` hears each remote track; ``on_state`` each connection state
    (``new``, ``connecting``, ``connected``, ``failed``, ``closed``).
    """

    def __init__(
        self,
        config: RTCConfiguration,
        send: SendSignal,
        on_track: Callable[[MediaStreamTrack], None] | None = None,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.pc = RTCPeerConnection(configuration=config)
        self._send = send
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()  # one description change at a time
        self.closed = False
        if on_track is not None:
            self.pc.on("track", on_track)

        @self.pc.on("connectionstatechange")
        def _changed() -> None:
            log.debug("peer connection -> %s", self.pc.connectionState)
            if on_state is not None:
                on_state(self.pc.connectionState)

    @property
    def remote_fingerprint(self) -> str:
        remote = self.pc.remoteDescription
        return fingerprint(remote.sdp) if remote is not None else ""

    async def offer(self) -> None:
        """Make an offer (its candidates inside) and send it, then end-of-candidates."""
        async with self._lock:
            if self.closed:
                return
            await self.pc.setLocalDescription(await self.pc.createOffer())
            await self._send_description()

    async def handle(self, message: dict[str, Any]) -> None:
        """Apply an offer, answer or candidate from the other side."""
        async with self._lock:
            if self.closed:
                return
            desc = message.get("desc")
            if isinstance(desc, dict):
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=str(desc.get("sdp", "")), type=str(desc["type"]))
                )
                pending, self._pending = self._pending, []
                for candidate in pending:
                    await self._add_candidate(candidate)
                if desc["type"] == "offer":
                    await self.pc.setLocalDescription(await self.pc.createAnswer())
                    await self._send_description()
            elif isinstance(message.get("candidate"), dict):
                if self.pc.remoteDescription is None:
                    self._pending.append(message["candidate"])  # too early: keep it
                else:
                    await self._add_candidate(message["candidate"])

    async def _add_candidate(self, data: dict[str, Any]) -> None:
        try:
            await self.pc.addIceCandidate(candidate_from_json(data))
        except (ValueError, AssertionError) as exc:
            # A candidate aiortc cannot parse (a TCP or mDNS one it does not use) is
            # skipped, as a browser would.
            log.debug("skipped a remote candidate %r: %s", data.get("candidate"), exc)

    async def _send_description(self) -> None:
        local = self.pc.localDescription
        await self._send(local.type, desc={"type": local.type, "sdp": local.sdp})
        # Every candidate is in the description: tell the other side there are no more.
        await self._send("candidate", candidate=END_OF_CANDIDATES)

    async def close(self) -> None:
        self.closed = True
        await self.pc.close()
