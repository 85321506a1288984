"""Janus, started and supervised by peerscreen (--janus), and driven over its API."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import websockets

from peerscreen.media.janus import JanusConnection, JanusError
from peerscreen.media.local_janus import LocalJanus


@pytest.fixture
def local_janus() -> Iterator[LocalJanus]:
    janus = LocalJanus(ice_addresses=("127.0.0.2",), rtp_ports=(41000, 41099))
    janus.start()
    yield janus
    janus.stop()


async def connect(janus: LocalJanus, timeout: float = 10.0) -> JanusConnection:
    """The API, once Janus listens (it takes a few tenths of a second to start)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await JanusConnection.open(janus.url, janus.config.api_secret, timeout=1)
        except JanusError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def create_room(connection: JanusConnection, room: str, admin_key: str) -> None:
    session = await connection.create_session()
    handle = await session.attach()
    data, _ = await handle.message(
        {"request": "create", "room": room, "admin_key": admin_key, "publishers": 1}
    )
    assert data["videoroom"] == "created"


async def test_a_local_janus_serves_its_api_behind_secrets(local_janus: LocalJanus) -> None:
    connection = await connect(local_janus)
    await create_room(connection, "room-1", local_janus.config.admin_secret)
    session = await connection.create_session()
    handle = await session.attach()
    # Rooms are made by the server only: without the admin key, Janus refuses.
    with pytest.raises(JanusError) as refused:
        await handle.message({"request": "create", "room": "room-2", "publishers": 1})
    assert refused.value.code == 429
    data, _ = await handle.message({"request": "exists", "room": "room-1"})
    assert data["exists"] is True
    await connection.close()

    # Without the API secret, nothing but "info".
    stranger = await JanusConnection.open(local_janus.url, api_secret=None)
    with pytest.raises(JanusError, match="Unauthorized"):
        await stranger.create_session()
    await stranger.close()
    # The admin API listens on loopback with its own secret.
    async with websockets.connect(
        f"ws://127.0.0.1:{local_janus.config.admin_port}",
        subprotocols=[websockets.Subprotocol("janus-admin-protocol")],
    ):
        pass


async def test_when_janus_dies_its_connection_says_so_and_it_is_restarted(
    local_janus: LocalJanus,
) -> None:
    connection = await connect(local_janus)
    await create_room(connection, "room-1", local_janus.config.admin_secret)
    pid = local_janus.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await asyncio.wait_for(connection.closed, 5)
    with pytest.raises(JanusError, match=r"closed|went away"):
        await connection.create_session()

    # The supervisor starts a new one, with nothing of the old one's state.
    fresh = await connect(local_janus)
    assert local_janus.pid != pid and local_janus.restarts == 1
    session = await fresh.create_session()
    handle = await session.attach()
    data, _ = await handle.message({"request": "exists", "room": "room-1"})
    assert data["exists"] is False
    await fresh.close()
