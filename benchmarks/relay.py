"""Signaling relay benchmark: peerscreen against PeerJS server, same load client, one run.

For each server, in turn and ``--repeats`` times:

1. start it on a free loopback port and note its resident memory;
2. open ``--pairs`` pairs of WebSocket connections (a host and a viewer each; for
   peerscreen one room per pair), let them sit idle, and note the memory again:
   (after - before) / connections is the idle memory per connection;
3. send ICE-candidate-sized messages from each host to its viewer at a fixed open-loop
   ``--rate`` (spread evenly over the pairs) for ``--duration`` seconds, each stamped with
   its send time; the viewer records the one-way latency;
4. divide the server process's CPU time (user + system) over the send phase by the
   number of messages relayed: CPU-microseconds per message, independent of the client.

Both protocols' keep-alives run as their real clients do them (PeerJS: a HEARTBEAT every
5 s from each client; peerscreen: a pong to each server ping, and an ack every 50 messages).

PeerJS server (npm package ``peer``) is installed into a cache folder outside the
repository on first use. Only loopback addresses are used; every loop is bounded.

    python benchmarks/relay.py                 # full run, writes benchmarks/results/
    python benchmarks/relay.py --pairs 100 --duration 5 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets
from websockets.asyncio.client import ClientConnection

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PEERSCREEN_BENCH_CACHE", Path.home() / ".cache" / "peerscreen-bench"))
PEERJS_VERSION = "1.0.2"
ACK_EVERY = 50
PEERJS_HEARTBEAT = 5.0
CONNECT_CONCURRENCY = 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def candidate_line(n: int, sent_ns: int) -> str:
    # The send time rides in the candidate string: same size class as a real candidate.
    return f"candidate:{n} 1 udp 2122260223 127.0.0.1 {40000 + n % 20000} typ host ts {sent_ns}"


def sent_at(line: str) -> int:
    return int(line.rsplit(" ", 1)[1])


@dataclass
class Sample:
    server: str
    repeat: int
    connections: int
    rss_before_mb: float
    rss_idle_mb: float
    idle_kb_per_connection: float
    sent: int
    delivered: int
    rate_achieved: float
    cpu_us_per_message: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Latencies:
    values_ns: list[int] = field(default_factory=list)

    def record(self, sent_ns: int) -> None:
        self.values_ns.append(time.perf_counter_ns() - sent_ns)


async def bounded_gather(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


class Target(ABC):
    """A signaling server under test, and how the load client talks to it."""

    name: str
    process: subprocess.Popen[bytes] | None = None

    def __init__(self) -> None:
        self.port = free_port()
        self.latencies = Latencies()
        self.delivered = 0
        self.sockets: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []

    @abstractmethod
    def command(self) -> list[str]: ...

    def start(self) -> None:
        log = (CACHE / f"{self.name}-{self.port}.log").open("wb")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {log.name}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def ps(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / 2**20

    @abstractmethod
    async def open_pairs(self, pairs: int) -> None:
        """Connect ``pairs`` hosts and viewers and start their readers."""

    @abstractmethod
    async def send(self, pair: int, n: int) -> None:
        """Send message ``n`` from host ``pair`` to its viewer."""

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await bounded_gather([s.close for s in self.sockets], CONNECT_CONCURRENCY)


class Peerscreen(Target):
    name = "peerscreen"

    def __init__(self, extra_flags: list[str]) -> None:
        super().__init__()
        self.extra_flags = extra_flags
        self.rooms: list[tuple[ClientConnection, str]] = []

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "peerscreen",
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--max-viewers",
            "1",
            # One load client makes every room: lift the per-address limits.
            "--rate-rooms",
            "1000000/hour",
            "--rate-api",
            "10000000/hour",
            "--rate-signal",
            "10000000/minute",
            "--max-connections-per-client",
            "1000000",
            *self.extra_flags,
        ]

    async def open_pairs(self, pairs: int) -> None:
        base = f"http://127.0.0.1:{self.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def make_pair() -> tuple[dict[str, Any], dict[str, Any]]:
                room = (await http.post("/api/rooms")).json()
                viewer = (await http.post(f"/api/rooms/{room['roomId']}/viewers")).json()
                return room, viewer

            made = await bounded_gather([make_pair] * pairs, CONNECT_CONCURRENCY)

        async def connect(room_id: str, token: str) -> ClientConnection:
            ws = await websockets.connect(
                f"ws://127.0.0.1:{self.port}/api/rooms/{room_id}/ws",
                ping_interval=None,
                max_queue=None,
            )
            await ws.send(json.dumps({"type": "hello", "token": token}))
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "welcome", welcome
            return ws

        jobs: list[Callable[[], Awaitable[Any]]] = []
        for room, viewer in made:
            jobs.append(partial(connect, room["roomId"], room["hostToken"]))
            jobs.append(partial(connect, room["roomId"], viewer["viewerToken"]))
        sockets = await bounded_gather(jobs, CONNECT_CONCURRENCY)
        self.sockets = sockets
        for i, (_room, viewer) in enumerate(made):
            host_ws, viewer_ws = sockets[2 * i], sockets[2 * i + 1]
            self.rooms.append((host_ws, viewer["viewerId"]))
            self.tasks.append(asyncio.create_task(self._read(host_ws)))
            self.tasks.append(asyncio.create_task(self._read(viewer_ws)))

    async def _read(self, ws: ClientConnection) -> None:
        unacked = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "candidate":
                    self.latencies.record(sent_at(message["candidate"]["candidate"]))
                    self.delivered += 1
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                if "seq" in message:
                    unacked += 1
                    if unacked >= ACK_EVERY or kind != "candidate":
                        await ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
                        unacked = 0

    async def send(self, pair: int, n: int) -> None:
        ws, viewer_id = self.rooms[pair]
        line = candidate_line(n, time.perf_counter_ns())
        await ws.send(
            json.dumps(
                {
                    "type": "candidate",
                    "to": viewer_id,
                    "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
                }
            )
        )


class PeerJS(Target):
    name = "peerjs"

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[ClientConnection, str]] = []

    @staticmethod
    def install() -> Path:
        folder = CACHE / "peerjs"
        script = folder / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"
        if not script.exists():
            if shutil.which("npm") is None:
                raise RuntimeError("npm is needed to install PeerJS server (apt install npm)")
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "npm",
                    "install",
                    "--prefix",
                    str(folder),
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    f"peer@{PEERJS_VERSION}",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        return script

    def command(self) -> list[str]:
        return [
            "node",
            str(self.install()),
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--concurrent_limit",
            "100000",
        ]

    async def open_pairs(self, pairs: int) -> None:
        async def connect(peer_id: str) -> ClientConnection:
            ws = await websockets.connect(
                f"ws://127.0.0.1:{self.port}/peerjs?key=peerjs&id={peer_id}&token=t{peer_id}",
                ping_interval=None,
                max_queue=None,
            )
            opened = json.loads(await ws.recv())
            assert opened["type"] == "OPEN", opened
            return ws

        ids = [(f"h{i}", f"v{i}") for i in range(pairs)]
        jobs: list[Callable[[], Awaitable[Any]]] = []
        for host_id, viewer_id in ids:
            jobs.append(partial(connect, host_id))
            jobs.append(partial(connect, viewer_id))
        sockets = await bounded_gather(jobs, CONNECT_CONCURRENCY)
        self.sockets = sockets
        for i, (_host_id, viewer_id) in enumerate(ids):
            self.pairs.append((sockets[2 * i], viewer_id))
        for ws in sockets:
            self.tasks.append(asyncio.create_task(self._read(ws)))
            self.tasks.append(asyncio.create_task(self._heartbeat(ws)))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "CANDIDATE":
                    self.latencies.record(sent_at(message["payload"]["candidate"]["candidate"]))
                    self.delivered += 1

    async def _heartbeat(self, ws: ClientConnection) -> None:
        # Spread the clients' heartbeats like independent browsers would.
        await asyncio.sleep(PEERJS_HEARTBEAT * (hash(id(ws)) % 1000) / 1000)
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(100_000):
                await ws.send('{"type":"HEARTBEAT"}')
                await asyncio.sleep(PEERJS_HEARTBEAT)

    async def send(self, pair: int, n: int) -> None:
        ws, viewer_id = self.pairs[pair]
        line = candidate_line(n, time.perf_counter_ns())
        await ws.send(
            json.dumps(
                {
                    "type": "CANDIDATE",
                    "dst": viewer_id,
                    "payload": {
                        "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
                        "type": "media",
                        "connectionId": f"mc_{pair}",
                    },
                }
            )
        )


async def drive(
    target: Target, pairs: int, rate: float, duration: float, settle: float, repeat: int
) -> Sample:
    target.start()
    try:
        rss_before = target.rss_mb()
        await target.open_pairs(pairs)
        await asyncio.sleep(settle)  # let allocations settle before reading memory
        rss_idle = target.rss_mb()
        connections = 2 * pairs

        total = int(rate * duration)
        interval = 1.0 / rate
        cpu_start = target.cpu_seconds()
        started = time.perf_counter()
        for n in range(total):
            due = started + n * interval
            delay = due - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            await target.send(n % pairs, n)
        send_time = time.perf_counter() - started
        drain_deadline = time.monotonic() + 10
        while target.delivered < total and time.monotonic() < drain_deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # bounded: messages still in flight
        cpu = target.cpu_seconds() - cpu_start
        values = sorted(target.latencies.values_ns)
        warm = values  # every message counts; the rate is steady from the first one

        def pct(p: float) -> float:
            if not warm:
                return float("nan")
            return warm[min(len(warm) - 1, int(p * len(warm)))] / 1e6

        await target.close()
        return Sample(
            server=target.name,
            repeat=repeat,
            connections=connections,
            rss_before_mb=round(rss_before, 1),
            rss_idle_mb=round(rss_idle, 1),
            idle_kb_per_connection=round((rss_idle - rss_before) * 1024 / connections, 2),
            sent=total,
            delivered=target.delivered,
            rate_achieved=round(total / send_time, 1),
            cpu_us_per_message=round(cpu * 1e6 / max(1, target.delivered), 2),
            p50_ms=round(pct(0.50), 3),
            p99_ms=round(pct(0.99), 3),
            max_ms=round(warm[-1] / 1e6, 3) if warm else float("nan"),
        )
    finally:
        target.stop()


def summarize(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for server in sorted({s.server for s in samples}):
        mine = [s for s in samples if s.server == server]
        row: dict[str, Any] = {}
        for metric in ("cpu_us_per_message", "p50_ms", "p99_ms", "idle_kb_per_connection"):
            values = [getattr(s, metric) for s in mine]
            row[metric] = {
                "median": round(statistics.median(values), 3),
                "min": min(values),
                "max": max(values),
            }
        row["delivered"] = f"{sum(s.delivered for s in mine)}/{sum(s.sent for s in mine)}"
        out[server] = row
    if {"peerscreen", "peerjs"} <= out.keys():
        ratios = {}
        for metric in ("cpu_us_per_message", "p50_ms", "p99_ms", "idle_kb_per_connection"):
            ours = out["peerscreen"][metric]["median"]
            theirs = out["peerjs"][metric]["median"]
            ratios[metric] = round(ours / theirs, 2) if theirs else None
        out["ratio peerscreen/peerjs"] = ratios
    return out


async def main_async(args: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 8 * args.pairs + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    samples: list[Sample] = []
    flags = args.peerscreen_flags.split()
    makers: dict[str, Callable[[], Target]] = {
        "peerscreen": lambda: Peerscreen(flags),
        "peerjs": PeerJS,
    }
    for repeat in range(args.repeats):
        for name in args.servers:  # alternate, so drift in the machine hits both alike
            sample = await drive(
                makers[name](), args.pairs, args.rate, args.duration, args.settle, repeat
            )
            print(json.dumps(asdict(sample)), flush=True)
            samples.append(sample)

    summary = summarize(samples)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "settings": {
            "pairs": args.pairs,
            "rate": args.rate,
            "duration": args.duration,
            "repeats": args.repeats,
        },
        "summary": summary,
        "samples": [asdict(s) for s in samples],
    }
    print(json.dumps(summary, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written: {args.output}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000, help="host/viewer pairs")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="idle seconds before reading memory"
    )
    parser.add_argument(
        "--servers", nargs="+", default=["peerjs", "peerscreen"], choices=["peerjs", "peerscreen"]
    )
    parser.add_argument(
        "--peerscreen-flags",
        default="",
        help="extra 'peerscreen serve' flags, e.g. '--heartbeat-interval 30'",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "relay.json"
    )
    args = parser.parse_args()
    if args.pairs < 1 or args.rate <= 0 or not 0 < args.duration <= 600:
        parser.error("pairs >= 1, rate > 0, 0 < duration <= 600")
    CACHE.mkdir(parents=True, exist_ok=True)
    PeerJS.install()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
