"""A Python client for peerscreen rooms: watch, record and share with aiortc.

Install with ``pip install 'peerscreen[client]'``. The pieces::

    from peerscreen.client import ServerApi, Viewer, Recording, parse_room

    room = parse_room("https://screens.example.org/r/k7dm-x9paq-3hrt")
    async with ServerApi(room.server) as api:
        recording = Recording("talk.webm")
        viewer = Viewer(api, room, on_track=recording.add_track)
        await viewer.join()
        await viewer.finished          # the room ended, or we were removed
        await recording.close()

See docs/client.md. Names are imported on first use, so ``peerscreen --help`` works
without the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import ApiError, Credentials, ServerApi
    from .host import Host, ViewerLink
    from .links import RoomAddress, parse_room
    from .peer import PeerLink
    from .record import FrameFiles, Progress, Recording, Sink
    from .rtc import host_addresses, rtc_configuration, use_host_addresses
    from .signaling import CloseInfo, SignalingError, SignalingSocket
    from .sources import Source, SourceError, screen, test_pattern, video_file, window
    from .viewer import Viewer, ViewerStatus

_WHERE = {
    "ApiError": "api",
    "Credentials": "api",
    "ServerApi": "api",
    "Host": "host",
    "ViewerLink": "host",
    "RoomAddress": "links",
    "parse_room": "links",
    "PeerLink": "peer",
    "FrameFiles": "record",
    "Progress": "record",
    "Recording": "record",
    "Sink": "record",
    "host_addresses": "rtc",
    "rtc_configuration": "rtc",
    "use_host_addresses": "rtc",
    "CloseInfo": "signaling",
    "SignalingError": "signaling",
    "SignalingSocket": "signaling",
    "Source": "sources",
    "SourceError": "sources",
    "screen": "sources",
    "test_pattern": "sources",
    "video_file": "sources",
    "window": "sources",
    "Viewer": "viewer",
    "ViewerStatus": "viewer",
}
__all__ = [
    "ApiError",
    "CloseInfo",
    "Credentials",
    "FrameFiles",
    "Host",
    "PeerLink",
    "Progress",
    "Recording",
    "RoomAddress",
    "ServerApi",
    "SignalingError",
    "SignalingSocket",
    "Sink",
    "Source",
    "SourceError",
    "Viewer",
    "ViewerLink",
    "ViewerStatus",
    "host_addresses",
    "parse_room",
    "rtc_configuration",
    "screen",
    "test_pattern",
    "use_host_addresses",
    "video_file",
    "window",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
