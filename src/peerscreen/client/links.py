"""What a user gives the client to name a room: a pasted link or a typed code."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..ids import normalize_room_id

DEFAULT_SERVER = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class RoomAddress:
    """A room on a server: ``server`` is the base URL (scheme, host, port)."""

    server: str
    room_id: str

    @property
    def link(self) -> str:
        return f"{self.server}/r/{self.room_id}"

    @property
    def websocket_url(self) -> str:
        scheme = "wss" if self.server.startswith("https:") else "ws"
        return f"{scheme}{self.server[self.server.index(':') :]}/api/rooms/{self.room_id}/ws"


def server_url(text: str) -> str:
    """A server's base URL from what a user typed: ``host:port`` gets ``http://``."""
    text = text.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Not a server address: {text!r}. Use one like http://host:8080.")
    return f"{parts.scheme}://{parts.netloc}"


def default_server() -> str:
    return server_url(os.environ.get("PEERSCREEN_SERVER", DEFAULT_SERVER))


def parse_room(text: str, server: str | None = None) -> RoomAddress:
    """The room named by a link (``https://host/r/k7dm-x9paq-3hrt``, pasted with or
    without its scheme, with a query or fragment) or by a code typed the way people type
    it (``K7DM X9PAQ 3HRT``). A link names its own server; a code uses ``server``, else
    ``$PEERSCREEN_SERVER``, else http://127.0.0.1:8080."""
    text = text.strip().strip("<>\"'")
    code = normalize_room_id(text)
    if code is not None:
        return RoomAddress(server_url(server) if server else default_server(), code)
    candidate = text if "://" in text else "http://" + text
    parts = urlsplit(candidate)
    path = parts.path.rstrip("/")
    if parts.scheme in ("http", "https") and parts.hostname and "/r/" in path + "/":
        code = normalize_room_id(path.rsplit("/r/", 1)[-1])
        if code is not None:
            base = server_url(server) if server else f"{parts.scheme}://{parts.netloc}"
            return RoomAddress(base, code)
    raise ValueError(
        f"Not a room link or code: {text!r}. Room codes look like k7dm-x9paq-3hrt; "
        "links like https://host/r/k7dm-x9paq-3hrt."
    )
