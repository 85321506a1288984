"""The command line: every setting is a flag, documented with its environment variable."""

from __future__ import annotations

import pytest

from peerscreen.cli import build_parser, main, settings_from_args
from peerscreen.config import Settings


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
    assert "grace_period must be longer than heartbeat_interval" in capsys.readouterr().err
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
    cluster = Settings(redis_url=" redis+cluster://10.0.0.1:7000,10.0.0.2:7000 ")
    assert cluster.redis_url == "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
    assert Settings(redis_url="").redis_url is None
