"""Links to rooms: the address viewers open, from a configured public URL or from a
validated Host header, never from whatever text a client put there."""

from __future__ import annotations

import contextlib
import functools
import re
import socket

from starlette.types import Scope

from .config import Settings
from .errors import invalid
from .ratelimit import Network, is_trusted

# A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(
    r"^(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::[0-9]{1,5})?$"
)
MAX_HOST_CHARS = 260


def valid_host(text: str) -> bool:
    """Is ``text`` a host name or address, with an optional port, fit for a link."""
    return len(text) <= MAX_HOST_CHARS and _HOST.match(text) is not None


def is_loopback_host(host: str) -> bool:
    """Does this Host header (host[:port]) name this machine only?"""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name == "localhost" or name.startswith("127.") or name == "[::1]"


@functools.cache
def lan_address() -> str | None:
    """This machine's address on its default route, or None when it has none.

    Connecting a UDP socket sends nothing: it only asks the kernel which source address
    it would use.
    """
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, only looked up
        address: str = probe.getsockname()[0]
        if address and not address.startswith(("127.", "0.")):
            return address
    return None


def elsewhere_base(settings: Settings) -> str | None:
    """An address other machines can use, when the server listens beyond loopback."""
    if settings.host in ("0.0.0.0", "::", ""):
        address = lan_address()
        return f"{settings.scheme}://{address}:{settings.port}/" if address else None
    if not is_loopback_host(settings.host):
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        return f"{settings.scheme}://{host}:{settings.port}/"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def base_url(scope: Scope, settings: Settings, proxies: list[Network]) -> str:
    """The server's address as viewers should see it, ending in ``/``.

    ``--public-url`` wins. Otherwise the Host header (X-Forwarded-Host and -Proto when
    the request comes through a trusted proxy), refused with 400 unless it is a host name.
    """
    if settings.public_url:
        return settings.public_url + "/"
    scheme = settings.scheme
    host = _header(scope, b"host")
    peer = scope.get("client")
    if peer is not None and is_trusted(peer[0], proxies):
        forwarded_host = _header(scope, b"x-forwarded-host")
        if forwarded_host:
            host = forwarded_host.split(",")[0].strip()
        forwarded_proto = (_header(scope, b"x-forwarded-proto") or "").split(",")[0].strip()
        if forwarded_proto in ("http", "https"):
            scheme = forwarded_proto
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else f"{settings.host}:{settings.port}"
    if not valid_host(host):
        raise invalid(
            "The Host header is not a host name, so no link can be made; "
            "the operator can set --public-url."
        )
    if is_loopback_host(host):
        # A host page opened on localhost would hand out links that work on this
        # machine only: use an address other machines can reach, if there is one.
        other = elsewhere_base(settings)
        if other is not None:
            return other
    return f"{scheme}://{host}/"


def room_url(scope: Scope, settings: Settings, proxies: list[Network], room_id: str) -> str:
    """The link viewers open to watch the room."""
    return f"{base_url(scope, settings, proxies)}r/{room_id}"
