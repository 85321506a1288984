"""Room ids, participant ids and secret tokens.

Room ids are read aloud and typed by people, so the alphabet leaves out the characters
people confuse (0/o, 1/i/l) and the id is grouped like a phone number. 13 symbols from a
31-symbol alphabet carry 64.4 bits: unguessable by enumeration.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

ROOM_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ROOM_GROUPS = (4, 5, 4)
ROOM_ID_LENGTH = sum(ROOM_GROUPS)

_ROOM_ID_RE = re.compile("^" + "-".join(f"[{ROOM_ALPHABET}]{{{n}}}" for n in ROOM_GROUPS) + "$")
_VIEWER_ID_RE = re.compile(f"^v[{ROOM_ALPHABET}]{{10}}$")
_SEPARATORS = re.compile(r"[\s\-_.]+")


def new_room_id() -> str:
    """A fresh random room id such as ``k7dm-x9paq-3hrt``."""
    symbols = "".join(secrets.choice(ROOM_ALPHABET) for _ in range(ROOM_ID_LENGTH))
    groups, start = [], 0
    for size in ROOM_GROUPS:
        groups.append(symbols[start : start + size])
        start += size
    return "-".join(groups)


def normalize_room_id(text: str) -> str | None:
    """The canonical form of a typed room id, or None when it cannot be one.

    People type codes in upper case, without dashes or with spaces: all are accepted.
    """
    compact = _SEPARATORS.sub("", text.strip().lower())
    if len(compact) != ROOM_ID_LENGTH:
        return None
    groups, start = [], 0
    for size in ROOM_GROUPS:
        groups.append(compact[start : start + size])
        start += size
    candidate = "-".join(groups)
    return candidate if _ROOM_ID_RE.match(candidate) else None


def new_viewer_id() -> str:
    """A viewer id: not secret, unique within a room."""
    return "v" + "".join(secrets.choice(ROOM_ALPHABET) for _ in range(10))


def is_viewer_id(text: str) -> bool:
    return bool(_VIEWER_ID_RE.match(text))


def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are stored only as digests, so a store dump reveals no credential."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_passcode(passcode: str, room_id: str) -> str:
    """Passcodes are short and chosen by people: a slow, salted hash (the room id is the
    salt), on top of the rate limit on attempts."""
    return hashlib.pbkdf2_hmac(
        "sha256", passcode.encode("utf-8", "surrogatepass"), room_id.encode(), 20_000
    ).hex()


def passcode_matches(passcode: str, room_id: str, digest: str) -> bool:
    return hmac.compare_digest(hash_passcode(passcode, room_id), digest)


def token_matches(token: str, digest: str) -> bool:
    """Constant-time check of a presented token against a stored digest."""
    return hmac.compare_digest(hash_token(token), digest)
