"""The classic polling API: ``/api/offer``, ``/api/answer``, ``/api/candidate``,
``/api/diagnostics``, with their original paths and parameters (roomId, role, viewerId).

Messages are addressed per viewer, so one host serves many viewers: offers go to one viewer
(``viewerId``), answers and candidates come back to the host tagged with the viewer id. An
offer posted with no ``viewerId`` is the single-viewer flow's room offer: the first viewer
to ask takes it, as before. A GET returns what is waiting and removes it; ``wait=N`` holds
the request until something arrives (long-poll). Once the room has ended, every call
answers 410 ``room_ended``, a waiting GET at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ..errors import ErrorCode, PeerscreenError
from ..protocol import (
    Accepted,
    AnswerPost,
    AnswerResponse,
    CandidatePost,
    CandidatesResponse,
    OfferPost,
    OfferResponse,
    RoomInfo,
    without_nulls,
)
from ..rooms import Signal, check_viewer_claim, clamp_wait
from ..signaling import parse_room_id
from .deps import SignalingDep, TokenDep, error_responses

router = APIRouter(prefix="/api", tags=["classic polling API"])

RoomIdQuery = Annotated[str, Query(alias="roomId", max_length=64)]
RoleQuery = Annotated[Literal["host", "viewer"] | None, Query()]
ViewerIdQuery = Annotated[str | None, Query(alias="viewerId", max_length=32)]
WaitQuery = Annotated[
    float | None,
    Query(
        allow_inf_nan=False,
        description="Long-poll: hold up to this many seconds (at most 30).",
    ),
]


@router.post(
    "/offer",
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 409, 410),
    summary="Host: send an offer to a viewer (or, without viewerId, to the first viewer)",
)
async def post_offer(body: OfferPost, service: SignalingDep, token: TokenDep) -> Accepted:
    sender = await service.authenticate(parse_room_id(body.room_id), token)
    check_viewer_claim(sender, None, None)
    if body.desc["type"] != "offer":
        raise _wrong_type("offer", body.desc["type"])
    seq = await service.mail.send(sender, Signal.OFFER, body.viewer_id, {"desc": body.desc})
    return Accepted(seq=seq)


@router.get(
    "/offer",
    response_model=OfferResponse,
    responses=error_responses(401, 403, 404, 410),
    summary="Viewer: take the offer waiting for it ({desc: null} if none)",
)
async def get_offer(
    service: SignalingDep,
    token: TokenDep,
    room_id: RoomIdQuery,
    role: RoleQuery = None,
    viewer_id: ViewerIdQuery = None,
    wait: WaitQuery = None,
) -> OfferResponse:
    viewer = await service.authenticate(parse_room_id(room_id), token)
    check_viewer_claim(viewer, role, viewer_id)
    offer = await service.polls.take_offer(viewer, clamp_wait(wait, service.settings.max_wait))
    return OfferResponse(desc=offer["desc"] if offer else None)


@router.post(
    "/answer",
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 409, 410),
    summary="Viewer: send its answer to the host",
)
async def post_answer(body: AnswerPost, service: SignalingDep, token: TokenDep) -> Accepted:
    sender = await service.authenticate(parse_room_id(body.room_id), token)
    check_viewer_claim(sender, "viewer", body.viewer_id)
    if body.desc["type"] != "answer":
        raise _wrong_type("answer", body.desc["type"])
    seq = await service.mail.send(sender, Signal.ANSWER, None, {"desc": body.desc})
    return Accepted(seq=seq)


@router.get(
    "/answer",
    response_model=AnswerResponse,
    responses=error_responses(401, 403, 404, 410),
    summary="Host: take the viewers' answers (desc is the oldest; answers lists all)",
)
async def get_answer(
    service: SignalingDep,
    token: TokenDep,
    room_id: RoomIdQuery,
    role: RoleQuery = None,
    wait: WaitQuery = None,
) -> AnswerResponse:
    host = await service.authenticate(parse_room_id(room_id), token)
    check_viewer_claim(host, role or "host", None)
    taken = await service.polls.take(host, ["answer"], clamp_wait(wait, service.settings.max_wait))
    answers = [{"viewerId": m["from"], "desc": m["desc"]} for m in taken]
    first = answers[0] if answers else None
    return AnswerResponse(
        desc=first["desc"] if first else None,
        viewerId=first["viewerId"] if first else None,
        answers=answers,
    )


@router.post(
    "/candidate",
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 409, 410),
    summary="Send an ICE candidate: host to a viewer (viewerId), viewer to the host",
)
async def post_candidate(body: CandidatePost, service: SignalingDep, token: TokenDep) -> Accepted:
    sender = await service.authenticate(parse_room_id(body.room_id), token)
    check_viewer_claim(sender, body.role, body.viewer_id)
    to = body.viewer_id if sender.is_host else None
    payload = {"candidate": without_nulls(body.candidate)}
    seq = await service.mail.send(sender, Signal.CANDIDATE, to, payload)
    return Accepted(seq=seq)


@router.get(
    "/candidate",
    response_model=CandidatesResponse,
    responses=error_responses(401, 403, 404, 410),
    summary="Take the ICE candidates waiting for the caller (the host's carry viewerId)",
)
async def get_candidates(
    service: SignalingDep,
    token: TokenDep,
    room_id: RoomIdQuery,
    role: RoleQuery = None,
    viewer_id: ViewerIdQuery = None,
    wait: WaitQuery = None,
) -> CandidatesResponse:
    caller = await service.authenticate(parse_room_id(room_id), token)
    check_viewer_claim(caller, role, viewer_id)
    taken = await service.polls.take(
        caller, ["candidate"], clamp_wait(wait, service.settings.max_wait)
    )
    candidates: list[dict[str, Any]] = []
    for message in taken:
        candidate = dict(message["candidate"])
        if caller.is_host:
            candidate["viewerId"] = message["from"]
        candidates.append(candidate)
    return CandidatesResponse(candidates=candidates)


@router.get(
    "/diagnostics",
    response_model=RoomInfo,
    responses=error_responses(401, 404),
    summary="Does the room exist, is the host there, how many viewers (host token: each one)",
)
async def diagnostics(
    service: SignalingDep, token: TokenDep, room_id: RoomIdQuery
) -> dict[str, Any]:
    return await service.room_info(parse_room_id(room_id), token)


def _wrong_type(expected: str, got: str) -> PeerscreenError:
    return PeerscreenError(
        ErrorCode.VALIDATION_ERROR, f"desc.type must be '{expected}' here, not '{got}'."
    )
