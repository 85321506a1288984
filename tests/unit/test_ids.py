import math

from peerscreen import ids


def test_room_ids_are_readable_and_carry_at_least_60_bits() -> None:
    room_id = ids.new_room_id()
    assert [len(g) for g in room_id.split("-")] == list(ids.ROOM_GROUPS)
    assert not set(room_id) & set("01ilo")
    assert ids.ROOM_ID_LENGTH * math.log2(len(ids.ROOM_ALPHABET)) >= 60


def test_room_ids_do_not_repeat() -> None:
    assert len({ids.new_room_id() for _ in range(2000)}) == 2000


def test_typed_room_codes_are_normalized() -> None:
    room_id = ids.new_room_id()
    assert ids.normalize_room_id(room_id.upper()) == room_id
    assert ids.normalize_room_id(room_id.replace("-", "")) == room_id
    assert ids.normalize_room_id(" " + room_id.replace("-", " ") + " ") == room_id


def test_malformed_room_codes_are_refused() -> None:
    assert ids.normalize_room_id("") is None
    assert ids.normalize_room_id("abcd-efghj-kmn") is None  # too short
    assert ids.normalize_room_id("abcd-efghj-kmn0") is None  # 0 is not in the alphabet
    assert ids.normalize_room_id("../../etc/passwd") is None


def test_tokens_match_only_their_digest() -> None:
    token = ids.new_token()
    digest = ids.hash_token(token)
    assert token not in digest
    assert ids.token_matches(token, digest)
    assert not ids.token_matches(token + "x", digest)
    assert not ids.token_matches("", digest)
