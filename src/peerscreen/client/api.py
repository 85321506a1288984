"""The server's HTTP API, for clients: rooms, joining, ICE servers, access.

Errors come back as :class:`ApiError` with the server's code and message
(docs/protocol.md, "Errors"), so a command can tell a full room from a wrong passcode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from .. import __version__
from .links import RoomAddress


class ApiError(Exception):
    """An error the server answered with (or ``unreachable`` when it answered nothing)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Credentials:
    """Who a client is in a room: its id and its secret token."""

    room: RoomAddress
    participant_id: str
    token: str
    #: The ICE servers that came with them (joining and creating answer with them).
    ice: dict[str, Any] | None = field(default=None, compare=False, repr=False)


class ServerApi:
    """Calls to one peerscreen server. Use as an async context manager."""

    def __init__(self, server: str, timeout: float = 15.0) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.server,
            timeout=timeout,
            headers={"User-Agent": f"peerscreen-client/{__version__}"},
        )

    async def __aenter__(self) -> ServerApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        """One JSON call; raises :class:`ApiError` for any answer but 2xx."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._http.request(
                method, path, headers=headers, json=body if body is not None else None
            )
        except httpx.TransportError as exc:
            raise ApiError(
                "unreachable", f"Could not reach the server at {self.server}: {exc}"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.is_success:
            return data
        error = data.get("error", {}) if isinstance(data, dict) else {}
        raise ApiError(
            str(error.get("code", "http_error")),
            str(error.get("message", f"The server answered {response.status_code}.")),
            response.status_code,
        )

    async def create_room(
        self, auth_secret: str | None = None, passcode: str | None = None
    ) -> tuple[Credentials, dict[str, Any]]:
        """Create a room; the host's credentials and the server's answer (url, expiry)."""
        body = {"passcode": passcode} if passcode else None
        data = await self.call("POST", "/api/rooms", token=auth_secret, body=body)
        room = RoomAddress(self.server, data["roomId"])
        return Credentials(room, "host", data["hostToken"], data.get("ice")), data

    async def join(
        self, room_id: str, passcode: str | None = None, name: str | None = None
    ) -> Credentials:
        """Join a room as a viewer."""
        body: dict[str, str] = {}
        if passcode:
            body["passcode"] = passcode
        if name:
            body["name"] = name
        data = await self.call("POST", f"/api/rooms/{room_id}/viewers", body=body)
        room = RoomAddress(self.server, data["roomId"])
        return Credentials(room, data["viewerId"], data["viewerToken"], data.get("ice"))

    async def ice_servers(self, who: Credentials) -> dict[str, Any]:
        """The room's RTCConfiguration parts for this participant (TURN credentials too)."""
        data: dict[str, Any] = await self.call(
            "GET", f"/api/rooms/{who.room.room_id}/ice-servers", token=who.token
        )
        return data

    async def room_info(self, room_id: str, token: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = await self.call("GET", f"/api/rooms/{room_id}", token=token)
        return data

    async def end_room(self, host: Credentials) -> None:
        await self.call("DELETE", f"/api/rooms/{host.room.room_id}", token=host.token)

    async def leave(self, viewer: Credentials) -> None:
        await self.call(
            "DELETE",
            f"/api/rooms/{viewer.room.room_id}/viewers/{viewer.participant_id}",
            token=viewer.token,
        )

    async def report(self, who: Credentials, setup_ms: float, path: str) -> None:
        await self.call(
            "POST",
            f"/api/rooms/{who.room.room_id}/report",
            token=who.token,
            body={"setupMs": setup_ms, "path": path},
        )
