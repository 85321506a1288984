"""The Janus servers this process sends broadcast rooms to, and their health.

Each node gets one API connection and one Janus session per peerscreen process; every
handle this process makes on the node lives in that session. A node whose connection
drops is unhealthy until a connection opens again, and its loss is reported once, so the
rooms on it can move.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..config import Settings
from .janus import JanusConnection, JanusError, JanusHandle, JanusSession

log = logging.getLogger("peerscreen.janus")

CONNECT_TIMEOUT_S = 2.0


class MediaNode:
    """One Janus, as this process sees it."""

    def __init__(self, url: str, api_secret: str | None, admin_key: str | None) -> None:
        self.url = url
        self.api_secret = api_secret
        self.admin_key = admin_key
        self.handles = 0
        """Handles this process holds on the node: its share of the node's load."""
        self._connection: JanusConnection | None = None
        self._session: JanusSession | None = None
        self._lock = asyncio.Lock()
        self.on_lost: Callable[[MediaNode], Awaitable[None]] | None = None
        self._reporting: asyncio.Future[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._connection is not None and not self._connection.closed.done()

    async def session(self) -> JanusSession:
        """The session for this process's handles, connecting first if needed."""
        async with self._lock:
            if self._session is not None and self.healthy:
                return self._session
            connection = await JanusConnection.open(self.url, self.api_secret, CONNECT_TIMEOUT_S)
            self._connection = connection
            self._session = await connection.create_session()
            self.handles = 0
            connection.closed.add_done_callback(lambda _: self._lost(connection))
            log.info("media node %s: connected", self.url)
            return self._session

    async def rooms(self) -> int:
        """How many VideoRoom rooms the node holds (its load, whoever made them)."""
        handle = await (await self.session()).attach()
        try:
            data, _ = await handle.message(
                {"request": "list", **({"admin_key": self.admin_key} if self.admin_key else {})}
            )
            return len(data.get("list", []))
        finally:
            await handle.detach()

    async def attach(self) -> JanusHandle:
        handle = await (await self.session()).attach()
        self.handles += 1
        return handle

    async def detach(self, handle: JanusHandle) -> None:
        self.handles = max(0, self.handles - 1)
        if self.healthy:
            await handle.detach()

    def _lost(self, connection: JanusConnection) -> None:
        if connection is not self._connection:
            return
        log.warning("media node %s: lost", self.url)
        self._session = None
        if self.on_lost is not None:
            self._reporting = asyncio.ensure_future(self.on_lost(self))

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


class MediaNodes:
    """Every configured Janus; empty when broadcast is off."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.janus_api_secret
        key = settings.janus_admin_key
        self.nodes = [
            MediaNode(
                url.strip(),
                secret.get_secret_value() if secret else None,
                key.get_secret_value() if key else None,
            )
            for url in settings.janus_urls.split(",")
            if url.strip()
        ]

    @property
    def enabled(self) -> bool:
        return bool(self.nodes)

    def get(self, url: str) -> MediaNode | None:
        return next((node for node in self.nodes if node.url == url), None)

    async def pick(self, avoid: str | None = None) -> MediaNode:
        """The least loaded node that answers (``avoid``: one that just failed).

        Load is what the node itself reports, the rooms it holds, so that every
        peerscreen process sharing the nodes judges alike.
        """
        loads: list[tuple[int, int, MediaNode]] = []
        problems = []
        for order, node in enumerate(n for n in self.nodes if n.url != avoid):
            try:
                loads.append((await node.rooms(), order, node))
            except JanusError as exc:
                problems.append(str(exc))
        if not loads:
            raise JanusError("No media server answers: " + "; ".join(problems or ["none set"]))
        return min(loads, key=lambda load: load[:2])[2]

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()
