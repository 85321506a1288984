"""aiortc glue: the room's ICE servers as an RTCConfiguration, candidates to and from
the protocol's JSON, and the addresses aiortc gathers host candidates on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp


def rtc_configuration(ice: dict[str, Any], force_relay: bool = False) -> RTCConfiguration:
    """The RTCConfiguration for ``GET /api/rooms/{id}/ice-servers``'s answer."""
    servers = []
    for server in ice.get("iceServers", []):
        urls = server.get("urls", [])
        # aioice takes one STUN and one TURN server: list them all, it picks.
        servers.append(
            RTCIceServer(
                urls=list(urls) if isinstance(urls, list) else [urls],
                username=server.get("username"),
                credential=server.get("credential"),
            )
        )
    relay = force_relay or ice.get("iceTransportPolicy") == "relay"
    return RTCConfiguration(
        iceServers=servers,
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay else RTCIceTransportPolicy.ALL,
    )


def candidate_from_json(data: dict[str, Any]) -> RTCIceCandidate | None:
    """A browser's ``RTCIceCandidateInit``; None for the end-of-candidates marker."""
    text = str(data.get("candidate") or "")
    if not text:
        return None
    candidate = candidate_from_sdp(text.removeprefix("candidate:"))
    candidate.sdpMid = data.get("sdpMid")
    candidate.sdpMLineIndex = data.get("sdpMLineIndex")
    return candidate


def candidate_to_json(candidate: RTCIceCandidate) -> dict[str, Any]:
    return {
        "candidate": "candidate:" + candidate_to_sdp(candidate),
        "sdpMid": candidate.sdpMid,
        "sdpMLineIndex": candidate.sdpMLineIndex,
    }


def connection_path(pc: RTCPeerConnection) -> str:
    """``relay`` when the media goes through TURN, ``direct`` when not, ``unknown``
    before a path is chosen.

    aiortc has no getStats entry for the selected candidate pair: this reads aioice's
    nominated pair, and says ``unknown`` should that ever move.
    """
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        nominated = getattr(getattr(ice, "_connection", None), "_nominated", None)
        for pair in (nominated or {}).values():
            local, remote = pair.local_candidate, pair.remote_candidate
            return "relay" if "relay" in (local.type, remote.type) else "direct"
    return "unknown"


END_OF_CANDIDATES: dict[str, Any] = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
"""What a client sends when it has no more candidates (docs/protocol.md)."""

_default_host_addresses = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Gather host candidates on these addresses only (None: every interface's, which is
    aiortc's default and skips loopback).

    aiortc never offers 127.0.0.1; two programs on one machine with no other interface
    (a test, a container) then find no path unless told to use it. Applies to every peer
    connection made afterwards in this process.
    """
    if addresses is None:
        aioice.ice.get_host_addresses = _default_host_addresses
        return
    chosen = list(addresses)

    def pick(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = pick


@contextmanager
def host_addresses(addresses: Sequence[str] | None) -> Iterator[None]:
    """:func:`use_host_addresses` for a block, then back to aiortc's default."""
    use_host_addresses(addresses)
    try:
        yield
    finally:
        use_host_addresses(None)
