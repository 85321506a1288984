"""Rate limits: per client address and per room, shared by all processes on one Redis.

Calls are counted over moving windows by the room store (:meth:`Store.count_calls`): in
this process on the in-memory store, in Redis for every process otherwise, so a limit
holds whichever process a client reaches. Signals, counted on every message, use a token
bucket per participant in each process instead (:class:`ParticipantBuckets`). This
module names the limits, finds the client's address, and turns "over the limit" into a
429 that says when to retry.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterable
from enum import StrEnum

from limits import RateLimitItem, parse
from starlette.types import Scope

from .config import Settings
from .errors import ErrorCode, PeerscreenError
from .store import Store


class Limit(StrEnum):
    ROOMS = "rooms"
    API = "api"
    CHAT = "chat"
    PASSCODE = "passcode"
    SIGNAL = "signal"


_WHAT = {
    Limit.ROOMS: "Too many rooms created from your address",
    Limit.API: "Too many requests from your address",
    Limit.CHAT: "You are sending chat messages too fast",
    Limit.PASSCODE: "Too many wrong passcodes",
    Limit.SIGNAL: "You are sending signaling messages too fast",
}


class RateLimited(PeerscreenError):
    """Over a limit: 429, with the seconds until the next call may succeed."""

    def __init__(self, limit: Limit, retry_after: int) -> None:
        super().__init__(
            ErrorCode.RATE_LIMITED, f"{_WHAT[limit]}. Try again in {_say_seconds(retry_after)}."
        )
        self.retry_after = retry_after


def _say_seconds(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


class RateLimits:
    """The configured limits, counted by the room store."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._store = store
        # Signals are counted on every message, per participant: too many keys and calls
        # for the shared store. Each process keeps token buckets of its own instead.
        self._signals = ParticipantBuckets(Limit.SIGNAL, parse(settings.rate_signal))
        self._items: dict[Limit, RateLimitItem] = {
            Limit.ROOMS: parse(settings.rate_rooms),
            Limit.API: parse(settings.rate_api),
            Limit.CHAT: parse(settings.rate_chat),
            Limit.PASSCODE: parse(settings.rate_passcode),
        }

    async def check(self, limit: Limit, *keys: str) -> None:
        """Raise :class:`RateLimited` if the limit is used up, without counting a call."""
        await self._count(limit, keys, count=False)

    async def hit(self, limit: Limit, *keys: str) -> None:
        """Count one call; raise :class:`RateLimited` if it is over the limit. Signals
        are counted with :meth:`take_signal`."""
        await self._count(limit, keys, count=True)

    def take_signal(self, room_id: str, participant_id: str) -> None:
        """Count one signal of a participant (:class:`RateLimited` over the limit), in
        this process's buckets: no coroutine, as it never waits."""
        self._signals.take((room_id, participant_id))

    async def _count(self, limit: Limit, keys: tuple[str, ...], count: bool) -> None:
        item = self._items[limit]
        retry_after = await self._store.count_calls(
            "/".join((limit.value, *keys)), item.amount, float(item.get_expiry()), count
        )
        if retry_after is not None:
            raise RateLimited(limit, retry_after)


class ParticipantBuckets:
    """A token bucket per key, in this process: ``amount`` calls at once, refilled at
    ``amount`` per period. O(1) a call and no background work, for limits counted on
    every message.

    With several processes each counts the calls it serves: a participant whose calls
    reach two processes gets up to twice the allowance. What it can make the server
    hold stays bounded by the mailbox budgets, which the store keeps for all processes.
    """

    PRUNE_EVERY = 4096

    def __init__(
        self, limit: Limit, item: RateLimitItem, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.capacity = float(item.amount)
        self.per_second = item.amount / item.get_expiry()
        self._buckets: dict[tuple[str, ...], list[float]] = {}  # key -> [tokens, at]
        self._calls = 0

    def take(self, key: tuple[str, ...]) -> None:
        """Take one token; :class:`RateLimited` when the bucket is empty."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self.capacity, now]
        else:
            bucket[0] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.per_second)
            bucket[1] = now
        if bucket[0] < 1 - 1e-9:  # a refill computed from clock readings, not exact
            raise RateLimited(self.limit, max(1, math.ceil((1 - bucket[0]) / self.per_second)))
        bucket[0] -= 1
        self._calls += 1
        if self._calls % self.PRUNE_EVERY == 0:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget buckets idle long enough to be full again: they hold nothing."""
        refill = self.capacity / self.per_second
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= refill]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> list[Network]:
    """Comma-separated addresses or networks (``10.0.0.1, 192.168.0.0/16``)."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    ]


def client_address(peer: str | None, forwarded_for: str | None, proxies: Iterable[Network]) -> str:
    """The client's address: the connection's, or, when the connection comes from a
    trusted proxy, the nearest address in X-Forwarded-For that is not a trusted proxy."""
    trusted = list(proxies)
    if peer is None:
        return "unknown"
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def client_ip_of(scope: Scope, proxies: list[Network]) -> str:
    """The client address of an ASGI request or socket, trusting only ``proxies``."""
    peer = scope.get("client")
    forwarded = None
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    return client_address(peer[0] if peer else None, forwarded, proxies)


def is_trusted(address: str, trusted: list[Network]) -> bool:
    """Is ``address`` in one of the ``trusted`` networks (False for a non-address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
