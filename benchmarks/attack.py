"""Memory under attack: one address does its worst for a minute, within every limit.

The server runs with its default settings (in-memory store). From 127.0.0.1 the attacker:

1. creates rooms until the room limit refuses it (50 an hour);
2. joins each room with viewers until it is full (10 a room);
3. opens WebSockets, a host and a viewer per room, until the connection cap refuses it
   (100 connections an address);
4. for ``--duration`` seconds, sends from every socket at twice the allowed rate: hosts
   send offers of the largest size (64 KB of SDP) to every viewer of their room, and chat
   of the largest size; viewers send answers of the largest size and candidates. Nobody
   reads or acknowledges mail, so every mailbox fills to its budget.

Meanwhile a victim on 127.0.0.2 creates a room, joins it and exchanges an offer and an
answer over WebSockets every 2 s, timing each round. The server's RSS is sampled every
0.5 s. Figures: RSS before, at its highest and at the end; the victim's rounds (all must
succeed) and their times; what the attacker's messages got (accepted or which error).

    python benchmarks/attack.py                  # 60 s, writes benchmarks/results/attack.json
    python benchmarks/attack.py --duration 10    # a quick look

Only loopback addresses are used; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets
from websockets.asyncio.client import ClientConnection

ROOT = Path(__file__).resolve().parent.parent
ATTACKER = "127.0.0.1"
VICTIM = "127.0.0.2"
SDP = "v=0\r\n" + "a=x-padding:" + "p" * 65_000
CHAT = "\U0001f600" * 1000  # 4 bytes a character in UTF-8
PACE = 20.0  # messages a second per socket: twice the default signal limit (600/minute)
CHAT_PACE = 2.0  # twice the default chat limit (60/minute)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Attack:
    def __init__(self, base: str, ws_base: str) -> None:
        self.base = base
        self.ws_base = ws_base
        self.rooms: list[dict[str, Any]] = []
        self.viewers: dict[str, list[dict[str, Any]]] = {}
        self.sockets: list[ClientConnection] = []
        self.outcomes: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=ATTACKER)
        return httpx.AsyncClient(base_url=self.base, transport=transport, timeout=10)

    async def prepare(self) -> None:
        async with self.client() as http:
            for _ in range(200):
                made = await http.post("/api/rooms")
                if made.status_code != 201:
                    self.refused[f"room {made.status_code}"] += 1
                    break
                self.rooms.append(made.json())
            for room in self.rooms:
                joined = self.viewers[room["roomId"]] = []
                for _ in range(50):
                    viewer = await http.post(f"/api/rooms/{room['roomId']}/viewers")
                    if viewer.status_code != 201:
                        self.refused[f"join {viewer.status_code}"] += 1
                        break
                    joined.append(viewer.json())

    async def open_socket(self, room_id: str, token: str) -> ClientConnection | None:
        url = f"{self.ws_base}/api/rooms/{room_id}/ws"
        try:
            ws = await websockets.connect(
                url, max_size=None, open_timeout=5, family=socket.AF_INET, local_addr=(ATTACKER, 0)
            )
        except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, TimeoutError):
            self.refused["socket refused"] += 1
            return None
        await ws.send(json.dumps({"type": "hello", "token": token}))
        try:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except (websockets.ConnectionClosed, TimeoutError):
            self.refused["socket closed at hello"] += 1
            return None
        if welcome.get("type") != "welcome":
            self.refused["socket not welcomed"] += 1
            return None
        self.sockets.append(ws)
        return ws

    async def drain(self, ws: ClientConnection) -> None:
        """Read replies to count them, and answer pings so the socket stays; never ack."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "error":
                    self.outcomes[message["code"]] += 1
                elif kind == "accepted":
                    self.outcomes["accepted"] += 1

    async def flood(self, ws: ClientConnection, messages: list[str], deadline: float) -> None:
        n = 0
        next_at = time.monotonic()
        with contextlib.suppress(websockets.ConnectionClosed):
            while time.monotonic() < deadline:
                await ws.send(messages[n % len(messages)])
                n += 1
                next_at += 1 / PACE
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def chat(self, ws: ClientConnection, deadline: float) -> None:
        body = json.dumps({"type": "chat", "id": "c", "text": CHAT, "name": "x" * 40})
        with contextlib.suppress(websockets.ConnectionClosed):
            while time.monotonic() < deadline:
                await ws.send(body)
                await asyncio.sleep(1 / CHAT_PACE)

    async def run(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        tasks: list[asyncio.Task[None]] = []
        for room in self.rooms:
            room_id = room["roomId"]
            viewers = self.viewers[room_id]
            host = await self.open_socket(room_id, room["hostToken"])
            if host is None:
                break
            offers = [
                json.dumps(
                    {
                        "type": "offer",
                        "id": n,
                        "to": v["viewerId"],
                        "desc": {"type": "offer", "sdp": SDP},
                    }
                )
                for n, v in enumerate(viewers)
            ]
            tasks += [
                asyncio.create_task(self.drain(host)),
                asyncio.create_task(self.flood(host, offers, deadline)),
                asyncio.create_task(self.chat(host, deadline)),
            ]
            if not viewers:
                continue
            viewer = await self.open_socket(room_id, viewers[0]["viewerToken"])
            if viewer is None:
                break
            answer = json.dumps({"type": "answer", "id": 1, "desc": {"type": "answer", "sdp": SDP}})
            candidate = json.dumps(
                {"type": "candidate", "id": 2, "candidate": {"candidate": "c" * 2000}}
            )
            tasks += [
                asyncio.create_task(self.drain(viewer)),
                asyncio.create_task(self.flood(viewer, [answer, candidate], deadline)),
            ]
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        for ws in self.sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def victim_rounds(base: str, ws_base: str, deadline: float) -> list[float | None]:
    """Every 2 s: a new room, a viewer, an offer and an answer over sockets; the round's
    time in ms, or None when it failed."""
    rounds: list[float | None] = []
    transport = httpx.AsyncHTTPTransport(local_address=VICTIM)
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=10) as http:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                async with asyncio.timeout(10):
                    room = (await http.post("/api/rooms")).json()
                    viewer = (await http.post(f"/api/rooms/{room['roomId']}/viewers")).json()
                    url = f"{ws_base}/api/rooms/{room['roomId']}/ws"
                    async with (
                        websockets.connect(url, local_addr=(VICTIM, 0)) as host,
                        websockets.connect(url, local_addr=(VICTIM, 0)) as watcher,
                    ):
                        await host.send(json.dumps({"type": "hello", "token": room["hostToken"]}))
                        await watcher.send(
                            json.dumps({"type": "hello", "token": viewer["viewerToken"]})
                        )
                        await host.send(
                            json.dumps(
                                {
                                    "type": "offer",
                                    "to": viewer["viewerId"],
                                    "desc": {"type": "offer", "sdp": "v=0\r\n"},
                                }
                            )
                        )
                        while json.loads(await watcher.recv()).get("type") != "offer":
                            pass
                        await watcher.send(
                            json.dumps(
                                {"type": "answer", "desc": {"type": "answer", "sdp": "v=0\r\n"}}
                            )
                        )
                        while json.loads(await host.recv()).get("type") != "answer":
                            pass
                rounds.append((time.monotonic() - started) * 1000)
            except Exception:
                rounds.append(None)
            await asyncio.sleep(max(0.0, started + 2 - time.monotonic()))
    return rounds


async def sample_rss(process: psutil.Process, until: asyncio.Event, into: list[int]) -> None:
    while not until.is_set():
        into.append(process.memory_info().rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), 0.5)


def start_server(port: int) -> subprocess.Popen[bytes]:
    """peerscreen with its default settings (limits included), on the in-memory store."""
    command = [sys.executable, "-m", "peerscreen", "serve", "--port", str(port)]
    return subprocess.Popen([*command, "--log-level", "warning"])


async def measure(duration: float) -> dict[str, Any]:
    port = free_port()
    server = start_server(port)
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(
            base_url=base, transport=httpx.AsyncHTTPTransport(local_address=VICTIM)
        ) as http:
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start")
                await asyncio.sleep(0.1)
        process = psutil.Process(server.pid)
        # Warm the code paths an attack uses, from the victim's side, before the baseline.
        await victim_rounds(base, ws_base, time.monotonic() + 1)
        before = process.memory_info().rss
        samples: list[int] = []
        done = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(process, done, samples))
        attack = Attack(base, ws_base)
        started = time.monotonic()
        await attack.prepare()
        victim = asyncio.create_task(victim_rounds(base, ws_base, started + duration))
        await attack.run(max(1.0, duration - (time.monotonic() - started)))
        rounds = await victim
        done.set()
        await sampler
        await asyncio.sleep(1)
        after = process.memory_info().rss
        timed = [r for r in rounds if r is not None]
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "duration_s": duration,
            "rooms": len(attack.rooms),
            "viewers": sum(len(v) for v in attack.viewers.values()),
            "sockets": len(attack.sockets),
            "refused_while_preparing": dict(attack.refused),
            "attacker_outcomes": dict(attack.outcomes),
            "rss_before_mb": round(before / 1e6, 1),
            "rss_max_mb": round(max(samples) / 1e6, 1),
            "rss_growth_max_mb": round((max(samples) - before) / 1e6, 1),
            "rss_after_mb": round(after / 1e6, 1),
            "victim_rounds": len(rounds),
            "victim_failed": len(rounds) - len(timed),
            "victim_round_ms_p50": round(statistics.median(timed), 1) if timed else None,
            "victim_round_ms_max": round(max(timed), 1) if timed else None,
        }
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    if not 5 <= args.duration <= 600:
        parser.error("--duration must be between 5 and 600 seconds")
    result = asyncio.run(measure(args.duration))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "attack.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
