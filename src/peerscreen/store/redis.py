"""Redis store: shared state for several server processes.

Keys follow the original design's ``room:{id}:...`` style, with the room id in braces:
that is a Redis Cluster hash tag, so every key of a room lives in one hash slot and one
script can update them together on a cluster as on a single Redis. Every key carries a TTL
(the index of who was seen when, too):

=============================  =========================================================
``room:{id}``                  hash: ``record`` (JSON of the room), ``ended`` (reason),
                               ``locked``, ``paused``, ``passcode`` (its digest)
``room:{id}:viewers``          hash: viewer id -> JSON of the viewer
``room:{id}:inbox:{pid}``      list: the participant's waiting messages, oldest first
``room:{id}:seq:{pid}``        counter: number of the participant's newest message
``room:{id}:offer``            the single-viewer flow's room offer
``room:{id}:offer:taker``      the viewer that took it
``room:{id}:seen``             hash: participant id -> unix time last seen
``room:{id}:chat``             list: the last chat messages, oldest first
``peerscreen:calls:<key>``     list: times of a rate-limited key's calls in its window
``peerscreen:seen``            sorted set: ``<room> <pid>`` by when last seen (all rooms)
``room:{id}:departed``         hash: viewer id -> token digest of viewers that left
``room:{id}:pending``          hash: bytes held in mailboxes: ``*`` all of the room's,
                               ``<pid>`` one mailbox's, ``<pid>><sender>`` and
                               ``<pid>><sender>#`` a sender's bytes and messages there;
                               ``chat``: bytes of the chat history
=============================  =========================================================

Multi-key updates run as Lua scripts so that two processes never interleave inside one.
A stored message is published, whole, on its mailbox's sharded channel
``room:{id}:notify:{pid}``, which only processes with a reader of that mailbox subscribe
to (:mod:`.channels`): they hand it to their socket without reading it back. Redis 7 or
later (sharded pub/sub).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import secrets
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
from pydantic_core import to_json
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import StoreUnavailable
from .autopipeline import AutoPipeline
from .base import (
    DEPARTED_KEPT,
    ROOM_OFFER,
    AddViewerResult,
    MailBudget,
    Message,
    Refusal,
    RoomRecord,
    Store,
    Stored,
    ViewerRecord,
    stored_from_text,
)
from .channels import MailboxChannels
from .connect import RedisAddress

logger = logging.getLogger("peerscreen.store.redis")

POOL_WAIT = 5.0
"""Seconds a call waits for a free Redis connection before it counts Redis as unavailable."""

SEEN_INDEX = "peerscreen:seen"
"""Sorted set of every participant of every room ("<room> <participant>"), scored by when
it was last seen: any process finds those gone past the grace period, whoever saw them.
Entries of rooms that ended or expired are dropped as they are found."""

P = ParamSpec("P")
T = TypeVar("T")


def _guarded(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn Redis connection failures into StoreUnavailable (503), failing fast."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        gate = cast(RedisStore, args[0])._gate
        try:
            if gate is None:
                return await method(*args, **kwargs)
            try:
                async with asyncio.timeout(POOL_WAIT):
                    await gate.acquire()
            except TimeoutError:
                raise StoreUnavailable("every connection to Redis stayed busy") from None
            try:
                return await method(*args, **kwargs)
            finally:
                gate.release()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        except RedisError as exc:
            # LOADING, READONLY, MISCONF...: the server is there but cannot serve now.
            raise StoreUnavailable(str(exc)) from exc

    return wrapper


def _room_key(room_id: str) -> str:
    return f"room:{{{room_id}}}"


def _channel(room_id: str, participant_id: str) -> str:
    """The sharded channel of a mailbox (in its room's hash slot)."""
    return f"room:{{{room_id}}}:notify:{participant_id}"


def _mailbox_of(channel: str) -> tuple[str, str]:
    """(room id, participant id) of a mailbox channel."""
    room_id, _, participant_id = channel[6:].partition("}:notify:")
    return room_id, participant_id


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


# Keys of a room that scripts expire together. Participant keys are derived from the
# viewers hash, so one TTL refresh reaches every key the room owns.
_ROOM_KEYS_LUA = """
local function room_keys(room)
  local keys = {room, room .. ':viewers', room .. ':offer', room .. ':offer:taker',
                room .. ':seen', room .. ':chat', room .. ':pending', room .. ':departed',
                room .. ':inbox:host', room .. ':seq:host', room .. ':readers:host',
                room .. ':inbox:offer', room .. ':seq:offer', room .. ':readers:offer'}
  for _, vid in ipairs(redis.call('HKEYS', room .. ':viewers')) do
    table.insert(keys, room .. ':inbox:' .. vid)
    table.insert(keys, room .. ':seq:' .. vid)
    table.insert(keys, room .. ':readers:' .. vid)
  end
  return keys
end
"""

_TOUCH = (
    _ROOM_KEYS_LUA
    + """
local room = KEYS[1]
if redis.call('EXISTS', room) == 0 or redis.call('HEXISTS', room, 'ended') == 1 then
  return 0
end
for _, key in ipairs(room_keys(room)) do redis.call('PEXPIRE', key, ARGV[1]) end
return 1
"""
)

_END = (
    _ROOM_KEYS_LUA
    + """
local room = KEYS[1]
if redis.call('EXISTS', room) == 0 or redis.call('HEXISTS', room, 'ended') == 1 then
  return 0
end
redis.call('HSET', room, 'ended', ARGV[1])
local retention = tonumber(ARGV[2])
for _, key in ipairs(room_keys(room)) do
  local left = redis.call('PTTL', key)
  if left < 0 or left > retention then redis.call('PEXPIRE', key, retention) end
end
return 1
"""
)

_CREATE_ROOM = """
if redis.call('HSETNX', KEYS[1], 'record', ARGV[1]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# ARGV: locked ('1' or ''), passcode digest ('' for none).
_SET_ACCESS = """
if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'locked', '1')
else redis.call('HDEL', KEYS[1], 'locked') end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'passcode', ARGV[2])
else redis.call('HDEL', KEYS[1], 'passcode') end
return 1
"""

# KEYS: offer, taker. ARGV: offer JSON, ttl, channel, notice.
_PUT_ROOM_OFFER = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('SPUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: the key's call times (ms, Redis's clock), newest first. ARGV: amount, period (ms),
# take (0/1). Returns -1 when within the limit, else the ms until a call would be.
_COUNT_CALLS = """
local amount, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if redis.call('LLEN', KEYS[1]) >= amount then
  local oldest = tonumber(redis.call('LINDEX', KEYS[1], amount - 1))
  if oldest > now - period then return oldest + period - now end
end
if ARGV[3] == '1' then
  redis.call('LPUSH', KEYS[1], now)
  redis.call('LTRIM', KEYS[1], 0, amount - 1)
  redis.call('PEXPIRE', KEYS[1], period)
end
return -1
"""

_ADD_VIEWER = """
local room, viewers = KEYS[1], KEYS[2]
if redis.call('EXISTS', room) == 0 then return 'no_room' end
if redis.call('HEXISTS', room, 'ended') == 1 then return 'ended' end
if redis.call('HEXISTS', room, 'locked') == 1 then return 'locked' end
if redis.call('HLEN', viewers) >= tonumber(ARGV[3]) then return 'full' end
redis.call('HSET', viewers, ARGV[1], ARGV[2])
redis.call('PEXPIRE', viewers, ARGV[4])
return 'added'
"""

# Stored messages are JSON text that starts with '{"seq":N,"type":"...",' and, when a
# participant sent it, '"from":"<sender>",' right after: scripts read these without
# decoding the whole message. Each counts its stored length in the pending hash.
_ACCOUNTING_LUA = """
local function seq_of(raw) return tonumber(string.match(raw, '^{"seq":(%d+)')) end
local function sender_of(raw)
  return string.match(raw, '^{"seq":%d+,"type":"[^"]*","from":"([^"]*)"')
end
local function unaccount(pending, pid, raw)
  local size = #raw
  redis.call('HINCRBY', pending, '*', -size)
  redis.call('HINCRBY', pending, pid, -size)
  local sender = sender_of(raw)
  if sender then
    redis.call('HINCRBY', pending, pid .. '>' .. sender, -size)
    redis.call('HINCRBY', pending, pid .. '>' .. sender .. '#', -1)
  end
end
"""

_REMOVE_VIEWER = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 1 then
  local pid = ARGV[1]
  redis.call('HSET', KEYS[6], pid, cjson.decode(record)['token_hash'])
  if redis.call('HLEN', KEYS[6]) > tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[6], redis.call('HRANDFIELD', KEYS[6]))
  end
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[6], ttl) end
  local held = tonumber(redis.call('HGET', KEYS[5], pid) or '0')
  if held ~= 0 then redis.call('HINCRBY', KEYS[5], '*', -held) end
  local fields = {pid}
  for _, field in ipairs(redis.call('HKEYS', KEYS[5])) do
    if string.sub(field, 1, #pid + 1) == pid .. '>' then table.insert(fields, field) end
  end
  redis.call('HDEL', KEYS[5], unpack(fields))
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('SPUBLISH', ARGV[2], ARGV[3])
end
return removed
"""

# KEYS: inbox, seq, pending, room, viewers, readers. ARGV: body, ttl, channel, origin,
# recipient, sender ('' for none), budgeted (0/1), messages, bytes, sender messages, sender
# bytes, room bytes, to viewer (0/1).
# The stored message goes out on the mailbox's channel as "<origin process>\n<message>",
# when a process other than the origin reads that mailbox (see _REGISTER).
_APPEND = """
local inbox, pending = KEYS[1], KEYS[3]
if redis.call('EXISTS', KEYS[4]) == 0 then return 'no_room' end
local recipient, sender = ARGV[5], ARGV[6]
if ARGV[13] == '1' and redis.call('HEXISTS', KEYS[5], recipient) == 0 then
  return 'no_viewer'
end
local body = ARGV[1]
local next_seq = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
local size = #body + #('"seq":' .. next_seq .. ',')
if ARGV[7] == '1' then
  if redis.call('LLEN', inbox) >= tonumber(ARGV[8]) then return 'mailbox' end
  local held = redis.call('HMGET', pending, recipient, '*')
  if tonumber(held[1] or '0') + size > tonumber(ARGV[9]) then return 'mailbox' end
  if sender ~= '' then
    local mine = redis.call('HMGET', pending, recipient .. '>' .. sender .. '#',
                            recipient .. '>' .. sender)
    if tonumber(mine[1] or '0') >= tonumber(ARGV[10]) or
       tonumber(mine[2] or '0') + size > tonumber(ARGV[11]) then return 'sender_share' end
  end
  if tonumber(held[2] or '0') + size > tonumber(ARGV[12]) then return 'room' end
end
local seq = redis.call('INCR', KEYS[2])
if body == '{}' then body = '{"seq":' .. seq .. '}'
else body = '{"seq":' .. seq .. ',' .. string.sub(body, 2) end
size = #body
redis.call('RPUSH', inbox, body)
redis.call('HINCRBY', pending, '*', size)
redis.call('HINCRBY', pending, recipient, size)
if sender ~= '' then
  redis.call('HINCRBY', pending, recipient .. '>' .. sender, size)
  redis.call('HINCRBY', pending, recipient .. '>' .. sender .. '#', 1)
end
redis.call('PEXPIRE', inbox, ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if redis.call('PTTL', pending) < tonumber(ARGV[2]) then redis.call('PEXPIRE', pending, ARGV[2]) end
local readers = redis.call('SCARD', KEYS[6])
if readers > 1 or (readers == 1 and redis.call('SISMEMBER', KEYS[6], ARGV[4]) == 0) then
  redis.call('SPUBLISH', ARGV[3], ARGV[4] .. '\\n' .. body)
end
return seq
"""

# KEYS: room, readers. ARGV: process, '1' (it reads the mailbox now) or '0' (no longer).
# Each process that subscribes to a mailbox's channel is named in its readers set first:
# a message is published only when some other process is named there, so a process that
# both stores and reads a mailbox (one process; or host and viewer on the same one) does
# not hear its own messages back. Named before subscribing, and the subscription's
# confirmation triggers a read: a message stored in between is read, not lost. The set
# lives as long as the room (the room's scripts expire it with the other keys).
_REGISTER = """
if ARGV[2] == '0' then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""

_TAKE_ROOM_OFFER = """
local offer = redis.call('GET', KEYS[1])
if not offer then return false end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return offer
"""

_TRIM_LUA = """
local function trim(inbox, pending, pid, acked)
  while true do
    local head = redis.call('LINDEX', inbox, 0)
    if not head or seq_of(head) > acked then break end
    redis.call('LPOP', inbox)
    unaccount(pending, pid, head)
  end
end
"""

_ACKNOWLEDGE = _ACCOUNTING_LUA + _TRIM_LUA + "trim(KEYS[1], KEYS[2], ARGV[2], tonumber(ARGV[1]))"

_READ = (
    _ACCOUNTING_LUA
    + _TRIM_LUA
    + """
local after, acked = tonumber(ARGV[1]), tonumber(ARGV[2])
trim(KEYS[1], KEYS[2], ARGV[3], acked)
local all = redis.call('LRANGE', KEYS[1], 0, -1)
if #all == 0 or seq_of(all[#all]) <= after then return {} end
local out = {}
for _, raw in ipairs(all) do
  if seq_of(raw) > after then table.insert(out, raw) end
end
return out
"""
)

_TAKE = (
    _ACCOUNTING_LUA
    + """
local wanted = {}
for i = 2, #ARGV do wanted[ARGV[i]] = true end
local all = redis.call('LRANGE', KEYS[1], 0, -1)
local taken, kept = {}, {}
for _, raw in ipairs(all) do
  if wanted[string.match(raw, '^{"seq":%d+,"type":"([^"]*)"')] then
    table.insert(taken, raw)
    unaccount(KEYS[2], ARGV[1], raw)
  else table.insert(kept, raw) end
end
if #taken > 0 then
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('DEL', KEYS[1])
  if #kept > 0 then
    redis.call('RPUSH', KEYS[1], unpack(kept))
    if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  end
end
return taken
"""
)

# KEYS: chat list, pending. ARGV: message, keep, keep bytes, ttl.
_ADD_CHAT = """
redis.call('RPUSH', KEYS[1], ARGV[1])
local total = redis.call('HINCRBY', KEYS[2], 'chat', #ARGV[1])
local keep, keep_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
while redis.call('LLEN', KEYS[1]) > 1 and
      (redis.call('LLEN', KEYS[1]) > keep or total > keep_bytes) do
  local old = redis.call('LPOP', KEYS[1])
  total = redis.call('HINCRBY', KEYS[2], 'chat', -#old)
end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return total
"""


MIN_REDIS = (7, 0)
"""Sharded pub/sub (SSUBSCRIBE, SPUBLISH) arrived in Redis 7.0."""


async def unsupported_redis(url: str) -> str | None:
    """Why the Redis at ``url`` cannot serve peerscreen (too old), or None: also when it
    cannot be reached now, since the server starts without Redis and waits for it."""
    if url.startswith("redis+cluster://"):
        from .redis_cluster import parse_cluster_url

        (host, port), *_ = parse_cluster_url(url)[0]
        client = aioredis.Redis(host=host, port=port, socket_connect_timeout=1.0, protocol=2)
    else:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, protocol=2)
    try:
        info = await client.info("server")
    except (RedisError, OSError):
        return None
    finally:
        await client.aclose()
    text = str(info.get("redis_version", "0"))
    version = tuple(int(part) for part in text.split(".")[:2] if part.isdigit())
    if version >= MIN_REDIS:
        return None
    return (
        f"this Redis is version {text}; peerscreen needs Redis 7.0 or later (sharded "
        "pub/sub carries its notifications between processes)"
    )


class RedisStore(Store):
    """Rooms in Redis, shared by every process that uses the same URL."""

    kind = "redis"
    _gate: asyncio.Semaphore | None = None
    """Bounds calls in flight, for clients that fail rather than wait when busy."""

    def __init__(self, url: str, max_connections: int = 100) -> None:
        super().__init__()
        self._url = url
        self._max_connections = max_connections
        self._redis: Any = self._connect()
        self._touch = self._redis.register_script(_TOUCH)
        self._end = self._redis.register_script(_END)
        self._add_viewer = self._redis.register_script(_ADD_VIEWER)
        self._remove_viewer = self._redis.register_script(_REMOVE_VIEWER)
        self._append = self._redis.register_script(_APPEND)
        self._read = self._redis.register_script(_READ)
        self._acknowledge = self._redis.register_script(_ACKNOWLEDGE)
        self._take = self._redis.register_script(_TAKE)
        self._take_room_offer = self._redis.register_script(_TAKE_ROOM_OFFER)
        self._add_chat = self._redis.register_script(_ADD_CHAT)
        self._create_room = self._redis.register_script(_CREATE_ROOM)
        self._set_access = self._redis.register_script(_SET_ACCESS)
        self._put_room_offer = self._redis.register_script(_PUT_ROOM_OFFER)
        self._count_calls = self._redis.register_script(_COUNT_CALLS)
        # Names this process in what it publishes, so it skips its own notifications:
        # it has woken its readers already, with the message in hand.
        self._origin = secrets.token_hex(8)
        self._register = self._redis.register_script(_REGISTER)
        self.channel_messages = 0  # notifications heard from the channels, for tests
        self._channels = MailboxChannels(
            self._node_of,
            self._pubsub_address,
            self._on_channel_message,
            self._on_subscribed,
            self.notifier.wake_all,
            self._refresh_topology,
            self._name_reader,
        )
        self.notifier.on_first = self._listen_to
        self.notifier.on_last = self._stop_listening_to
        # The scripts every signal runs go through one auto-pipelined connection (the
        # cluster store keeps the cluster client, which routes each room to its node).
        self._pipe: AutoPipeline | None = self._autopipeline()

    def _autopipeline(self) -> AutoPipeline | None:
        return AutoPipeline(self._url)

    async def _call(self, *args: Any) -> Any:
        """One command, on the pipelined connection where there is one."""
        pipe = self._pipe
        if pipe is None:
            return await self._redis.execute_command(*args)
        return await pipe.execute(*args)

    async def _hgetall(self, key: str) -> dict[str, str]:
        reply = await self._call("HGETALL", key)
        if isinstance(reply, dict):
            return cast(dict[str, str], reply)
        items = cast(list[str], reply or [])
        return dict(zip(items[::2], items[1::2], strict=True))

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script, on the auto-pipelined connection where there is one."""
        pipe = self._pipe
        if pipe is None:
            return await script(keys=keys, args=args)
        try:
            return await pipe.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            # Redis restarted, or its scripts were flushed: load it and try once more.
            await pipe.execute("SCRIPT", "LOAD", script.script)
            return await pipe.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    def _connect(self) -> Any:
        """The client for commands: a pool shared by every request of this process."""
        # A busy pool makes callers wait for a connection (up to POOL_WAIT) instead of
        # failing them: a burst is slower, never refused. One quick retry rides over a
        # pooled connection that died with a Redis restart; more would only delay the 503
        # a caller should see while Redis is down.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=self._max_connections,
            timeout=POOL_WAIT,
            decode_responses=True,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            retry=Retry(NoBackoff(), 1),
        )
        return aioredis.Redis(connection_pool=pool)

    def _node_of(self, channel: str) -> str:
        """The node that serves a sharded channel ("": the one Redis)."""
        return ""

    def _pubsub_address(self, node: str) -> RedisAddress:
        return RedisAddress.from_url(self._url)

    async def _refresh_topology(self) -> None:
        """Re-read which node serves what (nothing to do on a single Redis)."""

    async def open(self) -> None:
        self._channels.start()

    async def close(self) -> None:
        await self._channels.stop()
        if self._pipe is not None:
            await self._pipe.aclose()
        await self._redis.aclose()

    def _listen_to(self, room_id: str, participant_id: str) -> None:
        self._channels.want(_channel(room_id, participant_id))

    def _stop_listening_to(self, room_id: str, participant_id: str) -> None:
        self._channels.unwant(_channel(room_id, participant_id))

    async def _name_reader(self, channel: str, reading: bool) -> None:
        """Name this process among the readers of a channel's mailbox, or no longer."""
        room_id, participant_id = _mailbox_of(channel)
        await self._run(
            self._register,
            [f"room:{{{room_id}}}", f"room:{{{room_id}}}:readers:{participant_id}"],
            [self._origin, 1 if reading else 0],
        )

    def _on_channel_message(self, channel: str, data: str) -> None:
        self.channel_messages += 1
        origin, _, body = data.partition("\n")
        if origin == self._origin:
            return
        room_id, participant_id = _mailbox_of(channel)
        if not self.notifier.has_listener(room_id, participant_id):
            return  # its reader left while the channel lingers
        message = stored_from_text(body.encode()) if body else None
        self.notifier.notify(room_id, participant_id, message)

    def _on_subscribed(self, channel: str) -> None:
        # Whatever was stored before the subscription took effect is read now.
        room_id, participant_id = _mailbox_of(channel)
        self.notifier.notify(room_id, participant_id)

    def listened_channels(self) -> int:
        """How many mailbox channels this process subscribes to (lingering ones too)."""
        return self._channels.subscribed_count()

    @_guarded
    async def ping(self) -> None:
        await self._call("PING")  # on the connection the store's calls use
        if not self._channels.healthy:
            # Calls would work, but pushes from other processes would not arrive.
            raise StoreUnavailable("the notification connection to Redis is down")

    @_guarded
    async def create_room(self, room: RoomRecord, ttl: float) -> bool:
        created = await self._run(
            self._create_room,
            [f"room:{{{room.room_id}}}"],
            [json.dumps(room.to_dict()), _ms(ttl)],
        )
        return bool(created)

    @_guarded
    async def get_room(self, room_id: str) -> RoomRecord | None:
        data = await self._hgetall(f"room:{{{room_id}}}")
        if not data or "record" not in data:
            return None
        fields = json.loads(data["record"])
        if "ended" in data:
            fields["ended"] = True
            fields["end_reason"] = data["ended"]
        fields["locked"] = "locked" in data
        fields["paused"] = "paused" in data
        fields["passcode_hash"] = data.get("passcode")
        fields["media_node"] = data.get("media")
        return RoomRecord(**fields)

    @_guarded
    async def set_paused(self, room_id: str, paused: bool) -> None:
        if paused:
            await self._call("HSET", f"room:{{{room_id}}}", "paused", "1")
        else:
            await self._call("HDEL", f"room:{{{room_id}}}", "paused")

    @_guarded
    async def set_media_node(self, room_id: str, node: str | None) -> None:
        if node is not None:
            await self._call("HSET", f"room:{{{room_id}}}", "media", node)
        else:
            await self._call("HDEL", f"room:{{{room_id}}}", "media")

    @_guarded
    async def set_access(self, room_id: str, locked: bool, passcode_hash: str | None) -> None:
        await self._run(
            self._set_access,
            [f"room:{{{room_id}}}"],
            ["1" if locked else "", passcode_hash or ""],
        )

    @_guarded
    async def end_room(self, room_id: str, reason: str, retention: float) -> bool:
        ended = await self._run(self._end, [f"room:{{{room_id}}}"], [reason, _ms(retention)])
        return bool(ended)

    @_guarded
    async def touch_room(self, room_id: str, ttl: float) -> None:
        await self._run(self._touch, [f"room:{{{room_id}}}"], [_ms(ttl)])

    @_guarded
    async def add_viewer(
        self, room_id: str, viewer: ViewerRecord, max_viewers: int, ttl: float
    ) -> AddViewerResult:
        result = await self._run(
            self._add_viewer,
            [f"room:{{{room_id}}}", f"room:{{{room_id}}}:viewers"],
            [viewer.viewer_id, json.dumps(viewer.to_dict()), max_viewers, _ms(ttl)],
        )
        return AddViewerResult(result)

    @_guarded
    async def remove_viewer(self, room_id: str, viewer_id: str) -> bool:
        prefix = _room_key(room_id)
        removed = await self._run(
            self._remove_viewer,
            [
                f"{prefix}:viewers",
                f"{prefix}:inbox:{viewer_id}",
                f"{prefix}:seq:{viewer_id}",
                f"{prefix}:seen",
                f"{prefix}:pending",
                f"{prefix}:departed",
            ],
            [viewer_id, _channel(room_id, viewer_id), self._origin + "\n", DEPARTED_KEPT],
        )
        if removed:
            self.notifier.notify(room_id, viewer_id)
        return bool(removed)

    @_guarded
    async def departed_token_hash(self, room_id: str, viewer_id: str) -> str | None:
        value = await self._call("HGET", f"room:{{{room_id}}}:departed", viewer_id)
        return cast(str | None, value)

    @_guarded
    async def get_viewers(self, room_id: str) -> dict[str, ViewerRecord]:
        raw = await self._hgetall(f"room:{{{room_id}}}:viewers")
        return {vid: ViewerRecord(**json.loads(text)) for vid, text in raw.items()}

    @_guarded
    async def has_viewer(self, room_id: str, viewer_id: str) -> bool:
        return bool(await self._call("HEXISTS", f"room:{{{room_id}}}:viewers", viewer_id))

    @_guarded
    async def append(
        self,
        room_id: str,
        recipient: str,
        message: Message,
        ttl: float,
        budget: MailBudget | None,
        to_viewer: bool = False,
    ) -> int | Refusal:
        # "type" and "from" first: the scripts find them at the start of the text.
        sender = message.get("from")
        body: Message = {"type": message.get("type")}
        if sender is not None:
            body["from"] = sender
        body.update((k, v) for k, v in message.items() if k != "seq")
        text = to_json(body)
        limits = (
            [
                budget.messages,
                budget.bytes,
                budget.sender_messages,
                budget.sender_bytes,
                budget.room_bytes,
            ]
            if budget is not None
            else [0, 0, 0, 0, 0]
        )
        result = await self._run(
            self._append,
            [
                f"room:{{{room_id}}}:inbox:{recipient}",
                f"room:{{{room_id}}}:seq:{recipient}",
                f"room:{{{room_id}}}:pending",
                f"room:{{{room_id}}}",
                f"room:{{{room_id}}}:viewers",
                f"room:{{{room_id}}}:readers:{recipient}",
            ],
            [
                text,
                _ms(ttl),
                _channel(room_id, recipient),
                self._origin,
                recipient,
                sender or "",
                1 if budget is not None else 0,
                *limits,
                1 if to_viewer else 0,
            ],
        )
        if isinstance(result, str):
            return Refusal(result)
        seq = int(result)
        if self.notifier.has_listener(room_id, recipient):
            # Local readers get it now, whole (other processes through the channel).
            # The text the script stored, built the same way.
            stored = b'{"seq":%d,%s' % (seq, text[1:])
            self.notifier.notify(room_id, recipient, Stored(seq, body["type"], stored))
        return seq

    @_guarded
    async def read(self, room_id: str, recipient: str, after: int, acked: int) -> list[Message]:
        raw = await self._run(
            self._read,
            [f"room:{{{room_id}}}:inbox:{recipient}", f"room:{{{room_id}}}:pending"],
            [after, acked, recipient],
        )
        return [json.loads(text) for text in cast(list[str], raw)]

    @_guarded
    async def acknowledge(self, room_id: str, recipient: str, acked: int) -> None:
        await self._run(
            self._acknowledge,
            [f"room:{{{room_id}}}:inbox:{recipient}", f"room:{{{room_id}}}:pending"],
            [acked, recipient],
        )

    @_guarded
    async def take(self, room_id: str, recipient: str, types: Iterable[str]) -> list[Message]:
        raw = await self._run(
            self._take,
            [f"room:{{{room_id}}}:inbox:{recipient}", f"room:{{{room_id}}}:pending"],
            [recipient, *types],
        )
        return [json.loads(text) for text in cast(list[str], raw)]

    @_guarded
    async def last_seq(self, room_id: str, recipient: str) -> int:
        value = await self._call("GET", f"room:{{{room_id}}}:seq:{recipient}")
        return int(value) if value else 0

    @_guarded
    async def put_room_offer(self, room_id: str, message: Message, ttl: float) -> None:
        await self._run(
            self._put_room_offer,
            [f"room:{{{room_id}}}:offer", f"room:{{{room_id}}}:offer:taker"],
            [json.dumps(message), _ms(ttl), _channel(room_id, ROOM_OFFER), self._origin + "\n"],
        )
        self.notifier.notify(room_id, ROOM_OFFER)

    @_guarded
    async def take_room_offer(self, room_id: str, viewer_id: str) -> Message | None:
        raw = await self._run(
            self._take_room_offer,
            [f"room:{{{room_id}}}:offer", f"room:{{{room_id}}}:offer:taker"],
            [viewer_id],
        )
        return cast(Message, json.loads(raw)) if raw else None

    @_guarded
    async def room_offer_taker(self, room_id: str) -> str | None:
        value = await self._call("GET", f"room:{{{room_id}}}:offer:taker")
        return cast(str | None, value)

    @_guarded
    async def add_chat(
        self, room_id: str, message: Message, keep: int, keep_bytes: int, ttl: float
    ) -> None:
        await self._run(
            self._add_chat,
            [f"room:{{{room_id}}}:chat", f"room:{{{room_id}}}:pending"],
            [json.dumps(message), keep, keep_bytes, _ms(ttl)],
        )

    @_guarded
    async def chat_history(self, room_id: str) -> list[Message]:
        raw = cast(list[str], await self._call("LRANGE", f"room:{{{room_id}}}:chat", 0, -1))
        return [json.loads(text) for text in raw]

    @_guarded
    async def count_calls(self, key: str, amount: int, period: float, take: bool) -> int | None:
        wait_ms = await self._run(
            self._count_calls, [f"peerscreen:calls:{key}"], [amount, _ms(period), int(take)]
        )
        wait_ms = int(wait_ms)
        return None if wait_ms < 0 else max(1, math.ceil(wait_ms / 1000))

    async def mark_seen(self, room_id: str, participant_id: str, at: float, ttl: float) -> None:
        await self.mark_seen_many([(room_id, participant_id)], at, ttl)

    @_guarded
    async def mark_seen_many(self, seen: list[tuple[str, str]], at: float, ttl: float) -> None:
        # Later refreshes of each hash's TTL come with the room's other keys (touch_room);
        # NX only gives a new hash its first TTL without undoing an ended room's shorter
        # one. The index lives while anyone is seen. The heartbeat marks a slice of the
        # sockets at a time: their commands in one write, the index's in one command.
        if not seen:
            return
        stamp, ms = repr(at), _ms(ttl)
        commands: list[tuple[Any, ...]] = []
        members: list[str] = []
        for room_id, participant_id in seen:
            key = f"room:{{{room_id}}}:seen"
            commands.append(("HSET", key, participant_id, stamp))
            commands.append(("PEXPIRE", key, ms, "NX"))
            members += (stamp, f"{room_id} {participant_id}")
        commands.append(("ZADD", SEEN_INDEX, *members))
        commands.append(("PEXPIRE", SEEN_INDEX, ms))
        pipe = self._pipe
        if pipe is not None:
            await pipe.execute_all(*commands)
            return
        async with self._redis.pipeline(transaction=False) as pooled:
            for command in commands:
                pooled.execute_command(*command)
            await pooled.execute()

    @_guarded
    async def unseen_since(self, before: float, limit: int) -> list[tuple[str, str]]:
        members = await self._call(
            "ZRANGEBYSCORE", SEEN_INDEX, "-inf", f"({before!r}", "LIMIT", 0, limit
        )
        pairs = [member.partition(" ") for member in cast(list[str], members)]
        return [(room_id, pid) for room_id, _, pid in pairs]

    @_guarded
    async def forget_seen(self, room_id: str, participant_id: str) -> None:
        await self._call("ZREM", SEEN_INDEX, f"{room_id} {participant_id}")

    @_guarded
    async def last_seen(self, room_id: str) -> dict[str, float]:
        raw = await self._hgetall(f"room:{{{room_id}}}:seen")
        return {pid: float(ts) for pid, ts in raw.items()}
