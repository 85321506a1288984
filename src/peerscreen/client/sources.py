"""What a Python host can share: a test pattern, an X11 screen or window, a video file.

Each opens FFmpeg inputs through PyAV (aiortc's MediaPlayer), so nothing beyond the
``client`` extra is needed: PyAV's wheels carry FFmpeg with ``lavfi`` and ``x11grab``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer


class SourceError(Exception):
    """A source that cannot be opened, with what to do about it."""


@dataclass
class Source:
    """The tracks to share, and a description for the terminal."""

    description: str
    tracks: list[MediaStreamTrack]
    players: list[MediaPlayer] = field(default_factory=list)

    def stop(self) -> None:
        for track in self.tracks:
            track.stop()


def parse_size(text: str) -> tuple[int, int]:
    """``1280x720`` as (width, height); even numbers, as video encoders need."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise SourceError(f"Not a size: {text!r}. Give one like 1280x720.") from None
    if not (16 <= width <= 7680 and 16 <= height <= 4320):
        raise SourceError(f"Size {text} is out of range (16x16 to 7680x4320).")
    return width - width % 2, height - height % 2


def test_pattern(size: str = "1280x720", fps: int = 30) -> Source:
    """FFmpeg's moving ``testsrc2`` pattern (a frame counter in it) and a 440 Hz tone."""
    width, height = parse_size(size)
    video = MediaPlayer(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi")
    audio = MediaPlayer("sine=frequency=440:sample_rate=48000", format="lavfi")
    assert video.video is not None and audio.audio is not None
    return Source(
        f"test pattern {width}x{height} at {fps} fps with a tone",
        [video.video, audio.audio],
        [video, audio],
    )


def _open_x11(display: str, options: dict[str, str], what: str) -> MediaPlayer:
    try:
        return MediaPlayer(display, format="x11grab", options=options)
    except av.FFmpegError as exc:
        raise SourceError(
            f"Could not capture {what} on X display {display!r}: {exc}. Is an X server "
            "running there (DISPLAY), and may this user connect to it (xhost, XAUTHORITY)?"
        ) from exc


def screen(display: str | None = None, fps: int = 30) -> Source:
    """An X11 display, whole (FFmpeg's x11grab). No audio: X11 has none to give."""
    display = display or os.environ.get("DISPLAY", "")
    if not display:
        raise SourceError(
            "No X display to capture: set DISPLAY (for example :0) or pass --display."
        )
    player = _open_x11(display, {"framerate": str(fps), "draw_mouse": "1"}, "the screen")
    assert player.video is not None
    return Source(f"screen {display} at {fps} fps", [player.video], [player])


def window(window_id: str, display: str | None = None, fps: int = 30) -> Source:
    """One X11 window by its id (``xwininfo`` or ``xdotool search`` give it)."""
    display = display or os.environ.get("DISPLAY", "")
    if not display:
        raise SourceError("No X display: set DISPLAY (for example :0) or pass --display.")
    try:
        number = int(window_id, 0)
    except ValueError:
        raise SourceError(
            f"Not a window id: {window_id!r}. Give the X11 id, such as 0x3a00007 "
            "(xwininfo shows it when you click the window)."
        ) from None
    player = _open_x11(
        display,
        {"framerate": str(fps), "window_id": str(number), "draw_mouse": "1"},
        f"window {window_id}",
    )
    assert player.video is not None
    return Source(f"window {window_id} on {display} at {fps} fps", [player.video], [player])


def video_file(path: str, loop: bool = False) -> Source:
    """A video file, played in real time; its audio too when it has some."""
    if not Path(path).is_file():
        raise SourceError(f"No such file: {path}")
    try:
        player = MediaPlayer(path, loop=loop)
    except av.FFmpegError as exc:
        raise SourceError(f"Could not open {path} as a video: {exc}") from exc
    tracks = [t for t in (player.video, player.audio) if t is not None]
    if player.video is None:
        raise SourceError(f"{path} has no video stream.")
    return Source(f"{Path(path).name}{' (looped)' if loop else ''}", tracks, [player])
