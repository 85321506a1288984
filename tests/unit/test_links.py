"""Room links: from --public-url, a validated Host header, or an address other machines
can reach when the host's page runs on this machine (no server, no traffic)."""

from __future__ import annotations

from typing import Any

import pytest

from peerscreen import links
from peerscreen.config import Settings
from peerscreen.errors import PeerscreenError
from peerscreen.ratelimit import parse_networks


def scope(host: str, client: str = "203.0.113.5", **headers: str) -> dict[str, Any]:
    raw = [(b"host", host.encode())] + [
        (name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()
    ]
    return {"type": "http", "headers": raw, "client": (client, 5000), "server": ("x", 80)}


def test_loopback_host_names() -> None:
    for host in ("localhost", "localhost:8080", "127.0.0.1:8080", "127.1.2.3", "[::1]:8080"):
        assert links.is_loopback_host(host), host
    for host in ("share.example.org", "192.0.2.7:8080", "[2001:db8::1]:443", "localhost.example"):
        assert not links.is_loopback_host(host), host


def test_a_page_on_localhost_gets_a_link_other_machines_can_open() -> None:
    listening_everywhere = Settings(host="0.0.0.0", port=8080)
    address = links.lan_address()
    url = links.room_url(scope("127.0.0.1:8080"), listening_everywhere, [], "abcd-efghj-kmnp")
    if address is None:  # a machine with no network at all: the local link is all there is
        assert url == "http://127.0.0.1:8080/r/abcd-efghj-kmnp"
    else:
        assert url == f"http://{address}:8080/r/abcd-efghj-kmnp"
    # Listening on one named address: that one.
    named = Settings(host="192.0.2.7", port=9000)
    assert links.room_url(scope("localhost:9000"), named, [], "r") == "http://192.0.2.7:9000/r/r"
    # Listening on loopback only: nothing else to offer (the page says so).
    local = Settings()
    assert links.room_url(scope("localhost:8080"), local, [], "r") == "http://localhost:8080/r/r"
    # A page opened by a routable name keeps it.
    assert links.room_url(scope("pc.lan:8080"), listening_everywhere, [], "r") == (
        "http://pc.lan:8080/r/r"
    )


def test_public_url_and_trusted_proxies_win() -> None:
    public = Settings(public_url="https://share.example.org/")
    assert links.room_url(scope("127.0.0.1"), public, [], "r") == "https://share.example.org/r/r"
    proxies = parse_networks("10.0.0.0/8")
    behind = scope(
        "inner:8080", client="10.1.1.1", x_forwarded_proto="https", x_forwarded_host="s.example"
    )
    assert links.room_url(behind, Settings(), proxies, "r") == "https://s.example/r/r"
    untrusted = scope("inner:8080", x_forwarded_proto="https", x_forwarded_host="s.example")
    assert links.room_url(untrusted, Settings(), proxies, "r") == "http://inner:8080/r/r"
    with pytest.raises(PeerscreenError):
        links.room_url(scope("bad host"), Settings(), [], "r")
