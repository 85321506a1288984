"""Errors a client can cause or meet, each with a stable code, HTTP status and message.

The same error reaches REST clients as ``{"error": {"code", "message"}}`` with its status,
and WebSocket clients as an ``error`` message or a close code of ``4000 + status``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import Any


class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    ROOM_NOT_FOUND = "room_not_found"
    VIEWER_NOT_FOUND = "viewer_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    ROOM_FULL = "room_full"
    ROOM_LOCKED = "room_locked"
    PASSCODE_REQUIRED = "passcode_required"
    PASSCODE_WRONG = "passcode_wrong"
    MAILBOX_FULL = "mailbox_full"
    ROOM_ENDED = "room_ended"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    STORE_UNAVAILABLE = "store_unavailable"
    MEDIA_UNAVAILABLE = "media_unavailable"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    HEADERS_TOO_LARGE = "headers_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    UPGRADE_REQUIRED = "upgrade_required"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.VIEWER_NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.ROOM_FULL: 409,
    ErrorCode.ROOM_LOCKED: 403,
    ErrorCode.PASSCODE_REQUIRED: 401,
    ErrorCode.PASSCODE_WRONG: 403,
    ErrorCode.MAILBOX_FULL: 409,
    ErrorCode.ROOM_ENDED: 410,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.MEDIA_UNAVAILABLE: 503,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.HEADERS_TOO_LARGE: 431,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.UPGRADE_REQUIRED: 426,
}


class PeerscreenError(Exception):
    """An error to report to the client that caused it."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.code]

    @property
    def close_code(self) -> int:
        """WebSocket close code: application range 4000-4999, mirroring the HTTP status."""
        return 4000 + self.status

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code.value, "message": self.message}}

    def http_response(self, extra_headers: bytes = b"") -> bytes:
        """A complete HTTP/1.1 response carrying this error, closing the connection: for
        the layers below the web framework (request heads, WebSocket handshakes)."""
        body = json.dumps(self.to_json()).encode()
        status = HTTPStatus(self.status)
        return b"".join(
            [
                b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode()),
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                extra_headers,
                b"connection: close\r\n\r\n",
                body,
            ]
        )


class StoreUnavailable(PeerscreenError):
    """The shared store cannot be reached; the call may succeed if retried later."""

    def __init__(self, detail: str = "") -> None:
        message = "The room store is unavailable; try again in a few seconds."
        super().__init__(ErrorCode.STORE_UNAVAILABLE, message)
        self.detail = detail


def from_validation(errors: Sequence[Any], what: str) -> PeerscreenError:
    """A pydantic validation failure as an API error: unparsable JSON is a 400, a field
    over its size limit a 413, anything else a 422 naming the first fields at fault.

    ``what`` names the input in the unparsable case ("Request body", "Message").
    """
    types = {e.get("type") for e in errors}
    if "json_invalid" in types:
        return PeerscreenError(ErrorCode.INVALID_REQUEST, f"{what} is not valid JSON.")
    if "finite_number" in types:
        return PeerscreenError(
            ErrorCode.INVALID_REQUEST, "Numbers must be finite: NaN and infinities are refused."
        )
    parts = []
    for e in errors[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    message = "; ".join(parts)
    if "string_too_long" in types:
        return PeerscreenError(ErrorCode.PAYLOAD_TOO_LARGE, message)
    return PeerscreenError(ErrorCode.VALIDATION_ERROR, message)


def room_not_found() -> PeerscreenError:
    return PeerscreenError(
        ErrorCode.ROOM_NOT_FOUND, "Room not found. Check the code, or ask the host for a new link."
    )


def ended_message(reason: str | None) -> str:
    """Why a room is over, in words: the host may have ended it or gone away."""
    if reason == "host-left":
        return "The host left: gone longer than the grace period, so the room ended."
    return "The host ended this room."


def room_ended(reason: str | None = None) -> PeerscreenError:
    """410 for a room that is over; ``reason`` is the room's end reason."""
    return PeerscreenError(ErrorCode.ROOM_ENDED, ended_message(reason))


def unauthorized(message: str = "Missing or invalid token.") -> PeerscreenError:
    return PeerscreenError(ErrorCode.UNAUTHORIZED, message)


def forbidden(message: str) -> PeerscreenError:
    return PeerscreenError(ErrorCode.FORBIDDEN, message)


def invalid(message: str) -> PeerscreenError:
    return PeerscreenError(ErrorCode.INVALID_REQUEST, message)
