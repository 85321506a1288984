"""Network impairment for benchmarks: a lossy, late UDP hop in front of a TURN server,
and a bandwidth cap on loopback.

The kernel here has ``tbf`` but no ``netem``, so loss and delay are made in user space:
``ImpairedUdpProxy`` listens on a loopback port and forwards each client's datagrams to
the TURN server from a socket of that client's own (coturn tells allocations apart by
address), dropping and delaying them both ways. With both peers relayed through it, a
media packet crosses the proxy twice (sender -> TURN, TURN -> receiver), so one pass gets
half the loss and a quarter of the round trip: ``Impairment.per_pass`` does that sum.

``shape_loopback`` puts a token bucket on ``lo``; it needs a network namespace of its own
(``scripts/netns``), where it shapes nothing but the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_CLIENTS = 64  # allocations through the proxy at once
MAX_PENDING = 20_000  # delayed datagrams held at once; more are dropped
IDLE_SECONDS = 60.0  # a client silent this long loses its upstream socket
MAX_WAITING = 64  # datagrams a new client may send before its upstream socket is ready


@dataclass(frozen=True)
class Impairment:
    """End to end, between two relayed peers: loss in percent each way, round trip and
    jitter (uniform, +-) in milliseconds."""

    loss_percent: float = 0.0
    rtt_ms: float = 0.0
    jitter_ms: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Impairment:
        """``loss=1,rtt=50,jitter=5`` (any subset; empty: none)."""
        fields = {"loss": 0.0, "rtt": 0.0, "jitter": 0.0}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name not in fields or not re.fullmatch(r"\d+(\.\d+)?", value):
                raise ValueError(f"not an impairment: {part!r} (use loss=, rtt=, jitter=)")
            fields[name] = float(value)
        if fields["loss"] > 50 or fields["rtt"] > 2000 or fields["jitter"] > 500:
            raise ValueError("impairment out of range: loss <= 50 %, rtt <= 2000, jitter <= 500")
        return cls(fields["loss"], fields["rtt"], fields["jitter"])

    def per_pass(self) -> tuple[float, float, float]:
        """(drop probability, delay s, jitter s) for one crossing of the proxy."""
        keep_each_way = 1 - self.loss_percent / 100
        drop = 1 - keep_each_way**0.5  # two passes each way
        return drop, self.rtt_ms / 4000, self.jitter_ms / 2000

    def __str__(self) -> str:
        if not (self.loss_percent or self.rtt_ms or self.jitter_ms):
            return "none"
        return f"{self.loss_percent:g}% loss, {self.rtt_ms:g} ms RTT, +-{self.jitter_ms:g} ms"


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: ImpairedUdpProxy, client: tuple[str, int]) -> None:
        self.proxy = proxy
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last_seen = time.monotonic()
        self.waiting: list[bytes] = []  # from the client while the socket is being made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last_seen = time.monotonic()
        downstream = self.proxy.downstream
        if downstream is not None:
            self.proxy.forward(data, lambda: downstream.sendto(data, self.client))


class _Downstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: ImpairedUdpProxy) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.proxy.from_client(data, addr)


class ImpairedUdpProxy:
    """A UDP hop on 127.0.0.1 to ``target``; change ``impairment`` between runs."""

    def __init__(self, target: tuple[str, int], seed: int = 1) -> None:
        self.target = target
        self.impairment = Impairment()
        self.random = random.Random(seed)
        self.port = 0
        self.downstream: asyncio.DatagramTransport | None = None
        self.upstreams: dict[tuple[str, int], _Upstream] = {}
        self.pending = 0
        self.forwarded = 0
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._idle_task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ImpairedUdpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Downstream(self), local_addr=("127.0.0.1", 0)
        )
        self.downstream = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._idle_task = self._loop.create_task(self._forget_idle())

    def from_client(self, data: bytes, client: tuple[str, int]) -> None:
        upstream = self.upstreams.get(client)
        if upstream is None:
            if len(self.upstreams) >= MAX_CLIENTS:
                self.dropped += 1
                return
            upstream = _Upstream(self, client)
            self.upstreams[client] = upstream
            self._loop.create_task(self._connect(upstream))
        upstream.last_seen = time.monotonic()
        transport = upstream.transport
        if transport is not None:
            self.forward(data, lambda: transport.sendto(data))
        elif len(upstream.waiting) < MAX_WAITING:
            upstream.waiting.append(data)
        else:
            self.dropped += 1

    async def _connect(self, upstream: _Upstream) -> None:
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: upstream, remote_addr=self.target
        )
        for data in upstream.waiting:
            self.forward(data, functools.partial(transport.sendto, data))
        upstream.waiting.clear()

    def forward(self, data: bytes, send: Callable[[], None]) -> None:
        """Drop, or send after the pass's delay (jitter may reorder, as on a real path)."""
        drop, delay, jitter = self.impairment.per_pass()
        if (drop and self.random.random() < drop) or self.pending >= MAX_PENDING:
            self.dropped += 1
            return
        self.forwarded += 1
        wait = max(0.0, delay + (self.random.uniform(-jitter, jitter) if jitter else 0.0))
        if wait == 0:
            send()
            return
        self.pending += 1

        def later() -> None:
            self.pending -= 1
            send()

        self._loop.call_later(wait, later)

    async def _forget_idle(self) -> None:
        while True:
            await asyncio.sleep(5)
            now = time.monotonic()
            for client, upstream in list(self.upstreams.items()):
                if now - upstream.last_seen > IDLE_SECONDS:
                    if upstream.transport is not None:
                        upstream.transport.close()
                    del self.upstreams[client]

    def stop(self) -> None:
        def close() -> None:
            if self._idle_task is not None:
                self._idle_task.cancel()
            for upstream in self.upstreams.values():
                if upstream.transport is not None:
                    upstream.transport.close()
            if self.downstream is not None:
                self.downstream.close()
            self._loop.call_soon(self._loop.stop)  # after the cancellation has run

        self._loop.call_soon_threadsafe(close)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


@contextlib.contextmanager
def shape_loopback(kbps: int | None) -> Iterator[None]:
    """Cap everything on ``lo`` to ``kbps`` (token bucket, 50 ms of queue) meanwhile.
    Only inside a network namespace of the benchmark's own (scripts/netns)."""
    if not kbps:
        yield
        return
    # scripts/netns makes jlo; the machine has none. (/proc/self/net follows the namespace,
    # /sys/class/net does not.)
    if "jlo:" not in Path("/proc/self/net/dev").read_text():
        raise RuntimeError("shaping loopback needs a namespace of its own: run in scripts/netns")
    burst = max(4000, kbps * 1000 // 8 // 50)  # bytes: 20 ms at the rate, at least 4 KB
    # A token bucket never passes a packet larger than itself, and loopback's are 64 KB.
    subprocess.run(["ip", "link", "set", "lo", "mtu", "1500"], check=True)
    subprocess.run(
        ["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", f"{kbps}kbit",
         "burst", str(burst), "latency", "50ms"],
        check=True,
    )  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
        subprocess.run(["ip", "link", "set", "lo", "mtu", "65536"], check=False)
