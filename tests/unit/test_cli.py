"""The command line: every setting is a flag, documented with its environment variable."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from peerscreen.cli import build_parser, main, settings_from_args
from peerscreen.config import Settings

from ..support.processes import RedisServer


def test_help_lists_every_setting_with_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in text
    for env in ("REDIS_URL", "AUTH_SECRET", "PEERSCREEN_MAX_VIEWERS", "PEERSCREEN_GRACE_PERIOD"):
        assert env in text


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERSCREEN_MAX_VIEWERS", "4")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    args = build_parser().parse_args(["serve", "--max-viewers", "7"])
    settings = settings_from_args(args)
    assert settings.max_viewers == 7
    assert settings.redis_url == "redis://127.0.0.1:1/0"
    assert settings.store_kind == "redis"


def test_bad_settings_are_reported_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--grace-period", "5"]) == 2
    said = capsys.readouterr().err
    assert "--grace-period (5 s) must be longer than --heartbeat-interval (10 s)" in said
    assert main(["serve", "--heartbeat-timeout", "10"]) == 2
    said = capsys.readouterr().err
    assert "--heartbeat-timeout (10 s) must be longer than --heartbeat-interval (10 s)" in said
    with pytest.raises(SystemExit):
        main(["serve", "--port", "eighty"])
    assert main(["serve", "--port", "70000"]) == 2


def test_tls_needs_both_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--ssl-certfile", "cert.pem"]) == 2
    assert "ssl_certfile and ssl_keyfile go together" in capsys.readouterr().err
    settings = Settings(ssl_certfile="c.pem", ssl_keyfile="k.pem")
    assert settings.scheme == "https"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://localhost:6379", "not a Redis URL"),
        ("localhost:6379", "not a Redis URL"),
        ("redis+cluster://a:b", "each node of a Redis Cluster URL is host:port"),
        ("redis+cluster://", "each node of a Redis Cluster URL is host:port"),
        ("rediss://h:6380/0?ssl_cert_reqs=sometimes", "ssl_cert_reqs must be none, optional"),
        ("rediss://h:6380/0?ssl_ca_certs=/nonexistent/ca.pem", "cannot read the TLS files"),
    ],
)
def test_a_wrong_redis_url_is_refused_at_start(
    url: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--redis-url", url]) == 2
    assert says in capsys.readouterr().err


def test_redis_urls_that_work() -> None:
    assert Settings(redis_url="redis://:pw@10.0.0.5:6379/2").redis_url == (
        "redis://:pw@10.0.0.5:6379/2"
    )
    assert Settings(redis_url="rediss://r.example:6380/0?ssl_cert_reqs=none").redis_url
    cluster = Settings(redis_url=" redis+cluster://10.0.0.1:7000,10.0.0.2:7000 ")
    assert cluster.redis_url == "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
    assert Settings(redis_url="").redis_url is None


async def _fake_old_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough of a Redis 6.2 to answer INFO (no Redis 6 runs here)."""
    try:
        while line := await reader.readline():
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                await reader.readline()  # $length
                words.append((await reader.readline()).strip().upper())
            if words and words[0] == b"INFO":
                body = b"# Server\r\nredis_version:6.2.14\r\n"
                writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
    finally:
        writer.close()


async def test_a_redis_older_than_7_is_refused_with_the_reason(redis_server: RedisServer) -> None:
    from peerscreen.store.redis import unsupported_redis

    server = await asyncio.start_server(_fake_old_redis, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        problem = await unsupported_redis(f"redis://127.0.0.1:{port}/0")
        assert problem is not None and "6.2.14" in problem and "Redis 7.0 or later" in problem
        cluster = await unsupported_redis(f"redis+cluster://127.0.0.1:{port}")
        assert cluster is not None and "6.2.14" in cluster
    finally:
        server.close()
        await server.wait_closed()
    assert await unsupported_redis(redis_server.url) is None  # the real one here is 7
    assert await unsupported_redis("redis://127.0.0.1:1/0") is None  # down: start anyway


def test_the_client_commands_without_the_client_extra_say_how_to_get_it() -> None:
    """With the server's install only (no aiortc), watch and share name the extra."""
    hide_aiortc = (
        "import sys; sys.modules['aiortc'] = None; "  # an import of it now fails
        "from peerscreen.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    for command in (["watch", "k7dm-x9paq-3hrt"], ["share", "--test-pattern"]):
        done = subprocess.run(
            [sys.executable, "-c", hide_aiortc, *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert "pip install 'peerscreen[client]'" in done.stderr
        assert "aiortc" in done.stderr
