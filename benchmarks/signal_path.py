"""Python CPU per relayed signal, in process: from a client's frame to its viewer's frame.

The relay benchmark (relay.py) measures a whole server over loopback, where the kernel's
share (TCP on both sides, waking processes) is a third of the time and the run-to-run
spread is +-15%. This one runs the same code path with no sockets and no kernel: the
real application (memory store, rate limits, presence, metrics) with its lifespan, rooms
made through the HTTP API in process, sockets as :class:`peerscreen.websocket`
protocols on a transport that only counts what is written. Each signal is a masked
client frame fed to the host's protocol; it is done when the viewer's frame is written
(on the memory store that happens before ``data_received`` returns).

    .venv/bin/python benchmarks/signal_path.py             # 5 x 20,000 signals, 100 pairs
    .venv/bin/python benchmarks/signal_path.py --profile   # cProfile of one pass, top 30

The message mix is the relay benchmark's (one offer of ~3 KB in ten, the rest ICE
candidates); the viewers ack every 20 messages, as the page does.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import time
from typing import Any

import httpx

from peerscreen.app import create_app
from peerscreen.config import Settings
from peerscreen.http_server import protocols

OFFER_EVERY = 10
ACK_EVERY = 20
_SDP = "v=0\r\n" + "".join(
    f"a=candidate:{n} 1 udp 2122260223 192.0.2.{n % 250} {40000 + n} typ host\r\n"
    for n in range(45)
)


def masked_frame(text: str) -> bytes:
    """A client's text frame, masked as the RFC requires of clients."""
    payload = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        head = bytes([0x81, 0x80 | length])
    else:
        head = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    return head + mask + body


class CountingTransport:
    """Enough of an asyncio transport for the WebSocket protocol: writes are counted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writes = 0
        self.bytes = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", self.port) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def settings() -> Settings:
    return Settings(
        rate_rooms="1000000/hour",
        rate_api="10000000/hour",
        rate_signal="10000000/minute",
        max_connections_per_client=1_000_000,
        max_viewers=1,
    )


async def open_socket(ws_class: type, room_id: str, token: str, port: int) -> Any:
    ws = ws_class()
    transport = CountingTransport(port)
    ws.connection_made(transport)
    head = (
        f"GET /api/rooms/{room_id}/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n"
        "connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"sec-websocket-version: 13\r\nsec-websocket-protocol: peerscreen, auth.{token}\r\n\r\n"
    )
    ws.data_received(head.encode())
    deadline = time.monotonic() + 5
    while type(ws.handler).__name__ != "Connection":
        if time.monotonic() > deadline:
            raise RuntimeError("the socket was not authenticated")
        await asyncio.sleep(0.001)
    return ws, transport


async def run(args: argparse.Namespace) -> None:
    app = create_app(settings())
    api = app.api
    _, ws_class = protocols(api.state.settings, [], app)
    async with api.router.lifespan_context(api):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://x")
        pairs = []
        async with client:
            for n in range(args.pairs):
                room = (await client.post("/api/rooms", json={})).json()
                viewer = (
                    await client.post(
                        f"/api/rooms/{room['roomId']}/viewers",
                        json={},
                        headers={"authorization": f"Bearer {room['hostToken']}"},
                    )
                ).json()
                host_ws, _ = await open_socket(ws_class, room["roomId"], room["hostToken"], n)
                viewer_ws, viewer_out = await open_socket(
                    ws_class, room["roomId"], viewer["viewerToken"], 100_000 + n
                )
                pairs.append((host_ws, viewer_ws, viewer_out, viewer["viewerId"]))

        # The frames are made beforehand: their masking is the client's work.
        frames = []
        for n in range(args.signals):
            host_ws, viewer_ws, viewer_out, viewer_id = pairs[n % len(pairs)]
            if n % OFFER_EVERY == 0:
                body: dict[str, Any] = {
                    "type": "offer",
                    "to": viewer_id,
                    "desc": {"type": "offer", "sdp": _SDP},
                }
            else:
                line = f"candidate:{n} 1 udp 2122260223 127.0.0.1 {40000 + n % 20000} typ host"
                body = {
                    "type": "candidate",
                    "to": viewer_id,
                    "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
                }
            frames.append((host_ws, masked_frame(json.dumps(body))))

        def one_pass() -> float:
            written = sum(p[2].writes for p in pairs)
            clock = time.process_time_ns
            spent = 0
            for count, (host_ws, data) in enumerate(frames, 1):
                if args.gap:
                    time.sleep(args.gap)  # the core idles between signals, as at 1,000/s
                start = clock()
                host_ws.data_received(data)
                spent += clock() - start
                if count % (ACK_EVERY * len(pairs)) == 0:
                    for _, viewer_ws, _, _ in pairs:
                        conn = viewer_ws.handler
                        viewer_ws.data_received(
                            masked_frame(json.dumps({"type": "ack", "seq": conn.sent}))
                        )
            # What reading the clock itself costs, taken off.
            start = clock()
            for _ in range(1000):
                clock()
            spent -= (clock() - start) // 1000 * len(frames)
            delivered = sum(p[2].writes for p in pairs) - written
            if delivered < len(frames):
                raise RuntimeError(f"{delivered} of {len(frames)} signals delivered")
            return spent / len(frames) / 1e3

        one_pass()  # warm-up
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            one_pass()
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
            return
        results = [one_pass() for _ in range(args.repeats)]
        print(
            json.dumps(
                {
                    "us_per_signal_median": round(statistics.median(results), 2),
                    "min": round(min(results), 2),
                    "max": round(max(results), 2),
                    "signals": args.signals,
                    "pairs": args.pairs,
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--signals", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--gap", type=float, default=0.0, help="seconds the core idles between signals"
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(run(args))
    except ImportError:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
