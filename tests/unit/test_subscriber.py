"""The raw pub/sub connection that carries notifications between processes, and the
connection settings it shares with the auto-pipelined one (credentials, TLS), against a
real redis-server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from peerscreen.errors import StoreUnavailable
from peerscreen.store.autopipeline import AutoPipeline
from peerscreen.store.base import MailBudget, RoomRecord, Stored
from peerscreen.store.connect import RedisAddress
from peerscreen.store.redis import RedisStore
from peerscreen.store.subscriber import Push, Subscriber

from ..support.certs import self_signed_certificate
from ..support.processes import RedisServer, free_port, start_redis, stop_process, wait_until

pytestmark = pytest.mark.redis

ROOMY = MailBudget(100, 1 << 20, 100, 1 << 20, 1 << 22)


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_pushes_arrive_whole_and_in_order(redis_server: RedisServer) -> None:
    pushes: list[Push] = []
    subscriber = await Subscriber.open(RedisAddress.from_url(redis_server.url), pushes.append)
    publisher = AutoPipeline(redis_server.url)
    try:
        subscriber.send("SSUBSCRIBE", "ch{a}")
        subscriber.send("SSUBSCRIBE", "ch{b}")
        await until(lambda: len(pushes) == 2, "the subscriptions' confirmations")
        assert pushes == [["ssubscribe", "ch{a}", 1], ["ssubscribe", "ch{b}", 2]]
        # Small and large payloads, text beyond ASCII, one large enough to arrive in
        # several reads: each is handed over whole, once, in the order published.
        payloads = [f"{n} ünï" for n in range(300)] + ["x" * 300_000, "last"]
        replies = await asyncio.gather(
            *(
                publisher.execute("SPUBLISH", "ch{a}" if n % 2 else "ch{b}", payload)
                for n, payload in enumerate(payloads)
            )
        )
        assert replies == [1] * len(payloads)
        await until(lambda: len(pushes) == 2 + len(payloads), "every push")
        assert pushes[2:] == [
            ["smessage", "ch{a}" if n % 2 else "ch{b}", payload]
            for n, payload in enumerate(payloads)
        ]
        subscriber.send("SUNSUBSCRIBE", "ch{a}")
        await until(lambda: pushes[-1][0] == "sunsubscribe", "the unsubscription")
        assert await publisher.execute("SPUBLISH", "ch{a}", "unheard") == 0
        assert not subscriber.closed.done()
    finally:
        subscriber.close()
        await publisher.aclose()
    assert await asyncio.wait_for(subscriber.closed, 1) is None


async def test_a_push_its_reader_cannot_take_does_not_end_the_connection(
    redis_server: RedisServer,
) -> None:
    taken: list[str] = []

    def reader(push: Push) -> None:
        if push[0] == "smessage" and push[2] == "bad":
            raise ValueError("cannot take this one")
        taken.append(push[0])

    subscriber = await Subscriber.open(RedisAddress.from_url(redis_server.url), reader)
    publisher = AutoPipeline(redis_server.url)
    try:
        subscriber.send("SSUBSCRIBE", "ch{c}")
        await until(lambda: taken == ["ssubscribe"], "the confirmation")
        await publisher.execute("SPUBLISH", "ch{c}", "bad")
        await publisher.execute("SPUBLISH", "ch{c}", "good")
        await until(lambda: taken == ["ssubscribe", "smessage"], "the next push")
        assert not subscriber.closed.done()
    finally:
        subscriber.close()
        await publisher.aclose()


async def test_the_end_of_the_connection_is_told(private_redis: RedisServer) -> None:
    pushes: list[Push] = []
    address = RedisAddress.from_url(private_redis.url)
    # An error reply (a cluster node answers MOVED for a channel it does not serve).
    subscriber = await Subscriber.open(address, pushes.append)
    subscriber.send("SSUBSCRIBE")  # no channel: Redis answers with an error
    ended = await asyncio.wait_for(subscriber.closed, 5)
    assert isinstance(ended, ResponseError)
    # Redis closing it (a restart, a failover, a client kill).
    subscriber = await Subscriber.open(address, pushes.append)
    subscriber.send("SSUBSCRIBE", "ch{d}")
    await until(lambda: bool(pushes), "the confirmation")
    private_redis.stop()
    ended = await asyncio.wait_for(subscriber.closed, 5)
    assert ended is None or isinstance(ended, OSError)


async def test_credentials_from_the_url_are_used(private_redis: RedisServer) -> None:
    admin = AutoPipeline(private_redis.url)
    await admin.execute("ACL", "SETUSER", "peer", "on", ">s3cret", "~*", "&*", "+@all")
    await admin.execute("CONFIG", "SET", "requirepass", "topsecret")
    await admin.aclose()
    port = private_redis.port
    pushes: list[Push] = []
    for url in (
        f"redis://:topsecret@127.0.0.1:{port}/0",
        f"redis://peer:s3cret@127.0.0.1:{port}/2",
    ):
        pushes.clear()
        subscriber = await Subscriber.open(RedisAddress.from_url(url), pushes.append)
        subscriber.send("SSUBSCRIBE", "ch{e}")
        await until(lambda: bool(pushes), f"a subscription through {url}")
        subscriber.close()
        pipe = AutoPipeline(url)
        assert await pipe.execute("SET", "k", url) == "OK"
        await pipe.aclose()
    with pytest.raises(RedisConnectionError, match="refused the setup"):
        await Subscriber.open(
            RedisAddress.from_url(f"redis://:wrong@127.0.0.1:{port}/0"), pushes.append
        )
    # SELECT 2 was run: the second URL's key is in database 2, not 0.
    checker = AutoPipeline(f"redis://:topsecret@127.0.0.1:{port}/2")
    assert await checker.execute("GET", "k") == f"redis://peer:s3cret@127.0.0.1:{port}/2"
    await checker.aclose()


class TlsRedis:
    """A redis-server that speaks TLS only, with a self-signed certificate."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.folder = Path(tempfile.mkdtemp(prefix="peerscreen-redis-tls-"))
        self.cert, key = self_signed_certificate(self.folder)
        self.port = free_port()
        self.process = start_redis(
            binary,
            0,  # no plain port
            str(self.folder),
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(self.cert),
            "--tls-auth-clients",
            "no",
        )
        wait_until(self._answers, 10, f"redis-server with TLS on port {self.port}")

    def _answers(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.cert))
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def url(self, **query: str) -> str:
        arguments = "&".join(f"{k}={v}" for k, v in query.items())
        return f"rediss://127.0.0.1:{self.port}/0" + (f"?{arguments}" if arguments else "")


@pytest.fixture
def tls_redis() -> Iterator[TlsRedis]:
    server = TlsRedis()
    yield server
    stop_process(server.process)
    shutil.rmtree(server.folder, ignore_errors=True)


async def test_the_store_runs_over_tls(tls_redis: TlsRedis) -> None:
    url = tls_redis.url(ssl_ca_certs=str(tls_redis.cert))
    writer, reader = RedisStore(url), RedisStore(url)
    await writer.open()
    await reader.open()
    handed: list[Stored | None] = []

    class Recorder:
        def wake(self, message: Stored | None = None) -> None:
            handed.append(message)

    try:
        await writer.ping()
        record = RoomRecord("abcd-efghj-kmnp", "digest", time.time(), 3)
        await writer.create_room(record, 60)
        recorder: Any = Recorder()
        reader.notifier.subscribe(record.room_id, "host", recorder)
        await until(lambda: bool(handed), "the subscription over TLS")
        # Stored through one process's pipelined TLS connection, pushed to the other's
        # TLS subscription.
        await writer.append(record.room_id, "host", {"type": "offer", "from": "v1"}, 60, ROOMY)
        await until(lambda: len(handed) == 2, "the push over TLS")
        message = handed[1]
        assert message is not None and (message.seq, message.type) == (1, "offer")
        reader.notifier.unsubscribe(record.room_id, "host", recorder)
    finally:
        await writer.close()
        await reader.close()


async def test_an_untrusted_tls_certificate_is_refused_clearly(tls_redis: TlsRedis) -> None:
    store = RedisStore(tls_redis.url())  # the system's CAs: the self-signed one is not there
    await store.open()
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()
    with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await Subscriber.open(RedisAddress.from_url(tls_redis.url()), lambda push: None)
    # Told to skip verification, it connects (the URL says so; nothing else does).
    pushes: list[Push] = []
    subscriber = await Subscriber.open(
        RedisAddress.from_url(tls_redis.url(ssl_cert_reqs="none")), pushes.append
    )
    subscriber.send("SSUBSCRIBE", "ch{f}")
    await until(lambda: bool(pushes), "a subscription without verification")
    subscriber.close()


def test_a_bad_tls_setting_in_the_url_is_named() -> None:
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        RedisAddress.from_url("rediss://127.0.0.1:1/0?ssl_cert_reqs=sometimes")
    address = RedisAddress.from_url("unix:///run/redis.sock?db=3")
    assert (address.path, address.setup, str(address)) == (
        "/run/redis.sock",
        (("SELECT", 3),),
        "/run/redis.sock",
    )
