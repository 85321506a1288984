"""Where a Redis URL points, and a raw connection to it that is ready for commands.

The store's hot paths (the auto-pipelined commands and the pub/sub notifications) use
asyncio protocols of their own rather than redis-py's connections; this is what they
share: the address, TLS for ``rediss://``, and the commands a fresh connection runs
first (AUTH, SELECT).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

CONNECT_TIMEOUT = 1.0

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

P = TypeVar("P", bound=asyncio.BaseProtocol)


@dataclass(frozen=True)
class RedisAddress:
    """A Redis server as a URL names it."""

    host: str
    port: int
    path: str | None = None  # a unix socket
    tls: ssl.SSLContext | None = None
    setup: tuple[tuple[Any, ...], ...] = ()
    """Commands a fresh connection runs before any other."""

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """``redis://``, ``rediss://`` (TLS; ``ssl_cert_reqs``, ``ssl_ca_certs``,
        ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_check_hostname`` as query
        arguments, as redis-py reads them) or ``unix://``."""
        options = parse_url(url)  # type: ignore[no-untyped-call]
        setup: list[tuple[Any, ...]] = []
        if options.get("password") is not None:
            user = options.get("username")
            setup.append(
                ("AUTH", user, options["password"]) if user else ("AUTH", options["password"])
            )
        if int(options.get("db", 0) or 0):
            setup.append(("SELECT", int(options["db"])))
        tls = _tls_context(options) if url.startswith("rediss://") else None
        return cls(
            host=str(options.get("host", "localhost")),
            port=int(options.get("port", 6379)),
            path=options.get("path"),
            tls=tls,
            setup=tuple(setup),
        )

    def __str__(self) -> str:
        return self.path or f"{self.host}:{self.port}"


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
        if options.get("ssl_certfile"):
            context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    except (OSError, ssl.SSLError) as exc:
        # Named at start-up rather than at the first connection.
        raise ValueError(f"cannot read the TLS files named in the Redis URL: {exc}") from exc
    reqs = options.get("ssl_cert_reqs", "required")
    if isinstance(reqs, str):
        if reqs.lower() not in _CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be none, optional or required, not {reqs!r}")
        reqs = _CERT_REQS[reqs.lower()]
    check_hostname = options.get("ssl_check_hostname")
    if reqs == ssl.CERT_NONE or check_hostname is False:
        context.check_hostname = False
    context.verify_mode = reqs
    return context


async def open_connection(address: RedisAddress, factory: Callable[[], P]) -> P:
    """Connect ``factory()``'s protocol to ``address`` within :data:`CONNECT_TIMEOUT`;
    failures raise redis-py's ConnectionError or TimeoutError, as its own clients do."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if address.path:
                _, protocol = await loop.create_unix_connection(factory, address.path)
            else:
                _, protocol = await loop.create_connection(
                    factory, address.host, address.port, ssl=address.tls
                )
    except TimeoutError as exc:
        raise RedisTimeoutError(f"connecting to Redis at {address}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise RedisConnectionError(f"connecting to Redis at {address}: {exc}") from exc
    return protocol


__all__ = ["CONNECT_TIMEOUT", "RedisAddress", "open_connection"]
