"""Saving what a viewer receives: a video file any player opens, or frames as images.

aiortc's MediaRecorder fixes the picture size at the first frame and needs every stream
before the first packet; a browser changes its resolution as its encoder adapts, and
audio often arrives before the first key frame. This recorder waits for the first video
frame before writing the file's header, scales later frames to the first size, and
stamps frames with their arrival time, so a pause or a reconnect leaves a gap in time
rather than a jump.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

log = logging.getLogger("peerscreen.client")

MILLISECONDS = Fraction(1, 1000)
PICTURE_GAP_S = 1.0
"""A pause in pictures longer than this is news (a paused host, a reconnect)."""
CONTAINERS = {".webm": "webm", ".mkv": "matroska", ".mp4": "mp4", ".mov": "mov"}


@dataclass
class Progress:
    """What the terminal shows while watching."""

    started: float
    frames: int = 0
    width: int = 0
    height: int = 0
    audio: bool = False
    first_frame_after: float | None = None
    bytes_written: int = 0
    fps: float = 0.0
    bitrate: float = 0.0  # bits a second going to the file over the last few seconds

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        size = f"{self.width}x{self.height}" if self.width else "no picture yet"
        parts = [f"{int(elapsed // 60):02d}:{elapsed % 60:04.1f}", size, f"{self.fps:.0f} fps"]
        if self.bytes_written:
            parts.append(f"{self.bitrate / 1000:.0f} kbit/s")
            parts.append(_size(self.bytes_written))
        parts.append(f"{self.frames} frames")
        return "  ".join(parts)


def _size(count: int) -> str:
    if count >= 1 << 20:
        return f"{count / (1 << 20):.1f} MB"
    return f"{count / 1024:.0f} KB"


class Sink:
    """Takes the host's tracks as they come (again after the host reloads) and counts
    frames; subclasses keep them."""

    def __init__(self) -> None:
        self.progress = Progress(time.monotonic())
        self.first_picture = asyncio.Event()
        self.on_picture_back: Callable[[float, bool], None] | None = None
        """Hears (seconds without, from a new connection) when pictures come again after
        a gap, or for the first time from a track that replaced another."""
        self._last_picture = 0.0
        self._new_source = False
        self.error: Exception | None = None
        self.on_error: Callable[[Exception], None] | None = None
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._recent: list[tuple[float, int, int]] = []  # (time, frames, bytes)

    def add_track(self, track: MediaStreamTrack) -> None:
        """Read this track from now on, in place of any earlier one of its kind."""
        old = self._readers.pop(track.kind, None)
        if old is not None:
            old.cancel()
            self._new_source = self._new_source or track.kind == "video"
        self._readers[track.kind] = asyncio.create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            await self._take_frames(track)
        except Exception as exc:  # a full disk, an encoder error: the command must hear
            log.error("could not keep the %s: %s", track.kind, exc)
            self.error = exc
            if self.on_error is not None:
                self.on_error(exc)

    async def _take_frames(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if isinstance(frame, VideoFrame):
                progress = self.progress
                if progress.first_frame_after is None:
                    progress.first_frame_after = now - progress.started
                    self.first_picture.set()
                progress.frames += 1
                gap = now - self._last_picture if self._last_picture else 0.0
                if (gap > PICTURE_GAP_S or self._new_source) and self.on_picture_back:
                    self.on_picture_back(gap, self._new_source)
                self._new_source = False
                self._last_picture = now
                progress.width, progress.height = frame.width, frame.height
                self.video(frame, now)
            elif isinstance(frame, AudioFrame):
                self.progress.audio = True
                self.audio(frame, now)

    def video(self, frame: VideoFrame, now: float) -> None:
        """One decoded picture, received at ``now``."""

    def audio(self, frame: AudioFrame, now: float) -> None:
        """One decoded piece of sound, received at ``now``."""

    def sample(self) -> Progress:
        """Progress, with fps and bitrate over the last five seconds."""
        now = time.monotonic()
        self._recent.append((now, self.progress.frames, self.progress.bytes_written))
        self._recent = [r for r in self._recent if now - r[0] <= 5.0]
        first = self._recent[0]
        if now - first[0] > 0.2:
            self.progress.fps = (self.progress.frames - first[1]) / (now - first[0])
            self.progress.bitrate = 8 * (self.progress.bytes_written - first[2]) / (now - first[0])
        return self.progress

    async def close(self) -> None:
        for reader in self._readers.values():
            reader.cancel()
        for reader in self._readers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._readers.clear()


class Recording(Sink):
    """A WebM (VP8 and Opus), Matroska, MP4 or MOV (H.264 and AAC) file.

    The container follows the file's extension. Nothing is written until the first
    video frame, which sets the picture size for the whole file.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        container_format = CONTAINERS.get(self.path.suffix.lower())
        if container_format is None:
            raise ValueError(
                f"Cannot record to {self.path.name}: use a .webm, .mkv, .mp4 or .mov file."
            )
        self.format = container_format
        # Find out now, not at the first picture, that the file cannot be written.
        with self.path.open("wb"):
            pass
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: av.AudioStream | None = None
        self._resampler: av.AudioResampler | None = None
        self._fifo: av.AudioFifo | None = None
        self._started_at = 0.0
        self._last_video_pts = -1
        self._audio_samples = 0
        self._audio_offset: int | None = None

    def _open(self, frame: VideoFrame, now: float) -> None:
        container = av.open(str(self.path), mode="w", format=self.format)
        webm = self.format == "webm"
        video = container.add_stream("libvpx" if webm else "libx264", rate=30)
        video.width, video.height = frame.width - frame.width % 2, frame.height - frame.height % 2
        video.pix_fmt = "yuv420p"
        video.time_base = MILLISECONDS
        video.codec_context.time_base = MILLISECONDS
        if webm:
            # Real time with a quality floor: a recording of a screen wants its text.
            video.bit_rate = 2_500_000
            video.options = {"deadline": "realtime", "cpu-used": "8", "crf": "10"}
        else:
            video.options = {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}
        audio = container.add_stream("libopus" if webm else "aac", rate=48000)
        audio.layout = "stereo"
        self._container, self._video, self._audio = container, video, audio
        self._resampler = av.AudioResampler(
            format=audio.codec_context.format.name if audio.codec_context.format else "fltp",
            layout="stereo",
            rate=48000,
        )
        self._fifo = av.AudioFifo()
        self._started_at = now

    def video(self, frame: VideoFrame, now: float) -> None:
        if self._container is None:
            self._open(frame, now)
        assert self._video is not None and self._container is not None
        pts = int((now - self._started_at) * 1000)
        if pts <= self._last_video_pts:
            pts = self._last_video_pts + 1
        self._last_video_pts = pts
        if (frame.width, frame.height) != (self._video.width, self._video.height):
            frame = frame.reformat(width=self._video.width, height=self._video.height)
        out = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
        out.pts, out.time_base = pts, MILLISECONDS
        self._write(self._video.encode(out))

    def audio(self, frame: AudioFrame, now: float) -> None:
        if self._container is None or self._audio is None:
            return  # before the first picture: the file has no header yet
        assert self._resampler is not None and self._fifo is not None
        if self._audio_offset is None:
            self._audio_offset = int((now - self._started_at) * 48000)
        frame.pts = None
        for resampled in self._resampler.resample(frame):
            resampled.pts = None
            self._fifo.write(resampled)
        size = self._audio.codec_context.frame_size or 960
        while self._fifo.samples >= size:
            chunk = self._fifo.read(size)
            if chunk is None:
                break
            chunk.pts = self._audio_offset + self._audio_samples
            chunk.time_base = Fraction(1, 48000)
            self._audio_samples += size
            self._write(self._audio.encode(chunk))

    def _write(self, packets: Sequence[av.Packet[Any]]) -> None:
        assert self._container is not None
        for packet in packets:
            self._container.mux(packet)
            self.progress.bytes_written += packet.size

    async def close(self) -> None:
        await super().close()
        if self._container is None:
            return
        for stream in (self._video, self._audio):
            if stream is not None:
                with contextlib.suppress(av.FFmpegError):
                    self._write(stream.encode(None))
        self._container.close()
        self._container = None
        with contextlib.suppress(OSError):
            self.progress.bytes_written = self.path.stat().st_size

    @property
    def started(self) -> bool:
        return self._container is not None


class FrameFiles(Sink):
    """One PNG picture every ``interval`` seconds, named by the time it arrived."""

    def __init__(self, folder: str | Path, interval: float = 1.0) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self._next = 0.0
        self.written: list[Path] = []

    def video(self, frame: VideoFrame, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self.interval
        elapsed = now - self.progress.started
        path = self.folder / f"frame-{len(self.written) + 1:05d}-{elapsed:08.3f}s.png"
        codec = av.CodecContext.create("png", "w")
        codec.width, codec.height = frame.width, frame.height
        codec.pix_fmt = "rgb24"
        codec.time_base = MILLISECONDS
        data = b"".join(bytes(p) for p in codec.encode(frame.reformat(format="rgb24")))
        data += b"".join(bytes(p) for p in codec.encode(None))
        path.write_bytes(data)
        self.written.append(path)
        self.progress.bytes_written += len(data)
