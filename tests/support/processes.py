"""Real processes for tests: redis-server and peerscreen, each on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last_error})")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """End a process this test session started, by its handle: politely, then firmly."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _redis_command(port: int, *words: str) -> bytes:
    """Send one command in RESP to a local redis-server; the raw reply."""
    payload = f"*{len(words)}\r\n".encode()
    for word in words:
        payload += f"${len(word.encode())}\r\n{word}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


def start_redis(binary: str, port: int, folder: str, *extra: str) -> subprocess.Popen[bytes]:
    """A redis-server on loopback with no persistence, its files in ``folder``."""
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class RedisServer:
    """A private redis-server: no persistence, loopback only, stopped by PID."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/test installs it)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="peerscreen-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = start_redis(self.binary, self.port, self.dir, "--protected-mode", "yes")
        wait_until(self._answers, 10, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        return _redis_command(self.port, "PING").startswith(b"+PONG")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def flush(self) -> None:
        _redis_command(self.port, "FLUSHALL")


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisClusterServers:
    """A Redis Cluster of ``size`` primaries on loopback, no replicas, no persistence.

    A fresh cluster accepts writes only about 2 s after it is created (a new primary
    waits that long by design): start one per test session.
    """

    def __init__(self, size: int = 3) -> None:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server is not installed (scripts/test installs it)")
        self.binary, self.cli = binary, cli
        self.ports: list[int] = []
        while len(self.ports) < size:
            port = cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        self.dir = tempfile.mkdtemp(prefix="peerscreen-redis-cluster-")
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            self.processes.append(
                start_redis(
                    self.binary,
                    port,
                    self.dir,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"{self.dir}/nodes-{port}.conf",
                    "--cluster-node-timeout",
                    "2000",
                )
            )
        for port in self.ports:
            wait_until(
                lambda p=port: _redis_command(p, "PING").startswith(b"+PONG"),  # type: ignore[misc]
                10,
                f"redis-server on port {port}",
            )
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        for port in self.ports:
            wait_until(
                lambda p=port: b"cluster_state:ok" in _redis_command(p, "CLUSTER", "INFO"),  # type: ignore[misc]
                15,
                f"cluster_state:ok on port {port}",
            )
        return self

    def flush(self) -> None:
        for port in self.ports:
            _redis_command(port, "FLUSHALL")

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


GENEROUS_LIMITS = {
    "rate_rooms": "100000/hour",
    "rate_api": "1000000/hour",
    "rate_chat": "100000/minute",
}


class ServerProcess:
    """``python -m peerscreen serve`` on a free port, with settings from ``options``."""

    def __init__(self, log_dir: Path, **options: str | float | int) -> None:
        self.port = free_port()
        # Tests make many rooms from one address: the production limits would get in the
        # way of everything but the tests about limits, which set their own.
        self.options = {**GENEROUS_LIMITS, **options}
        self.log_path = log_dir / f"peerscreen-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if "ssl_certfile" in self.options else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        args = [sys.executable, "-m", "peerscreen", "serve", "--port", str(self.port)]
        for name, value in self.options.items():
            flag = f"--{name.replace('_', '-')}"
            if value is True:
                args.append(flag)
            elif value is False:
                args.append(f"--no-{name.replace('_', '-')}")
            else:
                args += [flag, str(value)]
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AUTH_SECRET")}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        wait_until(self._ready, 20, f"peerscreen on port {self.port} (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
        # Readiness only: the test itself checks the certificate.
        response = httpx.get(f"{self.base_url}/openapi.json", timeout=1, verify=False)  # noqa: S501
        return response.status_code == 200

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class TurnServer:
    """A private coturn on loopback with a shared secret (TURN REST API credentials)."""

    def __init__(
        self, log_dir: Path, secret: str = "turn-test-secret", relay_ip: str = "127.0.0.1"
    ) -> None:
        binary = shutil.which("turnserver")
        if binary is None:
            raise RuntimeError("coturn is not installed (scripts/test installs it)")
        self.binary = binary
        self.secret = secret
        # Janus answers only peers on its own interface (127.0.0.2 in scripts/netns):
        # relaying to it, coturn must send from there.
        self.relay_ip = relay_ip
        self.port = free_port()
        relay_start = 40000 + (self.port % 200) * 100
        self.relay_ports = (relay_start, relay_start + 99)
        self.log_path = log_dir / f"turnserver-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def start(self) -> TurnServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "-n",
                "--listening-ip=127.0.0.1",
                f"--relay-ip={self.relay_ip}",
                f"--listening-port={self.port}",
                "--use-auth-secret",
                f"--static-auth-secret={self.secret}",
                "--realm=peerscreen.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--fingerprint",
                f"--min-port={self.relay_ports[0]}",
                f"--max-port={self.relay_ports[1]}",
                "--log-file=stdout",
                "--simple-log",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._listening, 10, f"turnserver on port {self.port}")
        return self

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"turnserver exited: {self.log_path.read_text()[-2000:]}")
        # coturn listens on TCP too: a connect means it is up.
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
