"""Redis Cluster store: the Redis store's layout and scripts, spread over a cluster.

Every key of a room carries the room id as a hash tag (``room:{id}:...``), so a room
lives in one hash slot: its scripts run on the node that owns it, as on a single Redis.
Each mailbox's notification channel is a sharded channel in that slot too, served by the
same node, and a process keeps one subscriber connection per node it needs. The scripts
every signal runs go to the room's node on that node's auto-pipelined connection; the
cluster client (which follows redirects) carries everything else.

The URL names one or more nodes to discover the cluster from::

    redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000
    redis+cluster://:password@10.0.0.1:7000
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from .autopipeline import AutoPipeline
from .connect import RedisAddress
from .redis import POOL_WAIT, RedisStore

SCHEME = "redis+cluster"


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """(host, port) of each node named, and the username and password, of a
    ``redis+cluster://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"a Redis Cluster URL starts with {SCHEME}://")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if credentials:
        user, _, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) or None
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"each node of a Redis Cluster URL is host:port, not {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes, username, password


class RedisClusterStore(RedisStore):
    """Rooms in a Redis Cluster, shared by every process that uses the same cluster."""

    kind = "redis-cluster"

    def __init__(self, url: str, max_connections: int = 100) -> None:
        self._nodes, self._username, self._password = parse_cluster_url(url)
        super().__init__(url, max_connections)
        # The cluster client fails a call when a node's pool is exhausted, where the
        # single-Redis pool waits: this gate makes calls wait here instead, so a burst is
        # slower, never refused (no call holds more than one connection per node).
        self._gate = asyncio.Semaphore(max_connections)
        self._node_pipes: dict[str, AutoPipeline] = {}

    def _connect(self) -> Any:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self._nodes],
            username=self._username,
            password=self._password,
            decode_responses=True,
            max_connections=self._max_connections,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            retry=Retry(NoBackoff(), 1),
        )

    async def open(self) -> None:
        try:
            await self._redis.initialize()
        except Exception as exc:
            from .redis import logger

            logger.warning("redis cluster: not reachable yet (%s)", exc)
        await super().open()

    def _autopipeline(self) -> None:
        return None  # one per node instead: see _run

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a script on the node that owns the room, on that node's pipelined
        connection; after a redirect (the slot moved) or any cluster-level refusal, once
        through the cluster client, which follows redirects and re-learns the layout."""
        try:
            node = self._redis.get_node_from_key(keys[0])
        except Exception:
            node = None
        if node is None:
            return await script(keys=keys, args=args)
        pipe = self._node_pipes.get(node.name)
        if pipe is None:
            pipe = self._node_pipes[node.name] = AutoPipeline(self._node_url(node.host, node.port))
        try:
            return await pipe.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("NOSCRIPT"):
                await pipe.execute("SCRIPT", "LOAD", script.script)
                return await pipe.execute("EVALSHA", script.sha, len(keys), *keys, *args)
            if text.split(" ", 1)[0] in ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"):
                return await script(keys=keys, args=args)
            raise

    def _node_url(self, host: str, port: int) -> str:
        credentials = ""
        if self._password is not None:
            user = quote(self._username or "", safe="")
            credentials = f"{user}:{quote(self._password, safe='')}@"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6
        return f"redis://{credentials}{host}:{port}/0"

    async def close(self) -> None:
        for pipe in self._node_pipes.values():
            await pipe.aclose()
        self._node_pipes.clear()
        await super().close()

    def _node_of(self, channel: str) -> str:
        try:
            node = self._redis.get_node_from_key(channel)
        except Exception:
            node = None
        if node is None:
            host, port = self._nodes[0]
            return f"{host}:{port}"
        return str(node.name)

    def _pubsub_address(self, node: str) -> RedisAddress:
        host, _, port = node.rpartition(":")
        return RedisAddress.from_url(self._node_url(host, int(port)))

    async def _refresh_topology(self) -> None:
        await self._redis.nodes_manager.initialize()


__all__ = ["POOL_WAIT", "RedisClusterStore", "parse_cluster_url"]
