"""Fixtures: real redis-server and peerscreen processes on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .support.processes import RedisClusterServers, RedisServer, ServerProcess, TurnServer

ARTIFACTS = Path(os.environ.get("PEERSCREEN_TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = ARTIFACTS.resolve()
    (path / "logs").mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests that need it clean call ``flush()``."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """One three-node Redis Cluster for the session (a fresh one takes ~2 s to accept
    writes); tests that need it clean call ``flush()``."""
    cluster = RedisClusterServers(3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop, restart or empty it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_server(artifacts: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start peerscreen processes with given settings; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(**options: str | float | int) -> ServerProcess:
        server = ServerProcess(artifacts / "logs", **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def memory_server(artifacts: Path) -> Iterator[ServerProcess]:
    """A shared server on the in-memory store with default settings."""
    server = ServerProcess(artifacts / "logs").start()
    yield server
    server.stop()
    assert "Traceback" not in server.log(), f"the server logged a crash: {server.log_path}"


@pytest.fixture
async def http(memory_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=memory_server.base_url, timeout=40) as client:
        yield client


@pytest.fixture(scope="session")
def redis_backed_server(artifacts: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    """A shared server on the Redis store."""
    server = ServerProcess(artifacts / "logs", redis_url=redis_server.url).start()
    yield server
    server.stop()
    assert "Traceback" not in server.log(), f"the server logged a crash: {server.log_path}"


@pytest.fixture(scope="session")
def cluster_backed_server(
    artifacts: Path, redis_cluster: RedisClusterServers
) -> Iterator[ServerProcess]:
    """A shared server on the Redis Cluster store."""
    server = ServerProcess(artifacts / "logs", redis_url=redis_cluster.url).start()
    yield server
    server.stop()
    assert "Traceback" not in server.log(), f"the server logged a crash: {server.log_path}"


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def any_server(request: pytest.FixtureRequest) -> ServerProcess:
    """The shared memory server, then the shared Redis-backed one, then the one on a
    Redis Cluster."""
    name = {
        "memory": "memory_server",
        "redis": "redis_backed_server",
        "redis-cluster": "cluster_backed_server",
    }[request.param]
    server: ServerProcess = request.getfixturevalue(name)
    return server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in this
    thread for as long as the browser lives, and asyncio tests cannot start beside it."""
    items.sort(key=lambda item: "tests/browser/" in item.nodeid.replace("\\", "/"))


@pytest.fixture(scope="session")
def turn_server(artifacts: Path) -> Iterator[TurnServer]:
    server = TurnServer(artifacts / "logs").start()
    yield server
    server.stop()
