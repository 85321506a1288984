"""Many lightweight viewers in one process: ``python -m tests.support.many_viewers LINK N``.

Each is a ``peerscreen.client.Viewer`` counting the pictures it decodes. Prints one JSON
line when every viewer has ``--frames`` pictures (or at ``--seconds``), holding the
frame counts and each viewer's path, then leaves the room.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from peerscreen.client import ServerApi, Sink, Viewer, parse_room, use_host_addresses


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("link")
    parser.add_argument("count", type=int)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ice-address", default="127.0.0.2")
    args = parser.parse_args()
    use_host_addresses([args.ice_address])
    room = parse_room(args.link)
    async with ServerApi(room.server) as api:
        sinks = [Sink() for _ in range(args.count)]
        viewers = [
            Viewer(api, room, name=f"light {n}", on_track=sink.add_track)
            for n, sink in enumerate(sinks)
        ]
        for viewer in viewers:
            await viewer.join()
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            if all(sink.progress.frames >= args.frames for sink in sinks):
                break
            await asyncio.sleep(0.2)
        print(
            json.dumps(
                {
                    "frames": [sink.progress.frames for sink in sinks],
                    "sizes": [[sink.progress.width, sink.progress.height] for sink in sinks],
                    "from_media_server": [v.link is v.sfu_link for v in viewers],
                }
            ),
            flush=True,
        )
        for viewer in viewers:
            await viewer.leave()
        for sink in sinks:
            await sink.close()


if __name__ == "__main__":
    asyncio.run(main())
