"""One contract, every store: the in-memory store and Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pydantic_core import from_json

from peerscreen.store import (
    AddViewerResult,
    MailBudget,
    Refusal,
    RoomRecord,
    Store,
    Stored,
    ViewerRecord,
)
from peerscreen.store.base import ROOM_OFFER
from peerscreen.store.memory import MemoryStore
from peerscreen.store.redis import SEEN_INDEX, RedisStore
from peerscreen.store.redis_cluster import RedisClusterStore

from ..support.processes import RedisClusterServers, RedisServer

TTL = 60.0
ROOMY = MailBudget(
    messages=100, bytes=1 << 20, sender_messages=100, sender_bytes=1 << 20, room_bytes=1 << 22
)


def budget(messages: int) -> MailBudget:
    return MailBudget(messages, 1 << 20, messages, 1 << 20, 1 << 22)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "redis-cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        backend = RedisClusterStore(cluster.url)
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        backend = RedisStore(redis_server.url)
    await backend.open()
    yield backend
    await backend.close()


async def eventually(check: object, timeout: float = 5.0) -> None:
    """Await ``check()`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def room(room_id: str = "abcd-efghj-kmnp", max_viewers: int = 3) -> RoomRecord:
    return RoomRecord(room_id, "digest", time.time(), max_viewers)


def viewer(n: int) -> ViewerRecord:
    return ViewerRecord(f"v{n:010d}", f"digest{n}", time.time())


async def test_rooms_are_created_once_and_read_back(store: Store) -> None:
    record = room()
    assert await store.create_room(record, TTL)
    assert not await store.create_room(room(), TTL)
    assert await store.get_room(record.room_id) == record
    assert await store.get_room("zzzz-zzzzz-zzzz") is None


async def test_rooms_expire_after_their_ttl_unless_touched(store: Store) -> None:
    await store.create_room(room("aaaa-aaaaa-aaaa"), 0.4)
    await store.create_room(room("bbbb-bbbbb-bbbb"), 0.4)
    for _ in range(4):
        await store.touch_room("bbbb-bbbbb-bbbb", 0.4)
        await asyncio.sleep(0.15)

    async def first_gone() -> bool:
        return await store.get_room("aaaa-aaaaa-aaaa") is None

    await eventually(first_gone)
    assert await store.get_room("bbbb-bbbbb-bbbb") is not None


async def test_ending_a_room_succeeds_once_and_keeps_it_briefly(store: Store) -> None:
    record = room()
    await store.create_room(record, TTL)
    assert await store.end_room(record.room_id, "host-ended", 0.5)
    assert not await store.end_room(record.room_id, "host-ended", 0.5)
    ended = await store.get_room(record.room_id)
    assert ended is not None and ended.ended and ended.end_reason == "host-ended"
    await store.touch_room(record.room_id, TTL)  # activity must not revive an ended room

    async def gone() -> bool:
        return await store.get_room(record.room_id) is None

    await eventually(gone)


async def test_viewers_are_capped_atomically(store: Store) -> None:
    record = room(max_viewers=5)
    await store.create_room(record, TTL)
    results = await asyncio.gather(
        *(store.add_viewer(record.room_id, viewer(n), 5, TTL) for n in range(20))
    )
    assert results.count(AddViewerResult.ADDED) == 5
    assert results.count(AddViewerResult.FULL) == 15
    assert len(await store.get_viewers(record.room_id)) == 5


async def test_viewers_cannot_join_missing_or_ended_rooms(store: Store) -> None:
    assert await store.add_viewer("nope-nopee-nope", viewer(1), 5, TTL) is AddViewerResult.NO_ROOM
    record = room()
    await store.create_room(record, TTL)
    await store.end_room(record.room_id, "host-ended", 10)
    assert await store.add_viewer(record.room_id, viewer(1), 5, TTL) is AddViewerResult.ENDED


async def test_removing_a_viewer_succeeds_once_and_wakes_its_reader(store: Store) -> None:
    record = room()
    await store.create_room(record, TTL)
    v = viewer(1)
    await store.add_viewer(record.room_id, v, 5, TTL)
    await store.append(record.room_id, v.viewer_id, {"type": "offer"}, TTL, ROOMY)
    with store.listen(record.room_id, v.viewer_id) as listener:
        assert await store.remove_viewer(record.room_id, v.viewer_id)
        assert await listener.wait(2)
    assert not await store.remove_viewer(record.room_id, v.viewer_id)
    assert await store.read(record.room_id, v.viewer_id, 0, 0) == []
    assert v.viewer_id not in await store.get_viewers(record.room_id)
    # Its token digest is remembered, so its own token can be told it left.
    assert await store.departed_token_hash(record.room_id, v.viewer_id) == v.token_hash
    assert await store.departed_token_hash(record.room_id, viewer(2).viewer_id) is None


async def test_mailbox_numbers_messages_and_keeps_unacknowledged_ones(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    seqs = [
        await store.append(rid, "host", {"type": "candidate", "n": n}, TTL, ROOMY) for n in range(5)
    ]
    assert seqs == [1, 2, 3, 4, 5]
    assert [m["n"] for m in await store.read(rid, "host", 0, 0)] == [0, 1, 2, 3, 4]
    # Sent up to 3, confirmed up to 2: 3 is kept for a resend, only 4 and 5 are new.
    assert [m["seq"] for m in await store.read(rid, "host", 3, 2)] == [4, 5]
    assert [m["seq"] for m in await store.read(rid, "host", 2, 2)] == [3, 4, 5]
    assert await store.read(rid, "host", 5, 5) == []
    assert await store.last_seq(rid, "host") == 5
    assert await store.append(rid, "host", {"type": "answer"}, TTL, ROOMY) == 6


async def test_take_removes_only_the_asked_types_in_order(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    for kind in ["viewer-joined", "answer", "candidate", "answer", "candidate"]:
        await store.append(rid, "host", {"type": kind}, TTL, ROOMY)
    taken = await store.take(rid, "host", ["answer"])
    assert [(m["type"], m["seq"]) for m in taken] == [("answer", 2), ("answer", 4)]
    rest = await store.read(rid, "host", 0, 0)
    assert [m["seq"] for m in rest] == [1, 3, 5]
    assert await store.take(rid, "host", ["answer"]) == []


async def test_full_mailbox_refuses_more(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    three = budget(messages=3)
    for _ in range(3):
        assert await store.append(rid, "host", {"type": "candidate"}, TTL, three)
    assert await store.append(rid, "host", {"type": "candidate"}, TTL, three) is Refusal.MAILBOX
    await store.read(rid, "host", 3, 3)
    assert await store.append(rid, "host", {"type": "candidate"}, TTL, three) == 4


def signal(sender: str, size: int) -> dict[str, str]:
    """A candidate from ``sender`` whose stored JSON text is about ``size`` bytes."""
    return {"type": "candidate", "from": sender, "pad": "x" * (size - 60)}


async def test_mailboxes_are_bounded_in_bytes_per_sender_and_per_room(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    for n in range(1, 4):
        await store.add_viewer(rid, viewer(n), 5, TTL)
    a, b, c = viewer(1).viewer_id, viewer(2).viewer_id, viewer(3).viewer_id
    limits = MailBudget(
        messages=1000, bytes=9_500, sender_messages=250, sender_bytes=3_500, room_bytes=14_500
    )
    # One sender fills its share (a quarter or so) and no more...
    accepted = 0
    while isinstance(await store.append(rid, "host", signal(a, 1000), TTL, limits), int):
        accepted += 1
        assert accepted < 10
    assert accepted == 3
    assert await store.append(rid, "host", signal(a, 1000), TTL, limits) is Refusal.SENDER_SHARE
    # ...so others still get through, until the mailbox itself is full.
    for _ in range(3):
        assert isinstance(await store.append(rid, "host", signal(b, 1000), TTL, limits), int)
    for _ in range(3):
        assert isinstance(await store.append(rid, "host", signal(c, 1000), TTL, limits), int)
    assert await store.append(rid, "host", signal("vnewcomer00", 1000), TTL, limits) is (
        Refusal.MAILBOX
    )
    # Server events are never refused, full mailbox or not.
    seq = await store.append(rid, "host", {"type": "viewer-joined", "viewerId": a}, TTL, None)
    assert isinstance(seq, int)
    # The room's mailboxes together: 9 KB at the host and 3 KB at a leave 3 KB for b.
    for _ in range(3):
        assert isinstance(await store.append(rid, a, signal("host", 1000), TTL, limits), int)
    room_full = [await store.append(rid, b, signal("host", 1000), TTL, limits) for _ in range(3)]
    assert [isinstance(r, int) for r in room_full] == [True, True, False]
    assert room_full[-1] is Refusal.ROOM
    # Reading (acknowledging) gives the bytes back to the sender, the mailbox and the room.
    await store.read(rid, "host", seq, seq)
    for _ in range(3):
        assert isinstance(await store.append(rid, "host", signal(a, 1000), TTL, limits), int)
    assert isinstance(await store.append(rid, b, signal("host", 1000), TTL, limits), int)
    # So do taking and a viewer's removal.
    assert len(await store.take(rid, "host", ["candidate"])) == 3
    assert await store.remove_viewer(rid, a)
    for _ in range(3):
        assert isinstance(await store.append(rid, c, signal("host", 1000), TTL, limits), int)
    assert await store.append("zzzz-zzzzz-zzzz", "host", signal(a, 100), TTL, limits) is (
        Refusal.NO_ROOM
    )


async def test_listeners_wake_for_their_own_mailbox_only(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    with store.listen(rid, "host") as host, store.listen(rid, "vother00000") as other:
        # A store shared by processes wakes a new listener once when its subscription
        # takes effect (whatever came before it is read then): let that pass.
        await asyncio.gather(host.wait(0.3), other.wait(0.3))
        await store.append(rid, "host", {"type": "answer"}, TTL, ROOMY)
        assert await host.wait(2)
        assert not await other.wait(0.2)


class Recorder:
    """A reader that keeps what its wake-ups hand over."""

    def __init__(self) -> None:
        self.handed: list[Stored | None] = []

    def wake(self, message: Stored | None = None) -> None:
        self.handed.append(message)


async def test_a_stored_message_is_handed_to_the_readers_of_its_mailbox(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    reader = Recorder()
    store.notifier.subscribe(rid, "host", reader)
    try:
        seq = await store.append(rid, "host", {"type": "answer", "from": "v1"}, TTL, ROOMY)
        handed = [m for m in reader.handed if m is not None]
        assert [(m.seq, m.type) for m in handed] == [(seq, "answer")]
        # The text a socket sends as it is: the message as a read gives it.
        assert from_json(handed[0].text) == {"type": "answer", "from": "v1", "seq": seq}
        assert from_json(handed[0].text) == (await store.read(rid, "host", 0, 0))[0]
    finally:
        store.notifier.unsubscribe(rid, "host", reader)


async def test_acknowledged_messages_are_dropped_and_free_the_budget(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    small = MailBudget(
        messages=2, bytes=1 << 20, sender_messages=2, sender_bytes=1 << 20, room_bytes=1 << 22
    )
    first = await store.append(rid, "host", {"type": "answer", "from": "v1"}, TTL, small)
    second = await store.append(rid, "host", {"type": "answer", "from": "v1"}, TTL, small)
    assert await store.append(rid, "host", {"type": "answer", "from": "v1"}, TTL, small) in (
        Refusal.MAILBOX,
        Refusal.SENDER_SHARE,
    )
    assert isinstance(first, int) and isinstance(second, int)
    await store.acknowledge(rid, "host", first)
    assert [m["seq"] for m in await store.read(rid, "host", 0, 0)] == [second]
    third = await store.append(rid, "host", {"type": "answer", "from": "v1"}, TTL, small)
    assert isinstance(third, int) and third == second + 1
    await store.acknowledge(rid, "host", third)
    assert await store.read(rid, "host", 0, 0) == []
    await store.acknowledge("nope-nopee-nope", "host", 5)  # no room: nothing to do


async def test_room_offer_is_taken_once_and_remembers_the_taker(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    assert await store.take_room_offer(rid, "v0000000001") is None
    with store.listen(rid, ROOM_OFFER) as listener:
        await store.put_room_offer(rid, {"type": "offer", "desc": {"sdp": "x"}}, TTL)
        assert await listener.wait(2)
    assert await store.take_room_offer(rid, "v0000000001") == {
        "type": "offer",
        "desc": {"sdp": "x"},
    }
    assert await store.take_room_offer(rid, "v0000000002") is None
    assert await store.room_offer_taker(rid) == "v0000000001"
    await store.put_room_offer(rid, {"type": "offer"}, TTL)
    assert await store.room_offer_taker(rid) is None


async def test_presence_marks(store: Store) -> None:
    rid = room().room_id
    await store.create_room(room(), TTL)
    await store.mark_seen(rid, "host", 1000.5, TTL)
    await store.mark_seen(rid, "v0000000001", 1001.25, TTL)
    assert await store.last_seen(rid) == {"host": 1000.5, "v0000000001": 1001.25}


async def test_presence_marks_written_together(store: Store) -> None:
    """As the sockets' heartbeat writes a slice of them: several rooms in one call."""
    await store.create_room(room("aaaa-aaaaa-aaaa"), TTL)
    await store.create_room(room("bbbb-bbbbb-bbbb"), TTL)
    now = time.time()
    await store.mark_seen("bbbb-bbbbb-bbbb", "host", now - 100, TTL)
    seen = [("aaaa-aaaaa-aaaa", "host"), ("aaaa-aaaaa-aaaa", "v0000000001")]
    await store.mark_seen_many([*seen, ("bbbb-bbbbb-bbbb", "v0000000002")], now, TTL)
    assert await store.last_seen("aaaa-aaaaa-aaaa") == {"host": now, "v0000000001": now}
    assert await store.last_seen("bbbb-bbbbb-bbbb") == {"host": now - 100, "v0000000002": now}
    assert await store.unseen_since(now - 40, 10) == [("bbbb-bbbbb-bbbb", "host")]
    await store.mark_seen_many([("bbbb-bbbbb-bbbb", "host")], now, TTL)  # one alone
    assert await store.unseen_since(now - 40, 10) == []


@pytest.mark.redis
async def test_every_redis_key_expires(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    redis_server.flush()
    store = RedisStore(redis_server.url)
    await store.open()
    rid = room().room_id
    await store.create_room(room(), TTL)
    await store.add_viewer(rid, viewer(1), 5, TTL)
    await store.append(rid, "host", {"type": "answer"}, TTL, ROOMY)
    await store.append(rid, viewer(1).viewer_id, {"type": "offer"}, TTL, ROOMY)
    await store.put_room_offer(rid, {"type": "offer"}, TTL)
    await store.take_room_offer(rid, viewer(1).viewer_id)
    await store.mark_seen(rid, "host", time.time(), TTL)
    await store.touch_room(rid, TTL)
    await store.close()
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    keys = [key async for key in client.scan_iter("*")]
    assert keys and all(key.startswith(f"room:{{{rid}}}") or key == SEEN_INDEX for key in keys)
    ttls = {key: await client.pttl(key) for key in keys}
    await client.aclose()
    assert all(0 < ttl <= TTL * 1000 for ttl in ttls.values()), ttls


@pytest.mark.redis
async def test_redis_notifications_cross_processes(redis_server: RedisServer) -> None:
    redis_server.flush()
    writer, reader = RedisStore(redis_server.url), RedisStore(redis_server.url)
    await writer.open()
    await reader.open()
    try:
        rid = room().room_id
        await writer.create_room(room(), TTL)
        # Stored before the reader listens: the subscription taking effect wakes it.
        await writer.append(rid, "host", {"type": "offer"}, TTL, ROOMY)
        recorder = Recorder()
        reader.notifier.subscribe(rid, "host", recorder)
        await eventually(lambda: _true(bool(recorder.handed)))
        assert recorder.handed == [None]  # woken to read, nothing handed over
        # Stored once the reader listens: it arrives whole, once, with no read.
        await writer.append(rid, "host", {"type": "answer", "from": "v1"}, TTL, ROOMY)
        await eventually(lambda: _true(len(recorder.handed) == 2))
        handed = recorder.handed[1]
        assert handed is not None and (handed.seq, handed.type) == (2, "answer")
        assert handed.text == b'{"seq":2,"type":"answer","from":"v1"}'  # as stored, sent as is
        # Nobody else listens to the mailbox: the writer's process is not told at all.
        assert writer.listened_channels() == 0
        assert reader.listened_channels() == 1
        reader.notifier.unsubscribe(rid, "host", recorder)
    finally:
        await writer.close()
        await reader.close()


async def _true(value: bool) -> bool:
    return value


async def test_has_viewer(store: Store) -> None:
    record = room()
    await store.create_room(record, TTL)
    await store.add_viewer(record.room_id, viewer(1), 5, TTL)
    assert await store.has_viewer(record.room_id, viewer(1).viewer_id)
    assert not await store.has_viewer(record.room_id, viewer(2).viewer_id)
    assert not await store.has_viewer("nope-nopee-nope", viewer(1).viewer_id)


async def test_chat_history_keeps_the_last_messages(store: Store) -> None:
    record = room()
    await store.create_room(record, TTL)
    for n in range(5):
        await store.add_chat(record.room_id, {"type": "chat", "text": f"m{n}"}, 3, 10_000, TTL)
    assert [m["text"] for m in await store.chat_history(record.room_id)] == ["m2", "m3", "m4"]
    assert await store.chat_history("nope-nopee-nope") == []
    # Bounded in bytes too: long messages leave fewer kept, the newest always.
    for n in range(4):
        long = {"type": "chat", "text": f"{n}" * 1000}
        await store.add_chat(record.room_id, long, 200, 2500, TTL)
    assert [m["text"][0] for m in await store.chat_history(record.room_id)] == ["2", "3"]
    await store.add_chat(record.room_id, {"type": "chat", "text": "z" * 5000}, 200, 2500, TTL)
    assert [m["text"][0] for m in await store.chat_history(record.room_id)] == ["z"]


async def test_locked_rooms_refuse_viewers_and_keep_their_passcode(store: Store) -> None:
    record = room()
    await store.create_room(record, TTL)
    await store.set_access(record.room_id, True, "digest-of-passcode")
    locked = await store.get_room(record.room_id)
    assert locked is not None and locked.locked and locked.passcode_hash == "digest-of-passcode"
    assert await store.add_viewer(record.room_id, viewer(1), 5, TTL) is AddViewerResult.LOCKED
    await store.set_access(record.room_id, False, None)
    opened = await store.get_room(record.room_id)
    assert opened is not None and not opened.locked and opened.passcode_hash is None
    assert await store.add_viewer(record.room_id, viewer(1), 5, TTL) is AddViewerResult.ADDED


async def test_a_room_moves_to_a_media_node_and_back(store: Store) -> None:
    record = room()
    await store.create_room(record, TTL)
    assert (await store.get_room(record.room_id)).media_node is None  # type: ignore[union-attr]
    await store.set_media_node(record.room_id, "ws://10.0.0.5:8188")
    moved = await store.get_room(record.room_id)
    assert moved is not None and moved.media_node == "ws://10.0.0.5:8188"
    await store.set_paused(record.room_id, True)  # other fields leave it alone
    assert (await store.get_room(record.room_id)).media_node == "ws://10.0.0.5:8188"  # type: ignore[union-attr]
    await store.set_media_node(record.room_id, None)
    assert (await store.get_room(record.room_id)).media_node is None  # type: ignore[union-attr]


async def test_participants_unseen_for_a_while_are_found_in_any_room(store: Store) -> None:
    await store.create_room(room("aaaa-aaaaa-aaaa"), TTL)
    await store.create_room(room("bbbb-bbbbb-bbbb"), TTL)
    now = time.time()
    await store.mark_seen("aaaa-aaaaa-aaaa", "host", now - 100, TTL)
    await store.mark_seen("bbbb-bbbbb-bbbb", "host", now - 50, TTL)
    await store.mark_seen("bbbb-bbbbb-bbbb", "v0000000001", now, TTL)
    stale = await store.unseen_since(now - 40, 10)
    assert sorted(stale) == [("aaaa-aaaaa-aaaa", "host"), ("bbbb-bbbbb-bbbb", "host")]
    assert len(await store.unseen_since(now - 40, 1)) == 1
    await store.forget_seen("aaaa-aaaaa-aaaa", "host")
    assert await store.unseen_since(now - 40, 10) == [("bbbb-bbbbb-bbbb", "host")]
    # Seen again: no longer stale.
    await store.mark_seen("bbbb-bbbbb-bbbb", "host", now, TTL)
    assert await store.unseen_since(now - 40, 10) == []


async def test_a_message_for_a_viewer_is_refused_once_it_is_not_one(store: Store) -> None:
    record = room()
    await store.create_room(record, TTL)
    rid = record.room_id
    await store.add_viewer(rid, viewer(1), 5, TTL)
    vid = viewer(1).viewer_id
    assert await store.append(rid, vid, {"type": "offer", "from": "host"}, TTL, ROOMY, True) == 1
    assert await store.remove_viewer(rid, vid)
    refused = await store.append(rid, vid, {"type": "offer", "from": "host"}, TTL, ROOMY, True)
    assert refused is Refusal.NO_VIEWER
    assert await store.append(rid, "nobody00000", {"type": "x"}, TTL, ROOMY, True) is (
        Refusal.NO_VIEWER
    )
    # Without the check, any mailbox of the room takes it (server events, the host's).
    assert await store.append(rid, "host", {"type": "answer"}, TTL, ROOMY) == 1


@pytest.mark.redis
async def test_a_cluster_script_sent_to_the_wrong_node_follows_the_redirect(
    redis_cluster: RedisClusterServers,
) -> None:
    """As when a slot moves to another node: the node answers MOVED, and the store runs
    the script through the cluster client instead, which follows it."""
    redis_cluster.flush()
    store = RedisClusterStore(redis_cluster.url)
    await store.open()
    try:
        record = room()
        await store.create_room(record, TTL)
        client = store._redis
        owner = client.get_node_from_key(f"room:{{{record.room_id}}}")
        other = next(n for n in client.get_primaries() if n.name != owner.name)
        real = client.get_node_from_key
        client.get_node_from_key = lambda key, replica=False: other  # a stale layout
        try:
            assert await store.append(record.room_id, "host", {"type": "x"}, TTL, ROOMY) == 1
        finally:
            client.get_node_from_key = real
        assert [m["seq"] for m in await store.read(record.room_id, "host", 0, 0)] == [1]
    finally:
        await store.close()


@pytest.mark.redis
async def test_a_mailbox_channel_lingers_after_its_reader_then_is_dropped(
    redis_server: RedisServer,
) -> None:
    """A long-polling reader comes back within seconds: its channel stays subscribed a
    while, then goes, so channels a process holds are bounded by its readers and time."""
    from peerscreen.store.channels import LINGER

    redis_server.flush()
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        rid = room().room_id
        for name in ("host", "v0000000001", "v0000000002"):
            with store.listen(rid, name):
                pass
        assert store.listened_channels() == 3
        with store.listen(rid, "host"):  # back before it lapsed: still one channel
            assert store.listened_channels() == 3

        async def redis_subscribers() -> int:
            reply = await store._redis.execute_command(
                "PUBSUB", "SHARDNUMSUB", f"room:{{{rid}}}:notify:host"
            )
            return int(reply[1])

        async def subscribed() -> bool:
            return await redis_subscribers() == 1

        async def unsubscribed() -> bool:
            return await redis_subscribers() == 0

        await eventually(subscribed)
        assert store._channels.sweep(time.monotonic() + LINGER / 2) == 0
        assert store._channels.sweep(time.monotonic() + LINGER + 1) == 3
        assert store.listened_channels() == 0

        await eventually(unsubscribed)  # Redis forgot the subscription too
        # A reader still there is never dropped, however long it listens.
        with store.listen(rid, "host"):
            assert store._channels.sweep(time.monotonic() + 10 * LINGER) == 0
            assert store.listened_channels() == 1
    finally:
        await store.close()


async def test_calls_are_counted_over_a_moving_window(store: Store) -> None:
    for _ in range(3):
        assert await store.count_calls("rooms/10.0.0.1", 3, 2.0, True) is None
    wait = await store.count_calls("rooms/10.0.0.1", 3, 2.0, True)
    assert wait is not None and 1 <= wait <= 2
    assert await store.count_calls("rooms/10.0.0.1", 3, 2.0, False) is not None
    assert await store.count_calls("rooms/10.0.0.2", 3, 2.0, True) is None  # its own count
    assert await store.count_calls("api/10.0.0.3", 1, 60.0, False) is None  # looking only
    assert await store.count_calls("api/10.0.0.3", 1, 60.0, True) is None

    async def allowed_again() -> bool:
        return await store.count_calls("rooms/10.0.0.1", 3, 2.0, False) is None

    await eventually(allowed_again, timeout=3.0)


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["redis", "redis-cluster"])
async def test_a_process_hears_other_processes_messages_and_never_its_own(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """A message goes out on its mailbox's channel only when another process reads that
    mailbox: a process that stores and reads it (one process alone, or a host and viewer
    on the same one) wakes its reader itself and hears nothing back."""
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        one, other = RedisStore(server.url), RedisStore(server.url)
    else:
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        one, other = RedisClusterStore(cluster.url), RedisClusterStore(cluster.url)
    await one.open()
    await other.open()
    try:
        rid = room().room_id
        await one.create_room(room(), TTL)
        mine = Recorder()
        one.notifier.subscribe(rid, "host", mine)
        await eventually(lambda: _true(mine.handed == [None]))  # subscribed, and read
        await one.append(rid, "host", {"type": "offer", "from": "v1"}, TTL, ROOMY)
        await other.append(rid, "host", {"type": "answer", "from": "v2"}, TTL, ROOMY)
        await eventually(lambda: _true(len(mine.handed) == 3))
        handed = [(m.seq, m.type) for m in mine.handed[1:] if m is not None]
        assert handed == [(1, "offer"), (2, "answer")]
        # The other process's message came through the channel; its own did not (the
        # channel delivers in order: it would have come first).
        assert one.channel_messages == 1
        assert other.channel_messages == 0
        one.notifier.unsubscribe(rid, "host", mine)
    finally:
        await one.close()
        await other.close()
