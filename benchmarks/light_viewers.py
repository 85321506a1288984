"""Many viewers in one process that decode nothing: ``python benchmarks/light_viewers.py
LINK N``.

Each is a ``peerscreen.client.Viewer``; aiortc's decoder is replaced by a counter of the
encoded frames that reach it whole out of the jitter buffer, so a hundred viewers cost
this process little and the machine's CPU goes to what is measured (the host's browser,
Janus). Prints a JSON line a second: every viewer's frame count and whether it receives
from the media server. Leaves the room at ``--seconds`` or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, ClassVar

import aiortc.rtcrtpreceiver
from aiortc.codecs import get_decoder as real_get_decoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from peerscreen.client import ServerApi, Viewer, parse_room, use_host_addresses


class CountingDecoder:
    """Stands in for the video decoder: counts frames, decodes none."""

    made: ClassVar[list[CountingDecoder]] = []

    def __init__(self) -> None:
        self.frames = 0
        CountingDecoder.made.append(self)

    def decode(self, encoded_frame: Any) -> list[Any]:
        self.frames += 1
        return []


def counting_get_decoder(codec: RTCRtpCodecParameters) -> Any:
    if codec.mimeType.lower().startswith("video/"):
        return CountingDecoder()
    return real_get_decoder(codec)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("link")
    parser.add_argument("count", type=int)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--ice-address", default="127.0.0.2")
    args = parser.parse_args()
    if not 1 <= args.count <= 400:
        parser.error("count: 1 to 400")
    # The receiver's decoding thread looks the name up in its own module.
    setattr(aiortc.rtcrtpreceiver, "get_decoder", counting_get_decoder)  # noqa: B010
    use_host_addresses([args.ice_address])
    room = parse_room(args.link)
    stdin_closed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        if not sys.stdin.read(1):
            stdin_closed.set()
            loop.remove_reader(sys.stdin.fileno())

    loop.add_reader(sys.stdin.fileno(), read_stdin)
    async with ServerApi(room.server) as api:
        viewers = [Viewer(api, room, name=f"light {n}") for n in range(args.count)]
        for viewer in viewers:
            await viewer.join()
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline and not stdin_closed.is_set():
            print(
                json.dumps(
                    {
                        "at": time.monotonic(),
                        "decoders": [d.frames for d in CountingDecoder.made],
                        "from_media_server": sum(v.link is v.sfu_link for v in viewers),
                        "connected": sum(
                            v.link is not None and v.link.pc.connectionState == "connected"
                            for v in viewers
                        ),
                    }
                ),
                flush=True,
            )
            await asyncio.sleep(1.0)
        for viewer in viewers:
            await viewer.leave()


if __name__ == "__main__":
    asyncio.run(main())
