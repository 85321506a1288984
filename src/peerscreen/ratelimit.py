"""Rate limits: per client address and per room, shared by all processes on one Redis.

Calls are counted over moving windows: with Redis by the ``limits`` library, shared by
every process; on the in-memory store (one process) by :class:`MovingWindows`, here, since
the library's in-memory storage rescans every key, a thread hand-off each, on every call.
This module names the limits, finds the client's address, and turns "over the limit"
into a 429 that says when to retry.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.types import Scope

from .config import Settings
from .errors import ErrorCode, PeerscreenError, StoreUnavailable


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


logger = logging.getLogger("peerscreen.ratelimit")


def storage_for(settings: Settings) -> Storage | None:
    """The shared storage of the limits, or None to count in this process."""
    if settings.redis_url:
        # The same driver as the room store (redis-py), failing as fast.
        # One quick retry, as the room store does: a pooled connection that died with a
        # Redis restart reconnects instead of failing its caller with a 503.
        retry: Any = Retry(NoBackoff(), 1)
        cluster = settings.redis_url.startswith("redis+cluster://")
        return (RedisClusterStorage if cluster else RedisStorage)(
            "async+" + settings.redis_url,
            implementation="redispy",
            socket_timeout=2.0,
            socket_connect_timeout=1.0,
            retry=retry,
        )
    return None


class RateLimits:
    """The configured limits, checked against one storage."""

    def __init__(self, settings: Settings) -> None:
        self._storage = storage_for(settings)
        self._limiter = (
            MovingWindowRateLimiter(self._storage) if self._storage is not None else None
        )
        # Signals are counted on every message, per participant: too many keys and calls
        # for the shared storage (the in-memory one rescans every key to expire them).
        # Each process keeps token buckets of its own instead; see ParticipantBuckets.
        self._signals = ParticipantBuckets(Limit.SIGNAL, parse(settings.rate_signal))
        self._items: dict[Limit, RateLimitItem] = {
            Limit.ROOMS: parse(settings.rate_rooms),
            Limit.API: parse(settings.rate_api),
            Limit.CHAT: parse(settings.rate_chat),
            Limit.PASSCODE: parse(settings.rate_passcode),
        }
        self._local = (
            {limit: MovingWindows(item) for limit, item in self._items.items()}
            if self._storage is None
            else None
        )

    async def open(self) -> None:
        """Connect before the first request: a Redis Cluster client that learns the
        cluster's layout under concurrent first calls can fail some of them."""
        if self._storage is None:
            return
        try:
            await self._storage.check()
        except Exception as exc:
            logger.warning("rate-limit storage not reachable yet: %s", exc)

    async def check(self, limit: Limit, *keys: str) -> None:
        """Raise :class:`RateLimited` if the limit is used up, without counting a call."""
        await self._count(limit, keys, count=False)

    async def hit(self, limit: Limit, *keys: str) -> None:
        """Count one call; raise :class:`RateLimited` if it is over the limit."""
        if limit is Limit.SIGNAL:
            self._signals.take(keys)
            return
        await self._count(limit, keys, count=True)

    async def _count(self, limit: Limit, keys: tuple[str, ...], count: bool) -> None:
        item = self._items[limit]
        limiter = self._limiter
        if limiter is None:
            assert self._local is not None
            retry_after = self._local[limit].count(keys, take=count)
            if retry_after is not None:
                raise RateLimited(limit, retry_after)
            return
        try:
            if count:
                allowed = await limiter.hit(item, limit.value, *keys)
            else:
                allowed = await limiter.test(item, limit.value, *keys)
            if allowed:
                return
            stats = await limiter.get_window_stats(item, limit.value, *keys)
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        except Exception as exc:  # the Redis driver's own connection errors
            if type(exc).__module__.startswith("redis"):
                raise StoreUnavailable(str(exc)) from exc
            raise
        raise RateLimited(limit, max(1, math.ceil(stats.reset_time - time.time())))


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


class MovingWindows:
    """Calls per key over a moving window, counted in this process, with no background
    work: each key keeps the times of its calls in the last window (at most ``amount``
    of them), oldest first, so a call costs O(1) and ``Retry-After`` is exact. Keys idle
    for a whole window are forgotten every few thousand calls.
    """

    PRUNE_EVERY = 4096

    def __init__(self, item: RateLimitItem, clock: Callable[[], float] = time.monotonic) -> None:
        self.amount = item.amount
        self.period = float(item.get_expiry())
        self.clock = clock
        self._calls_by_key: dict[tuple[str, ...], deque[float]] = {}
        self._calls = 0

    def count(self, key: tuple[str, ...], take: bool = True) -> int | None:
        """Count one call (or, with ``take=False``, only look); None when it is within
        the limit, else the seconds until one would be."""
        now = self.clock()
        times = self._calls_by_key.get(key)
        if times is not None:
            horizon = now - self.period
            while times and times[0] <= horizon:
                times.popleft()
            if len(times) >= self.amount:
                return max(1, math.ceil(times[0] + self.period - now))
        if take:
            if times is None:
                times = self._calls_by_key[key] = deque(maxlen=self.amount)
            times.append(now)
            self._calls += 1
            if self._calls % self.PRUNE_EVERY == 0:
                self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        horizon = now - self.period
        idle = [k for k, times in self._calls_by_key.items() if not times or times[-1] <= horizon]
        for key in idle:
            del self._calls_by_key[key]

    def __len__(self) -> int:
        return len(self._calls_by_key)


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
