"""The room rules, without server or store."""

import pytest

from peerscreen.errors import ErrorCode, PeerscreenError
from peerscreen.rooms import (
    HOST_ID,
    IllegalTransition,
    Participant,
    Presence,
    Role,
    Signal,
    check_capacity,
    check_viewer_claim,
    clamp_wait,
    move,
    presence_at,
    route,
)

HOST = Participant("room", HOST_ID, Role.HOST)
ALICE = Participant("room", "valiceaaaaa", Role.VIEWER)
VIEWERS = {"valiceaaaaa", "vbobbbbbbbb"}


def test_host_offers_and_candidates_go_to_the_named_viewer() -> None:
    assert route(HOST, Signal.OFFER, "vbobbbbbbbb", True) == "vbobbbbbbbb"
    assert route(HOST, Signal.CANDIDATE, "valiceaaaaa", True) == "valiceaaaaa"


def test_unaddressed_host_offers_and_candidates_belong_to_the_room_offer() -> None:
    assert route(HOST, Signal.OFFER, None, False) is None
    assert route(HOST, Signal.CANDIDATE, None, False) is None


def test_viewer_answers_and_candidates_go_to_the_host() -> None:
    assert route(ALICE, Signal.ANSWER, None, False) == HOST_ID
    assert route(ALICE, Signal.CANDIDATE, HOST_ID, False) == HOST_ID


@pytest.mark.parametrize(
    ("sender", "signal", "to", "code"),
    [
        (ALICE, Signal.OFFER, None, ErrorCode.FORBIDDEN),
        (HOST, Signal.ANSWER, "valiceaaaaa", ErrorCode.FORBIDDEN),
        (ALICE, Signal.CANDIDATE, "vbobbbbbbbb", ErrorCode.FORBIDDEN),
        (HOST, Signal.OFFER, "vgoneeeeeee", ErrorCode.VIEWER_NOT_FOUND),
    ],
)
def test_role_violations_are_refused(
    sender: Participant, signal: Signal, to: str | None, code: ErrorCode
) -> None:
    with pytest.raises(PeerscreenError) as caught:
        route(sender, signal, to, to in VIEWERS)
    assert caught.value.code is code


def test_callers_cannot_claim_another_role_or_viewer() -> None:
    check_viewer_claim(ALICE, "viewer", "valiceaaaaa")
    check_viewer_claim(HOST, "host", "vbobbbbbbbb")
    for role, viewer in (("host", None), ("viewer", "vbobbbbbbbb")):
        with pytest.raises(PeerscreenError) as caught:
            check_viewer_claim(ALICE, role, viewer)
        assert caught.value.code is ErrorCode.FORBIDDEN


def test_capacity() -> None:
    check_capacity(9, 10)
    with pytest.raises(PeerscreenError) as caught:
        check_capacity(10, 10)
    assert caught.value.code is ErrorCode.ROOM_FULL
    assert caught.value.status == 409
    assert "Room is full" in caught.value.message


def test_presence_from_last_seen() -> None:
    assert presence_at(None, 100, 25, 30) is Presence.JOINED
    assert presence_at(90, 100, 25, 30) is Presence.CONNECTED
    assert presence_at(72, 100, 25, 30) is Presence.AWAY
    assert presence_at(60, 100, 25, 30) is Presence.LEFT


def test_presence_moves_refuse_coming_back_after_leaving() -> None:
    assert move("v", Presence.JOINED, Presence.CONNECTED) is Presence.CONNECTED
    assert move("v", Presence.AWAY, Presence.CONNECTED) is Presence.CONNECTED
    with pytest.raises(IllegalTransition, match="is left and cannot become connected"):
        move("v", Presence.LEFT, Presence.CONNECTED)


def test_long_poll_wait_is_bounded() -> None:
    assert clamp_wait(None, 30) == 0
    assert clamp_wait(30, 30) == 30
    for bad in (-1, 30.5):
        with pytest.raises(PeerscreenError) as caught:
            clamp_wait(bad, 30)
        assert caught.value.status == 400


def test_close_codes_mirror_http_statuses() -> None:
    error = PeerscreenError(ErrorCode.UNAUTHORIZED, "no")
    assert (error.status, error.close_code) == (401, 4401)
    assert error.to_json() == {"error": {"code": "unauthorized", "message": "no"}}
