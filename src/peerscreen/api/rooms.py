"""REST endpoints for rooms, viewers and mailboxes."""

from __future__ import annotations

import hmac
import io
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ..errors import ErrorCode, PeerscreenError, forbidden, unauthorized
from ..ice import ice_servers
from ..links import room_url
from ..protocol import (
    Accepted,
    ChatHistory,
    ChatPost,
    ConnectionReport,
    ErrorResponse,
    JoinOptions,
    Messages,
    RoomAccess,
    RoomCreated,
    RoomInfo,
    RoomOptions,
    SignalPost,
    ViewerJoined,
)
from ..ratelimit import Limit, client_ip_of
from ..rooms import HOST_ID, SFU_ID, Signal, clamp_wait
from ..signaling import parse_room_id
from .deps import SignalingDep, TokenDep, error_responses

router = APIRouter(prefix="/api", tags=["rooms"])

WaitQuery = Annotated[
    float | None,
    Query(
        allow_inf_nan=False,
        description="Long-poll: hold the request up to this many seconds (at most 30).",
    ),
]


@router.post(
    "/rooms",
    status_code=201,
    response_model=RoomCreated,
    responses=error_responses(401, 429),
    summary="Create a room; returns its id and the host token",
)
async def create_room(
    request: Request, service: SignalingDep, token: TokenDep, body: RoomOptions | None = None
) -> RoomCreated:
    # The secret first: calls without it must not use up anyone's room quota.
    secret = service.settings.auth_secret
    if secret is not None:
        expected = secret.get_secret_value().encode()
        if token is None or not hmac.compare_digest(token.encode(), expected):
            raise unauthorized("Creating a room needs the server's AUTH_SECRET as bearer token.")
    url = _room_url(request, "")  # a bad Host header fails before a room is made
    await request.app.state.rate_limits.hit(
        Limit.ROOMS, client_ip_of(request.scope, request.app.state.trusted_proxies)
    )
    room, host_token = await service.create_room(body.passcode if body else None)
    return RoomCreated(
        roomId=room.room_id,
        hostToken=host_token,
        expiresAt=room.created_at + service.settings.room_ttl,
        maxViewers=room.max_viewers,
        url=url + room.room_id,
        ice=ice_servers(service.settings, room.room_id, HOST_ID),
    )


@router.get(
    "/rooms/{room_id}",
    response_model=RoomInfo,
    responses=error_responses(401, 404),
    summary="Room status; with the host token, each viewer's presence too",
)
async def get_room(room_id: str, service: SignalingDep, token: TokenDep) -> dict[str, Any]:
    return await service.room_info(parse_room_id(room_id), token)


@router.get(
    "/rooms/{room_id}/qr.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "QR code of the room link"},
        **error_responses(404),
    },
    summary="The room link as a QR code, for viewers on phones",
)
async def room_qr(room_id: str, request: Request, service: SignalingDep) -> Response:
    canonical = parse_room_id(room_id)
    await service.load_room(canonical)
    buffer = io.BytesIO()
    segno.make(_room_url(request, canonical), error="m").save(
        buffer, kind="svg", scale=6, border=2, dark="#1d2330", xmldecl=False
    )
    return Response(
        buffer.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


def _room_url(request: Request, room_id: str) -> str:
    state = request.app.state
    return room_url(request.scope, state.settings, state.trusted_proxies, room_id)


@router.delete(
    "/rooms/{room_id}",
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 410),
    summary="End the room (host); every viewer is told at once",
)
async def end_room(room_id: str, service: SignalingDep, token: TokenDep) -> Accepted:
    host = await service.authenticate(parse_room_id(room_id), token)
    if not host.is_host:
        raise forbidden(
            "Only the host can end the room; viewers leave with DELETE .../viewers/{id}."
        )
    await service.end_room(host.room_id, "host-ended")
    return Accepted()


@router.patch(
    "/rooms/{room_id}",
    response_model=RoomInfo,
    responses=error_responses(401, 403, 404, 410),
    summary="Host: lock the room, set or clear its passcode, pause or resume sharing",
)
async def set_access(
    room_id: str, body: RoomAccess, service: SignalingDep, token: TokenDep
) -> dict[str, Any]:
    host = await service.authenticate(parse_room_id(room_id), token)
    clear = "passcode" in body.model_fields_set and body.passcode is None
    await service.access.set_access(host, body.locked, body.passcode, clear)
    if body.paused is not None:
        await service.set_paused(host, body.paused)
    return await service.room_info(host.room_id, token)


@router.post(
    "/rooms/{room_id}/viewers",
    status_code=201,
    response_model=ViewerJoined,
    responses=error_responses(401, 403, 404, 409, 410, 429),
    summary="Join a room as a viewer (with its passcode if it has one); returns a token",
)
async def join_room(
    room_id: str, request: Request, service: SignalingDep, body: JoinOptions | None = None
) -> ViewerJoined:
    client = client_ip_of(request.scope, request.app.state.trusted_proxies)
    canonical = parse_room_id(room_id)
    viewer, token = await service.join(
        canonical,
        body.passcode if body else None,
        client,
        body.name if body else None,
    )
    return ViewerJoined(
        roomId=canonical,
        viewerId=viewer.viewer_id,
        viewerToken=token,
        expiresAt=viewer.joined_at + service.settings.room_ttl,
        ice=ice_servers(service.settings, canonical, viewer.viewer_id),
    )


@router.delete(
    "/rooms/{room_id}/viewers/{viewer_id}",
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 410),
    summary="A viewer leaves (its own token) or is removed (host token); the host is told",
)
async def remove_viewer(
    room_id: str, viewer_id: str, service: SignalingDep, token: TokenDep
) -> Accepted:
    actor = await service.authenticate(parse_room_id(room_id), token)
    reason = "removed" if actor.is_host else "left"
    await service.remove_viewer(actor, viewer_id, reason)
    return Accepted()


@router.get(
    "/rooms/{room_id}/messages",
    response_model=Messages,
    responses=error_responses(401, 403, 404),
    summary="Messages addressed to the caller, after a sequence number (long-poll with wait=)",
)
async def get_messages(
    room_id: str,
    service: SignalingDep,
    token: TokenDep,
    after: Annotated[
        int,
        Query(
            ge=0,
            description="Last sequence number already received; earlier ones are "
            "dropped, later ones returned.",
        ),
    ] = 0,
    wait: WaitQuery = None,
) -> Messages:
    participant = await service.authenticate(parse_room_id(room_id), token, allow_ended=True)
    seconds = clamp_wait(wait, service.settings.max_wait)
    messages = await service.polls.receive(participant, after, after, seconds)
    last = messages[-1]["seq"] if messages else after
    return Messages(messages=messages, lastSeq=last)


@router.post(
    "/rooms/{room_id}/messages",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 409, 410),
    summary="Send an offer, answer or candidate to another participant",
)
async def post_message(
    room_id: str, body: SignalPost, service: SignalingDep, token: TokenDep
) -> Accepted:
    sender = await service.authenticate(parse_room_id(room_id), token)
    # Broadcast rooms, as on the socket: the media server is addressed "sfu".
    if body.type == "subscribe":
        await service.broadcasts.subscribe(sender)
        return Accepted()
    if body.type == "switched":
        await service.broadcasts.switched(sender)
        return Accepted()
    if body.to == SFU_ID:
        await service.broadcasts.signal(sender, Signal(body.type), body.desc, body.candidate)
        return Accepted()
    seq = await service.mail.send_addressed(sender, body.type, body.to, body.desc, body.candidate)
    return Accepted(seq=seq)


@router.post(
    "/rooms/{room_id}/chat",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 410, 429),
    summary="Send a chat message to everyone in the room",
)
async def post_chat(
    room_id: str, body: ChatPost, service: SignalingDep, token: TokenDep
) -> Accepted:
    sender = await service.authenticate(parse_room_id(room_id), token)
    await service.chat.post(sender, body.text, body.name)
    return Accepted()


@router.get(
    "/rooms/{room_id}/chat",
    response_model=ChatHistory,
    responses=error_responses(401, 403, 404),
    summary="The room's last 200 chat messages, for those who join late",
)
async def get_chat(room_id: str, service: SignalingDep, token: TokenDep) -> ChatHistory:
    participant = await service.authenticate(parse_room_id(room_id), token, allow_ended=True)
    return ChatHistory(messages=await service.chat.history(participant))


@router.post(
    "/rooms/{room_id}/report",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 410),
    summary="A page reports how its connection went (setup time, direct or relay)",
)
async def post_report(
    room_id: str, body: ConnectionReport, service: SignalingDep, token: TokenDep
) -> Accepted:
    await service.authenticate(parse_room_id(room_id), token)
    service.metrics.setup_seconds.labels(body.path).observe(body.setupMs / 1000)
    return Accepted()


@router.get(
    "/rooms/{room_id}/ice-servers",
    responses=error_responses(401, 403, 404),
    summary="STUN/TURN servers for this participant, with short-lived TURN credentials",
)
async def get_ice_servers(room_id: str, service: SignalingDep, token: TokenDep) -> dict[str, Any]:
    participant = await service.authenticate(parse_room_id(room_id), token)
    return ice_servers(service.settings, participant.room_id, participant.participant_id)


@router.get(
    "/rooms/{room_id}/ws",
    status_code=426,
    responses={
        426: {"model": ErrorResponse, "description": "Upgrade to WebSocket: docs/protocol.md."},
        **error_responses(),
    },
    summary="The participant's WebSocket (push delivery); plain HTTP gets 426",
)
async def socket_info(room_id: str) -> Response:
    error = PeerscreenError(
        ErrorCode.UPGRADE_REQUIRED,
        "This endpoint speaks WebSocket: connect with ws:// or wss:// and send a hello "
        "message (see docs/protocol.md).",
    )
    return JSONResponse(error.to_json(), status_code=error.status, headers={"Upgrade": "websocket"})
