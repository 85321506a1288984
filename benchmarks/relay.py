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
import gc
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
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.processes import RedisClusterServers, RedisServer  # noqa: E402


class PlainHttp:
    """A kept-alive HTTP/1.1 connection that posts empty bodies and reads JSON answers.

    The setup timing is about the server: httpx spends about a millisecond of client CPU
    per request on this machine, as much as the server's whole answer, and the PeerJS
    side has no HTTP calls to pay it on. The same bytes a browser would send, parsed by
    hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> PlainHttp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str) -> Any:
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n" % path.encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = json.loads(await self.reader.readexactly(length))
        assert status < 300, (status, body)
        return body

    def close(self) -> None:
        self.writer.close()


CACHE = Path(os.environ.get("PEERSCREEN_BENCH_CACHE", Path.home() / ".cache" / "peerscreen-bench"))
PEERJS_VERSION = "1.0.2"
ACK_EVERY = 20  # as js/signaling.js
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


OFFER_EVERY = 10
"""One message in this many is an offer of about 3 KB; the rest are ICE candidates."""
_SDP_BODY = "".join(
    f"a=candidate:{n} 1 udp 2122260223 192.0.2.{n % 250} {40000 + n} typ host\r\n"
    for n in range(45)
)


def offer_sdp(sent_ns: int) -> str:
    # The send time rides in the first line, as in the candidates.
    return f"v=0 ts {sent_ns}\r\n" + _SDP_BODY


def offer_sent_at(sdp: str) -> int:
    return int(sdp.split("\r\n", 1)[0].rsplit(" ", 1)[1])


CLIENT_CORE = 1
SERVER_CORE = 0
REDIS_CORE = CLIENT_CORE
"""Where redis-server runs (--redis-core): by default beside the load client, so the
server process has its core to itself, as it would with Redis on its own machine."""


def pin(pid: int, core: int) -> None:
    """Keep a process on one core, where the machine has more than one."""
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {core})


def busy_cpu_seconds() -> float:
    """CPU time every process of the machine used so far (all cores)."""
    times = psutil.cpu_times()
    return float(times.user + times.system + getattr(times, "nice", 0.0))


@dataclass
class Sample:
    server: str
    repeat: int
    rate: float
    connections: int
    rss_before_mb: float
    rss_idle_mb: float
    idle_kb_per_connection: float
    sent: int
    delivered: int
    refused: int
    refused_codes: dict[str, int]
    rate_achieved: float
    cpu_us_per_message: float
    redis_cpu_us_per_message: float
    other_cpu_percent: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    setup_p50_ms: float = float("nan")  # a pair made ready, one at a time (see setup())
    setup_p95_ms: float = float("nan")
    gc_pauses_over_10ms: int = -1  # -1: the server does not report its pauses
    gc_longest_pause_ms: float = -1.0  # upper bound of the highest histogram bucket hit
    p99_by_second_ms: list[float] = field(default_factory=list)


@dataclass
class Latencies:
    values_ns: list[int] = field(default_factory=list)
    sent_ns: list[int] = field(default_factory=list)

    def record(self, sent_ns: int) -> None:
        self.values_ns.append(time.perf_counter_ns() - sent_ns)
        self.sent_ns.append(sent_ns)

    def p99_by_second(self, start_ns: int) -> list[float]:
        """p99 (ms) of the messages sent in each second of the phase: where the tail is."""
        seconds: dict[int, list[int]] = {}
        for sent, value in zip(self.sent_ns, self.values_ns, strict=True):
            seconds.setdefault((sent - start_ns) // 1_000_000_000, []).append(value)
        return [round(percentile(sorted(seconds[second]), 0.99), 1) for second in sorted(seconds)]


async def bounded_gather(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


class Target(ABC):
    """A signaling server under test (one or more processes), and how the load client
    talks to it."""

    name: str

    def __init__(self) -> None:
        self.ports = [free_port()]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.latencies = Latencies()
        self.delivered = 0
        self.refused = 0
        self.refused_codes: dict[str, int] = {}
        self.sockets: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def port(self) -> int:
        return self.ports[0]

    @abstractmethod
    def command(self, port: int) -> list[str]: ...

    def start(self) -> None:
        for port in self.ports:
            log = (CACHE / f"{self.name}-{port}.log").open("wb")
            process = subprocess.Popen(self.command(port), stdout=log, stderr=subprocess.STDOUT)
            self.processes.append(process)
            pin(process.pid, SERVER_CORE)
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {log.name}")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.2),
                ):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            times = psutil.Process(process.pid).cpu_times()
            total += float(times.user + times.system)
        return total

    def backing_cpu_seconds(self) -> float:
        """CPU of the services the server relies on (Redis), if any."""
        return 0.0

    async def gc_pause_buckets(self) -> dict[float, float] | None:
        """Cumulative counts of the server's collector pauses by bucket upper bound (all
        generations, all processes), if it reports them."""
        return None

    def rss_mb(self) -> float:
        return float(sum(psutil.Process(p.pid).memory_info().rss for p in self.processes)) / 2**20

    @abstractmethod
    async def open_pairs(self, pairs: int) -> None:
        """Connect ``pairs`` hosts and viewers and start their readers."""

    @abstractmethod
    async def setup(self, n: int) -> float:
        """Make one pair ready to exchange messages, one step after the other; the
        seconds it took. Its sockets are closed afterwards."""

    @abstractmethod
    async def send(self, pair: int, n: int, offer: bool) -> None:
        """Send message ``n`` from host ``pair`` to its viewer: an offer, or a
        candidate."""

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await bounded_gather([s.close for s in self.sockets], CONNECT_CONCURRENCY)


class Peerscreen(Target):
    """peerscreen on a store: memory, redis (a redis-server of its own) or cluster (a
    three-node Redis Cluster of its own); with ``processes=2`` hosts use one process and
    viewers the other."""

    def __init__(self, extra_flags: list[str], store: str = "memory", processes: int = 1) -> None:
        super().__init__()
        self.extra_flags = extra_flags
        self.store = store
        self.ports += [free_port() for _ in range(processes - 1)]
        self.name = "peerscreen" if store == "memory" else f"peerscreen-{store}"
        if processes > 1:
            self.name += f"-{processes}proc"
        self.rooms: list[tuple[ClientConnection, str]] = []
        self.redis: RedisServer | RedisClusterServers | None = None
        self._plain: dict[int, PlainHttp] = {}

    def command(self, port: int) -> list[str]:
        assert self.store == "memory" or self.redis is not None
        return [
            sys.executable,
            "-m",
            "peerscreen",
            "serve",
            "--port",
            str(port),
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
            *(["--redis-url", self.redis.url] if self.redis is not None else []),
            *self.extra_flags,
        ]

    def start(self) -> None:
        if self.store == "redis":
            self.redis = RedisServer()
            self.redis.start()
        elif self.store == "cluster":
            self.redis = RedisClusterServers(3).start()
        for pid in self._redis_pids():
            pin(pid, REDIS_CORE)
        super().start()

    def stop(self) -> None:
        super().stop()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def _redis_pids(self) -> list[int]:
        if isinstance(self.redis, RedisServer) and self.redis.process is not None:
            return [self.redis.process.pid]
        if isinstance(self.redis, RedisClusterServers):
            return [p.pid for p in self.redis.processes]
        return []

    async def gc_pause_buckets(self) -> dict[float, float] | None:
        buckets: dict[float, float] = {}
        async with httpx.AsyncClient(timeout=10) as http:
            for port in self.ports:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                for line in text.splitlines():
                    if line.startswith("peerscreen_gc_pause_seconds_bucket{"):
                        bound = line.split('le="', 1)[1].split('"', 1)[0]
                        key = float("inf") if bound == "+Inf" else float(bound)
                        buckets[key] = buckets.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return buckets

    def backing_cpu_seconds(self) -> float:
        total = 0.0
        for pid in self._redis_pids():
            times = psutil.Process(pid).cpu_times()
            total += float(times.user + times.system)
        return total

    async def open_pairs(self, pairs: int) -> None:
        hosts_base = f"http://127.0.0.1:{self.ports[0]}"
        viewers_port = self.ports[-1]
        async with (
            httpx.AsyncClient(base_url=hosts_base, timeout=30) as http,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{viewers_port}", timeout=30) as vhttp,
        ):

            async def make_pair() -> tuple[dict[str, Any], dict[str, Any]]:
                room = (await http.post("/api/rooms")).json()
                assert "roomId" in room, room
                viewer = (await vhttp.post(f"/api/rooms/{room['roomId']}/viewers")).json()
                return room, viewer

            made = await bounded_gather([make_pair] * pairs, CONNECT_CONCURRENCY)

        jobs: list[Callable[[], Awaitable[Any]]] = []
        for room, viewer in made:
            jobs.append(partial(self._connect, self.ports[0], room["roomId"], room["hostToken"]))
            jobs.append(partial(self._connect, viewers_port, room["roomId"], viewer["viewerToken"]))
        sockets = await bounded_gather(jobs, CONNECT_CONCURRENCY)
        self.sockets = sockets
        for i, (_room, viewer) in enumerate(made):
            host_ws, viewer_ws = sockets[2 * i], sockets[2 * i + 1]
            self.rooms.append((host_ws, viewer["viewerId"]))
            self.tasks.append(asyncio.create_task(self._read(host_ws)))
            self.tasks.append(asyncio.create_task(self._read(viewer_ws)))

    async def setup(self, n: int) -> float:
        """Room created, viewer joined, both sockets open and authenticated."""
        hosts, viewers = self.ports[0], self.ports[-1]
        for port in (hosts, viewers):
            if port not in self._plain:
                self._plain[port] = await PlainHttp.open(port)
        started = time.perf_counter()
        room = await self._plain[hosts].post("/api/rooms")
        viewer = await self._plain[viewers].post(f"/api/rooms/{room['roomId']}/viewers")
        sockets = [
            await self._connect(hosts, room["roomId"], room["hostToken"]),
            await self._connect(viewers, room["roomId"], viewer["viewerToken"]),
        ]
        elapsed = time.perf_counter() - started
        for ws in sockets:
            await ws.close()
        return elapsed

    async def _connect(self, port: int, room_id: str, token: str) -> ClientConnection:
        """A participant's socket, open and authenticated."""
        # The hello in the handshake, as the page sends it (js/signaling.js).
        offered = [Subprotocol(p) for p in ("peerscreen", f"auth.{token}", "resume.0")]
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/api/rooms/{room_id}/ws",
            ping_interval=None,
            max_queue=None,
            subprotocols=offered,
        )
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        return ws

    async def close(self) -> None:
        await super().close()
        for plain in self._plain.values():
            plain.close()
        self._plain.clear()

    async def _read(self, ws: ClientConnection) -> None:
        # Acks as the page sends them (js/signaling.js): every ACK_EVERY messages, and
        # with the pong to each server ping if anything waits to be acked.
        unacked = 0
        last_seq = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "candidate":
                    self.latencies.record(sent_at(message["candidate"]["candidate"]))
                    self.delivered += 1
                elif kind == "offer":
                    self.latencies.record(offer_sent_at(message["desc"]["sdp"]))
                    self.delivered += 1
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                    if unacked:
                        await ws.send(json.dumps({"type": "ack", "seq": last_seq}))
                        unacked = 0
                elif kind == "error":
                    self.refused += 1
                    code = str(message.get("code"))
                    self.refused_codes[code] = self.refused_codes.get(code, 0) + 1
                if "seq" in message:
                    unacked += 1
                    last_seq = message["seq"]
                    if unacked >= ACK_EVERY:
                        await ws.send(json.dumps({"type": "ack", "seq": last_seq}))
                        unacked = 0

    async def send(self, pair: int, n: int, offer: bool) -> None:
        ws, viewer_id = self.rooms[pair]
        now = time.perf_counter_ns()
        if offer:
            body: dict[str, Any] = {
                "type": "offer",
                "to": viewer_id,
                "desc": {"type": "offer", "sdp": offer_sdp(now)},
            }
        else:
            line = candidate_line(n, now)
            body = {
                "type": "candidate",
                "to": viewer_id,
                "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
            }
        await ws.send(json.dumps(body))


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

    def command(self, port: int) -> list[str]:
        return [
            "node",
            str(self.install()),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--concurrent_limit",
            "100000",
        ]

    async def _connect(self, peer_id: str) -> ClientConnection:
        """A peer's socket, open (PeerJS answers OPEN)."""
        ws = await websockets.connect(
            f"ws://127.0.0.1:{self.port}/peerjs?key=peerjs&id={peer_id}&token=t{peer_id}",
            ping_interval=None,
            max_queue=None,
        )
        opened = json.loads(await ws.recv())
        assert opened["type"] == "OPEN", opened
        return ws

    async def open_pairs(self, pairs: int) -> None:
        ids = [(f"h{i}", f"v{i}") for i in range(pairs)]
        jobs: list[Callable[[], Awaitable[Any]]] = []
        for host_id, viewer_id in ids:
            jobs.append(partial(self._connect, host_id))
            jobs.append(partial(self._connect, viewer_id))
        sockets = await bounded_gather(jobs, CONNECT_CONCURRENCY)
        self.sockets = sockets
        for i, (_host_id, viewer_id) in enumerate(ids):
            self.pairs.append((sockets[2 * i], viewer_id))
        for ws in sockets:
            self.tasks.append(asyncio.create_task(self._read(ws)))
            self.tasks.append(asyncio.create_task(self._heartbeat(ws)))

    async def setup(self, n: int) -> float:
        """Two peers' sockets open (PeerJS has no rooms: that is all it does)."""
        started = time.perf_counter()
        sockets = [await self._connect(f"sh{n}"), await self._connect(f"sv{n}")]
        elapsed = time.perf_counter() - started
        for ws in sockets:
            await ws.close()
        return elapsed

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "CANDIDATE":
                    self.latencies.record(sent_at(message["payload"]["candidate"]["candidate"]))
                    self.delivered += 1
                elif message["type"] == "OFFER":
                    self.latencies.record(offer_sent_at(message["payload"]["sdp"]["sdp"]))
                    self.delivered += 1
                elif message["type"] in ("ERROR", "EXPIRE"):
                    self.refused += 1

    async def _heartbeat(self, ws: ClientConnection) -> None:
        # Spread the clients' heartbeats like independent browsers would.
        await asyncio.sleep(PEERJS_HEARTBEAT * (hash(id(ws)) % 1000) / 1000)
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(100_000):
                await ws.send('{"type":"HEARTBEAT"}')
                await asyncio.sleep(PEERJS_HEARTBEAT)

    async def send(self, pair: int, n: int, offer: bool) -> None:
        ws, viewer_id = self.pairs[pair]
        now = time.perf_counter_ns()
        if offer:
            body: dict[str, Any] = {
                "type": "OFFER",
                "dst": viewer_id,
                "payload": {
                    "sdp": {"type": "offer", "sdp": offer_sdp(now)},
                    "type": "media",
                    "connectionId": f"mc_{pair}",
                },
            }
        else:
            line = candidate_line(n, now)
            body = {
                "type": "CANDIDATE",
                "dst": viewer_id,
                "payload": {
                    "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
                    "type": "media",
                    "connectionId": f"mc_{pair}",
                },
            }
        await ws.send(json.dumps(body))


def percentile(values: list[int], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p * len(values)))] / 1e6


async def send_phase(
    target: Target, pairs: int, rate: float, duration: float, repeat: int, start_n: int
) -> Sample:
    """Send open-loop at ``rate`` for ``duration`` seconds; the figures of that phase."""
    target.latencies = Latencies()
    target.delivered = target.refused = 0
    target.refused_codes = {}
    gc_before = await target.gc_pause_buckets()
    total = int(rate * duration)
    interval = 1.0 / rate
    cpu_start = target.cpu_seconds()
    backing_start = target.backing_cpu_seconds()
    me = psutil.Process()
    mine_start = sum(me.cpu_times()[:2])
    busy_start = busy_cpu_seconds()
    started = time.perf_counter()
    started_ns = time.perf_counter_ns()
    for i in range(total):
        due = started + i * interval
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        # Every pair gets one offer in OFFER_EVERY of its messages.
        await target.send(i % pairs, start_n + i, (i // pairs) % OFFER_EVERY == 0)
    send_time = time.perf_counter() - started
    drain_deadline = time.monotonic() + 10
    while target.delivered + target.refused < total and time.monotonic() < drain_deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # bounded: messages still in flight
    elapsed = time.perf_counter() - started
    cpu = target.cpu_seconds() - cpu_start
    backing = target.backing_cpu_seconds() - backing_start
    mine = sum(me.cpu_times()[:2]) - mine_start
    others = busy_cpu_seconds() - busy_start - cpu - backing - mine
    values = sorted(target.latencies.values_ns)
    delivered = max(1, target.delivered)
    gc_after = await target.gc_pause_buckets()
    over_10ms, longest = -1, -1.0
    if gc_before is not None and gc_after is not None:
        grew = {b: gc_after[b] - gc_before.get(b, 0.0) for b in gc_after}
        over_10ms = int(grew.get(float("inf"), 0.0) - grew.get(0.01, 0.0))
        bounds = sorted(grew)
        # The first bucket that holds every new pause bounds the longest one.
        total_new = grew.get(float("inf"), 0.0)
        longest = next((b for b in bounds if grew[b] >= total_new), float("inf")) * 1000
    return Sample(
        server=target.name,
        repeat=repeat,
        rate=rate,
        connections=0,
        rss_before_mb=0.0,
        rss_idle_mb=0.0,
        idle_kb_per_connection=0.0,
        sent=total,
        delivered=target.delivered,
        refused=target.refused,
        refused_codes=dict(target.refused_codes),
        rate_achieved=round(total / send_time, 1),
        cpu_us_per_message=round(cpu * 1e6 / delivered, 2),
        redis_cpu_us_per_message=round(backing * 1e6 / delivered, 2),
        other_cpu_percent=round(max(0.0, others) * 100 / elapsed, 1),
        p50_ms=round(percentile(values, 0.50), 3),
        p99_ms=round(percentile(values, 0.99), 3),
        max_ms=round(values[-1] / 1e6, 3) if values else float("nan"),
        p99_by_second_ms=target.latencies.p99_by_second(started_ns),
        gc_pauses_over_10ms=over_10ms,
        gc_longest_pause_ms=longest,
    )


async def drive(
    target: Target,
    pairs: int,
    rates: list[float],
    duration: float,
    settle: float,
    repeat: int,
    setups: int,
) -> list[Sample]:
    target.start()
    try:
        for n in range(3):  # warm the code paths and the client
            await target.setup(-1 - n)
        times = sorted([await target.setup(n) for n in range(setups)])
        setup_p50 = times[len(times) // 2] * 1000 if times else float("nan")
        setup_p95 = times[int(len(times) * 0.95)] * 1000 if times else float("nan")
        rss_before = target.rss_mb()
        await target.open_pairs(pairs)
        # The load client's own collector must not stall it: its thousands of sockets
        # would make each full collection a pause in the measured latencies.
        gc.collect()
        gc.freeze()
        await asyncio.sleep(settle)  # let allocations settle before reading memory
        rss_idle = target.rss_mb()
        connections = 2 * pairs
        samples = []
        sent = 0
        for rate in rates:
            sample = await send_phase(target, pairs, rate, duration, repeat, sent)
            sent += sample.sent
            sample.connections = connections
            sample.setup_p50_ms = round(setup_p50, 2)
            sample.setup_p95_ms = round(setup_p95, 2)
            sample.rss_before_mb = round(rss_before, 1)
            sample.rss_idle_mb = round(rss_idle, 1)
            sample.idle_kb_per_connection = round((rss_idle - rss_before) * 1024 / connections, 2)
            samples.append(sample)
            print(json.dumps(asdict(sample)), flush=True)
        await target.close()
        return samples
    finally:
        target.stop()


METRICS = (
    "cpu_us_per_message",
    "redis_cpu_us_per_message",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "idle_kb_per_connection",
    "other_cpu_percent",
    "gc_pauses_over_10ms",
    "gc_longest_pause_ms",
    "setup_p50_ms",
    "setup_p95_ms",
)


def summarize(samples: list[Sample], baseline: str = "peerjs") -> dict[str, Any]:
    """Medians (and min-max) per server and rate; ratios against ``baseline`` at the
    same rate, from the same run."""
    out: dict[str, Any] = {}
    for server in dict.fromkeys(s.server for s in samples):
        for rate in dict.fromkeys(s.rate for s in samples if s.server == server):
            mine = [s for s in samples if s.server == server and s.rate == rate]
            row: dict[str, Any] = {}
            for metric in METRICS:
                values = [getattr(s, metric) for s in mine]
                row[metric] = {
                    "median": round(statistics.median(values), 3),
                    "min": min(values),
                    "max": max(values),
                }
            row["delivered"] = f"{sum(s.delivered for s in mine)}/{sum(s.sent for s in mine)}"
            row["refused"] = sum(s.refused for s in mine)
            row["rate_achieved"] = round(statistics.median(s.rate_achieved for s in mine), 1)
            out[f"{server} @ {rate:g}/s"] = row
    for key, row in list(out.items()):
        server, _, rate_text = key.partition(" @ ")
        base = out.get(f"{baseline} @ {rate_text}")
        if server == baseline or base is None:
            continue
        row["ratio to " + baseline] = {
            metric: round(row[metric]["median"] / base[metric]["median"], 2)
            if base[metric]["median"]
            else None
            for metric in (
                "cpu_us_per_message",
                "p50_ms",
                "p99_ms",
                "idle_kb_per_connection",
                "setup_p50_ms",
            )
        }
    return out


SERVERS = ("peerjs", "peerscreen", "redis", "redis-2proc", "cluster")
YARDSTICKS = ("python-floor",)
"""Run only when named: not products, but measures of what the runtime alone costs."""


class PythonFloor(PeerJS):
    """floor_relay.py: PeerJS's protocol and work per message, in Python on
    peerscreen's WebSocket layer (see that file)."""

    name = "python-floor"

    def command(self, port: int) -> list[str]:
        script = Path(__file__).with_name("floor_relay.py")
        return [sys.executable, str(script), "--port", str(port)]


def make_target(name: str, flags: list[str]) -> Target:
    if name == "peerjs":
        return PeerJS()
    if name == "python-floor":
        return PythonFloor()
    if name == "peerscreen":
        return Peerscreen(flags)
    store, _, procs = name.partition("-")
    return Peerscreen(flags, store=store, processes=2 if procs == "2proc" else 1)


async def main_async(args: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 8 * args.pairs + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    pin(os.getpid(), CLIENT_CORE)

    samples: list[Sample] = []
    flags = args.peerscreen_flags.split()
    for repeat in range(args.repeats):
        for name in args.servers:  # alternate, so drift in the machine hits all alike
            samples += await drive(
                make_target(name, flags),
                args.pairs,
                args.rates,
                args.duration,
                args.settle,
                repeat,
                args.setups,
            )

    summary = summarize(samples)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "settings": {
            "pairs": args.pairs,
            "rates": args.rates,
            "duration": args.duration,
            "repeats": args.repeats,
            "servers": args.servers,
            "setups": args.setups,
            "redis_core": args.redis_core,
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


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000, help="host/viewer pairs")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[1000.0, 5000.0, 10000.0],
        help="messages per second; several: one send phase each, on the same connections",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--setups", type=int, default=100, help="pairs set up one at a time, timed each"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="idle seconds before reading memory"
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        default=list(SERVERS),
        choices=SERVERS + YARDSTICKS,
        help="peerscreen: memory store; redis: one process on a redis-server; redis-2proc: "
        "hosts on one process, viewers on another; cluster: a three-node Redis Cluster",
    )
    parser.add_argument(
        "--redis-core",
        choices=["client", "server"],
        default="client",
        help="the core redis-server runs on: the load client's (default: the server "
        "process has its core to itself) or the server's (server and Redis share one core)",
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
    global REDIS_CORE
    REDIS_CORE = CLIENT_CORE if args.redis_core == "client" else SERVER_CORE
    if args.pairs < 1 or min(args.rates) <= 0 or not 0 < args.duration <= 600:
        parser.error("pairs >= 1, rates > 0, 0 < duration <= 600")
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
