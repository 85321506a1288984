"""A host and several viewers complete the offer/answer/candidate exchange, over every
transport mixed in one room, on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ..support.clients import (
    Member,
    Message,
    answer_sdp,
    candidate,
    host_room,
    join_as,
    offer_sdp,
)
from ..support.processes import ServerProcess

VIEWER_TRANSPORTS = ["socket", "poll", "longpoll"]


async def exchange(host: Member, viewers: list[Member]) -> None:
    """The full negotiation between the host and each viewer, checked end to end."""
    joined = {(await host.next("viewer-joined"))["viewerId"] for _ in viewers}
    assert joined == {v.participant_id for v in viewers}

    for v in viewers:
        await host.send("offer", to=v.participant_id, desc=offer_sdp(v.participant_id))
        await host.send("candidate", to=v.participant_id, candidate=candidate(1))

    async def viewer_side(v: Member) -> None:
        offer = await v.next("offer")
        assert offer["from"] == "host"
        assert offer["desc"] == offer_sdp(v.participant_id)  # its own offer, nobody else's
        host_candidate = await v.next("candidate")
        assert host_candidate["candidate"] == candidate(1)
        await v.send("answer", desc=answer_sdp(v.participant_id))
        for n in (2, 3):
            await v.send("candidate", candidate=candidate(n))

    await asyncio.gather(*(viewer_side(v) for v in viewers))

    def from_viewer(kind: str, viewer_id: str) -> Callable[[Message], bool]:
        return lambda m: m["type"] == kind and m["from"] == viewer_id

    for v in viewers:
        answer = await host.next(from_viewer("answer", v.participant_id))
        assert answer["desc"] == answer_sdp(v.participant_id)
        got = [
            (await host.next(from_viewer("candidate", v.participant_id)))["candidate"]
            for _ in range(2)
        ]
        assert got == [candidate(2), candidate(3)]  # in the order sent
    for v in viewers:
        # Besides how many watch (audience), exactly what the host sent it.
        signals = [m["type"] for m in v.received if m["type"] != "audience"]
        assert signals == ["offer", "candidate"]


@pytest.mark.parametrize("host_transport", ["socket", "poll", "longpoll"])
async def test_host_and_three_viewers_on_mixed_transports(
    any_server: ServerProcess, host_transport: str
) -> None:
    host = await host_room(any_server.base_url, host_transport)
    viewers = [await join_as(any_server.base_url, host.room_id, t) for t in VIEWER_TRANSPORTS]
    try:
        await exchange(host, viewers)
        sequence = [m["seq"] for m in host.received]
        assert sequence == sorted(set(sequence))
    finally:
        for member in [host, *viewers]:
            await member.close()
