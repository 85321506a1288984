"""The glass benchmark's lossy UDP hop (benchmarks/impairment.py) drops and delays what
it says, so an impaired figure is measured on the path it names."""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def load_impairment() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "impairment.py"
    spec = importlib.util.spec_from_file_location("bench_impairment", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_impairment"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


impairment = load_impairment()


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.round_trips: list[float] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        number = int(data)
        self.round_trips.append(time.monotonic() - self.sent[number])


async def echo_through_proxy(
    setting: str, datagrams: int, clients: int = 1
) -> tuple[list[Client], Any]:
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    proxy = impairment.ImpairedUdpProxy(echo.get_extra_info("sockname")).start()
    proxy.impairment = impairment.Impairment.parse(setting)
    made = [
        await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", proxy.port))
        for _ in range(clients)
    ]
    try:
        for number in range(datagrams):
            for transport, client in made:
                client.sent[number] = time.monotonic()
                transport.sendto(b"%d" % number)
            if number % 50 == 49:
                await asyncio.sleep(0.005)  # paced, as media is: no socket buffer overflows
        # Everything not dropped comes back within the delay plus jitter; wait for quiet.
        deadline = time.monotonic() + 5
        last = -1
        while time.monotonic() < deadline:
            total = sum(len(client.round_trips) for _, client in made)
            if total == last and total:
                break
            last = total
            await asyncio.sleep(0.3)
    finally:
        for transport, _ in made:
            transport.close()
        proxy.stop()
        echo.close()
    return [client for _, client in made], proxy


async def test_loss_and_delay_are_those_asked_for() -> None:
    # An echo crosses the hop twice: one direction of a path between two relayed peers.
    [client], proxy = await echo_through_proxy("loss=10,rtt=100,jitter=10", 2000)
    loss = 1 - len(client.round_trips) / 2000
    assert 0.07 < loss < 0.13, loss
    assert proxy.dropped == pytest.approx(2000 - len(client.round_trips), abs=2)
    # Each crossing waits rtt/4 +- jitter/2: an echo 50 ms +- 10 ms.
    assert min(client.round_trips) > 0.039 and max(client.round_trips) < 0.2
    assert 0.045 < statistics.median(client.round_trips) < 0.07


async def test_a_clean_setting_forwards_everything_at_once() -> None:
    [client], proxy = await echo_through_proxy("", 500)
    assert len(client.round_trips) == 500 and proxy.dropped == 0
    assert statistics.median(client.round_trips) < 0.02


async def test_clients_past_the_bound_are_not_served() -> None:
    clients, proxy = await echo_through_proxy("", 3, clients=impairment.MAX_CLIENTS + 2)
    answered = [client for client in clients if client.round_trips]
    assert len(answered) == impairment.MAX_CLIENTS
    assert len(proxy.upstreams) == impairment.MAX_CLIENTS and proxy.dropped == 2 * 3


def test_impairment_settings_are_checked() -> None:
    parse = impairment.Impairment.parse
    assert str(parse("loss=1,rtt=50")) == "1% loss, 50 ms RTT, +-0 ms"
    assert str(parse("")) == "none"
    for bad in ("loss=x", "delay=5", "loss=80", "rtt=-1"):
        with pytest.raises(ValueError):
            parse(bad)
