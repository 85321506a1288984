"""Logging without secrets: no token material and no room code reaches a log line.

Room codes are the keys to rooms, and tokens are credentials: logs are read by more
people than the server's users would pick. Every line passes through
:class:`RedactingFormatter`, whatever logger wrote it (ours, uvicorn's access log, the
WebSocket library's frame log at debug level); room codes become a short digest, the
same for the same room, so a room's lines can still be followed.
"""

from __future__ import annotations

import hashlib
import logging
import re

from .ids import ROOM_ALPHABET, normalize_room_id

_TOKEN = re.compile(r"\b(host|v[a-z0-9]{10})\.[A-Za-z0-9_-]+")
_ROOM_CODE = re.compile(
    rf"(?<![A-Za-z0-9])[{ROOM_ALPHABET}]{{4}}-[{ROOM_ALPHABET}]{{5}}-[{ROOM_ALPHABET}]{{4}}(?![A-Za-z0-9])"
)
# Room codes as clients typed them into paths and queries (any case, dashes optional).
_ROOM_IN_URL = re.compile(r"(/rooms/|/r/|roomId=)([^/?&\s\"']+)")
_SECRET_FIELD = re.compile(r'("(?:token|hostToken|viewerToken|credential|passcode)"\s*:\s*")[^"]*')


def room_tag(text: str) -> str:
    """A short, stable digest standing for a room code in logs."""
    canonical = normalize_room_id(text) or text
    return "room#" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def redact(line: str) -> str:
    """``line`` with tokens, secret fields and room codes replaced."""
    line = _SECRET_FIELD.sub(r"\1<redacted>", line)
    line = _TOKEN.sub(r"\1.<redacted>", line)
    line = _ROOM_IN_URL.sub(lambda m: m.group(1) + room_tag(m.group(2)), line)
    return _ROOM_CODE.sub(lambda m: room_tag(m.group(0)), line)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never holds a token or a room code."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str) -> None:
    """Log to stderr through the redacting formatter, for our loggers and uvicorn's."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The WebSocket library logs every frame at debug level: hello messages carry tokens,
    # and nothing in a frame log helps an operator that the server's own lines do not.
    for name in ("websockets", "uvicorn.protocols.websockets"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
