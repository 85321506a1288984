"""The in-process notifier: every reader of a mailbox is woken, one or many."""

from __future__ import annotations

from pydantic_core import to_json

from peerscreen.store.base import Notifier, Stored, stored_from_text


async def test_one_and_several_listeners_are_woken_and_cleaned_up() -> None:
    notifier = Notifier()
    with notifier.listen("room", "host") as first:
        notifier.notify("room", "host")
        assert await first.wait(1)
        with notifier.listen("room", "host") as second:
            assert notifier.listener_count() == 2
            notifier.notify("room", "host")
            assert await first.wait(1) and await second.wait(1)
        notifier.notify("room", "host")
        assert await first.wait(1)
        assert notifier.listener_count() == 1
        notifier.notify("room", "other")
        assert not await first.wait(0.05)
    assert notifier.listener_count() == 0
    notifier.notify("room", "host")  # nobody listens: nothing happens


async def test_wake_all_reaches_every_listener() -> None:
    notifier = Notifier()
    with notifier.listen("a", "host") as one, notifier.listen("b", "v1", "v2") as two:
        notifier.wake_all()
        assert await one.wait(1) and await two.wait(1)


def test_a_stored_text_gives_its_number_and_type() -> None:
    text = to_json({"seq": 12, "type": "candidate", "from": "host", "candidate": {"x": '"'}})
    assert stored_from_text(text) == Stored(12, "candidate", text)
    # Not in the stores' order (or spaced): parsed whole, same answer.
    for other in (
        b'{"type": "offer", "seq": 3, "desc": {}}',
        b'{"seq": 3, "type": "offer"}',
        b'{"seq":3,"from":"host","type":"offer"}',
        b'{"seq":-3,"type":"offer"}',
    ):
        parsed = stored_from_text(other)
        assert (parsed.type, parsed.text) == ("offer", other)
        assert abs(parsed.seq) == 3
