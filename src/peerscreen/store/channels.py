"""Mailbox notifications between processes: one sharded pub/sub channel per mailbox.

A process subscribes to the channel of each mailbox it has a reader for (a socket or a
waiting long-poll), and a script that stores a message publishes it on that mailbox's
channel. So a notification reaches only the processes that hold the recipient, never
every process; and since a mailbox's channel lives in its room's hash slot, the same
scheme runs on a Redis Cluster, where each channel is served by the node that owns the
room (``SSUBSCRIBE``/``SPUBLISH``, Redis 7).

Subscriptions are sent without waiting for their confirmation; the confirmation, when it
arrives, wakes the mailbox's readers once more, so a message stored between the first read
and the subscription is still delivered. A channel stays subscribed for a while after its
last reader leaves, since a long-polling client comes back within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from ..tasks import stop_task
from .connect import RedisAddress
from .subscriber import Push, Subscriber

logger = logging.getLogger("peerscreen.store.redis")

LINGER = 15.0
"""Seconds a channel stays subscribed after its last local reader left."""

SWEEP_EVERY = 5.0


@dataclass(eq=False)
class _Node:
    """One pub/sub connection to one Redis node, and the channels it carries."""

    name: str
    address: RedisAddress
    channels: set[str] = field(default_factory=set)
    queued: list[tuple[bool, str]] = field(default_factory=list)  # (subscribe?, channel)
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    healthy: bool = True


class MailboxChannels:
    """The sharded channels this process listens to, kept on the nodes that own them.

    ``node_of(channel)`` names the node that serves a channel and ``address_of(name)``
    says where it is (a single node for a plain Redis). ``on_message(channel, data)``
    gets each published payload; ``on_subscribed(channel)`` runs when a subscription is
    confirmed (again after a reconnect), and ``on_lost()`` when a node's connection
    failed, since notifications may have been missed meanwhile. ``refresh()``, if given,
    re-reads which node serves what after a failure (a cluster's failover or resharding).
    ``name_reader(channel, reading)``, if given, is awaited before each subscription
    (``True``; again for every channel after a reconnect) and after each unsubscription
    (``False``): publishers use it to publish only what another process reads.
    """

    def __init__(
        self,
        node_of: Callable[[str], str],
        address_of: Callable[[str], RedisAddress],
        on_message: Callable[[str, str], None],
        on_subscribed: Callable[[str], None],
        on_lost: Callable[[], None],
        refresh: Callable[[], Awaitable[None]] | None = None,
        name_reader: Callable[[str, bool], Awaitable[None]] | None = None,
    ) -> None:
        self._node_of = node_of
        self._name_reader = name_reader
        self._address_of = address_of
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._on_lost = on_lost
        self._refresh = refresh
        self._nodes: dict[str, _Node] = {}
        self._channel_node: dict[str, _Node] = {}
        self._idle: dict[str, float] = {}  # channel -> when its last reader left
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="redis-channel-sweep")

    async def stop(self) -> None:
        self._closed = True
        await stop_task(self._sweeper)
        for node in list(self._nodes.values()):
            # The kick and the closed flag end the loop even if the cancellation lands
            # where it is caught (a name_reader call that retries, say).
            node.kick.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_task(node.task), 2.0)
        self._nodes.clear()
        self._channel_node.clear()

    @property
    def healthy(self) -> bool:
        """False while a node's connection is down (notifications from it are lost)."""
        return all(node.healthy for node in self._nodes.values())

    def subscribed_count(self) -> int:
        return len(self._channel_node)

    def want(self, channel: str) -> None:
        """A local reader listens to this channel's mailbox."""
        if self._idle.pop(channel, None) is not None or channel in self._channel_node:
            return
        self._place(channel)

    def _place(self, channel: str) -> None:
        name = self._node_of(channel)
        node = self._nodes.get(name)
        if node is None:
            node = self._nodes[name] = _Node(name, self._address_of(name))
            node.task = asyncio.get_running_loop().create_task(
                self._run_node(node), name=f"redis-channels {name}"
            )
        self._channel_node[channel] = node
        node.channels.add(channel)
        node.queued.append((True, channel))
        node.kick.set()

    def unwant(self, channel: str) -> None:
        """The last local reader of this channel's mailbox left."""
        if channel in self._channel_node:
            self._idle[channel] = time.monotonic()

    def sweep(self, now: float | None = None) -> int:
        """Unsubscribe channels idle past :data:`LINGER`; how many."""
        now = time.monotonic() if now is None else now
        done = [c for c, since in self._idle.items() if now - since >= LINGER]
        for channel in done:
            del self._idle[channel]
            node = self._channel_node.pop(channel, None)
            if node is not None:
                node.channels.discard(channel)
                node.queued.append((False, channel))
                node.kick.set()
        return len(done)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.sweep()

    async def _run_node(self, node: _Node) -> None:
        delay = 0.1
        while not self._closed:
            subscriber: Subscriber | None = None
            try:
                # A fresh connection carries every channel of the node again; queued
                # changes before this point are covered by that.
                node.queued.clear()
                channels = list(node.channels)
                await self._name(channels, True)  # a Redis that restarted forgot them
                subscriber = await Subscriber.open(node.address, self._pushed)
                # One command per channel: on a cluster node, one SSUBSCRIBE may not span
                # several hash slots.
                for channel in channels:
                    subscriber.send("SSUBSCRIBE", channel)
                if not node.healthy:
                    logger.info("redis notifications: %s reconnected", node.name or "redis")
                node.healthy = True
                delay = 0.1
                while not self._closed:
                    while node.queued:
                        subscribe, channel = node.queued.pop(0)
                        if subscribe:
                            await self._name([channel], True)
                            subscriber.send("SSUBSCRIBE", channel)
                        else:
                            subscriber.send("SUNSUBSCRIBE", channel)
                            if channel not in node.channels:  # not wanted again meanwhile
                                await self._name([channel], False)
                    node.kick.clear()
                    kicked: asyncio.Future[Any] = asyncio.ensure_future(node.kick.wait())
                    done, _ = await asyncio.wait(
                        {kicked, subscriber.closed}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if subscriber.closed in done:
                        kicked.cancel()
                        ended = subscriber.closed.result()
                        raise ConnectionError(
                            f"notification connection ended: {ended or 'closed by Redis'}"
                        )
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ConnectionError) as exc:
                if node.healthy:
                    logger.warning(
                        "redis notifications: lost %s (%s); retrying", node.name or "redis", exc
                    )
                node.healthy = False
                self._on_lost()
                await self._rehome(node)
            finally:
                if subscriber is not None:
                    subscriber.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _name(self, channels: list[str], reading: bool) -> None:
        if self._name_reader is not None and channels:
            await asyncio.gather(*(self._name_reader(c, reading) for c in channels))

    async def _rehome(self, node: _Node) -> None:
        """Move the node's channels to the nodes that serve them now, if that changed."""
        if self._refresh is None:
            return
        try:
            await self._refresh()
        except (RedisError, OSError) as exc:
            logger.debug("redis notifications: topology not refreshed (%s)", exc)
            return
        for channel in list(node.channels):
            if self._node_of(channel) != node.name:
                node.channels.discard(channel)
                del self._channel_node[channel]
                self._place(channel)

    def _pushed(self, push: Push) -> None:
        kind = push[0]
        if kind == "smessage":
            self._on_message(push[1], push[2])
        elif kind == "ssubscribe":
            self._on_subscribed(push[1])
