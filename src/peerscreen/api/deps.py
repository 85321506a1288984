"""Shared pieces of the HTTP handlers: the service, the caller's token, error responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import STATUS, ErrorCode
from ..protocol import ErrorResponse
from ..signaling import Signaling

bearer = HTTPBearer(
    auto_error=False,
    description="A host or viewer token, as returned when the room was created or joined.",
)


# Dependencies are coroutines: FastAPI runs a plain function in a worker thread, a hand-off
# that costs more than the call itself on every request.
async def get_signaling(request: Request) -> Signaling:
    service: Signaling = request.app.state.signaling
    return service


async def get_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str | None:
    return credentials.credentials if credentials is not None else None


SignalingDep = Annotated[Signaling, Depends(get_signaling)]
TokenDep = Annotated[str | None, Depends(get_token)]

_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, not a room code, missing viewerId).",
    401: "Missing or wrong token.",
    403: "The token's role may not make this call.",
    404: "Room or viewer not found.",
    409: "Room full, or the recipient's mailbox is full.",
    410: "The room has ended.",
    413: "Body, SDP or candidate too large.",
    422: "A field is missing or has the wrong type.",
    429: "Over a rate limit; Retry-After says when to try again.",
    503: "The store (Redis) is unreachable; retry shortly.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return; 400/413/422/503 always."""
    wanted = sorted({400, 413, 422, 429, 503, *statuses})
    assert all(s in STATUS.values() for s in wanted), wanted
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS[s]} for s in wanted}


__all__ = ["ErrorCode", "SignalingDep", "TokenDep", "error_responses"]
