"""ICE server configuration: TURN REST credentials and static ones, without I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import SecretStr

from peerscreen.config import Settings
from peerscreen.ice import ice_servers, relay_configured


def test_shared_secret_gives_expiring_hmac_credentials() -> None:
    settings = Settings(turn_urls="turn:t.example:3478", turn_secret=SecretStr("s"), turn_ttl=120)
    data = ice_servers(settings, "room", "host", now=1000.0)
    (turn,) = data["iceServers"]
    assert turn["username"] == "1120:room:host"
    expected = base64.b64encode(hmac.new(b"s", b"1120:room:host", hashlib.sha1).digest())
    assert turn["credential"] == expected.decode()
    assert data["expiresAt"] == 1120 and data["relayAvailable"] is True


def test_static_credentials_and_relay_only() -> None:
    settings = Settings(
        stun_urls="stun:s.example:3478",
        turn_urls="turn:t.example:3478, turns:t.example:5349",
        turn_username="peer",
        turn_password=SecretStr("screen"),
        relay_only=True,
    )
    data = ice_servers(settings, "room", "v1")
    assert data["iceServers"] == [
        {"urls": ["stun:s.example:3478"]},
        {
            "urls": ["turn:t.example:3478", "turns:t.example:5349"],
            "username": "peer",
            "credential": "screen",
        },
    ]
    assert data["iceTransportPolicy"] == "relay"


def test_turn_urls_without_credentials_are_no_relay() -> None:
    assert not relay_configured(Settings(turn_urls="turn:t.example:3478"))
    assert ice_servers(Settings(turn_urls="turn:t.example:3478"), "r", "p")["iceServers"] == []
