"""Wire formats: what clients send, validated with pydantic, over REST and WebSocket.

The documented protocol is ``docs/protocol.md``; this module is its executable form.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

MAX_SDP_CHARS = 65536
MAX_CANDIDATE_CHARS = 2048
MAX_BODY_BYTES = 128 * 1024
"""Largest request body or WebSocket message: an SDP at its limit, its line breaks
escaped in JSON, plus framing. Each open connection may buffer this much."""

RoomIdText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ViewerIdText = Annotated[str, StringConstraints(pattern=r"^v[a-z0-9]{10}$")]
ParticipantIdText = Annotated[str, StringConstraints(pattern=r"^(host|sfu|v[a-z0-9]{10})$")]
"""A participant, or ``sfu``: the room's media server, in a broadcast room."""
ClientMessageId = Annotated[str, StringConstraints(max_length=64)] | int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# What signals carry, and every WebSocket message, validate into plain dictionaries
# (TypedDicts), not models: a signal is relayed as the dictionary it arrived as, and
# building a model per message, then a dictionary from it, showed in the relay's CPU.


class SessionDescription(TypedDict):
    """An RTCSessionDescriptionInit."""

    __pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[misc]

    type: Literal["offer", "answer"]
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]


class IceCandidate(TypedDict):
    """An RTCIceCandidateInit; an empty ``candidate`` marks the end of candidates."""

    # Browsers' RTCIceCandidate.toJSON() gives exactly these fields; others are dropped.
    __pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[misc]

    candidate: Annotated[str, StringConstraints(max_length=MAX_CANDIDATE_CHARS)]
    sdpMid: NotRequired[Annotated[str, StringConstraints(max_length=64)] | None]
    sdpMLineIndex: NotRequired[Annotated[int, Field(ge=0, le=1023)] | None]
    usernameFragment: NotRequired[Annotated[str, StringConstraints(max_length=256)] | None]


# --- REST bodies (the original design's /api/offer, /api/answer, /api/candidate) ---------


class OfferPost(_Strict):
    room_id: RoomIdText = Field(alias="roomId")
    desc: SessionDescription
    viewer_id: ViewerIdText | None = Field(
        None, alias="viewerId", description="The viewer this offer is for."
    )


class AnswerPost(_Strict):
    room_id: RoomIdText = Field(alias="roomId")
    desc: SessionDescription
    viewer_id: ViewerIdText | None = Field(None, alias="viewerId")


class CandidatePost(_Strict):
    room_id: RoomIdText = Field(alias="roomId")
    role: Literal["host", "viewer"] | None = None
    viewer_id: ViewerIdText | None = Field(
        None, alias="viewerId", description="Host: the viewer this is for. Viewer: itself."
    )
    candidate: IceCandidate


class SignalPost(_Strict):
    """Body of POST /api/rooms/{id}/messages: one signaling message, or a viewer's
    ``subscribe`` / ``switched`` in a broadcast room."""

    type: Literal["offer", "answer", "candidate", "subscribe", "switched"]
    to: ParticipantIdText | None = None
    desc: SessionDescription | None = None
    candidate: IceCandidate | None = None


# --- WebSocket messages from clients ------------------------------------------------------

_FORBID_EXTRA = ConfigDict(extra="forbid")


class HelloMessage(TypedDict):
    __pydantic_config__ = _FORBID_EXTRA  # type: ignore[misc]

    type: Literal["hello"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    resume: NotRequired[Annotated[int, Field(ge=0)]]


class WsSignal(TypedDict):
    __pydantic_config__ = _FORBID_EXTRA  # type: ignore[misc]

    type: Literal["offer", "answer", "candidate"]
    id: NotRequired[ClientMessageId | None]
    to: NotRequired[ParticipantIdText | None]
    desc: NotRequired[SessionDescription | None]
    candidate: NotRequired[IceCandidate | None]


ChatText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]
"""A display name; blank means the default ("Host", "Viewer 7k2m")."""


class ChatPost(_Strict):
    """A chat message: plain text, shown as text (never as HTML) to everyone in the room."""

    text: ChatText
    name: DisplayName | None = Field(None, description="The sender's display name.")


class WsChat(TypedDict):
    __pydantic_config__ = _FORBID_EXTRA  # type: ignore[misc]

    type: Literal["chat"]
    id: NotRequired[ClientMessageId | None]
    text: ChatText
    name: NotRequired[DisplayName | None]


class ConnectionReport(_Strict):
    """What a viewer's page measured about its connection, for /metrics."""

    setupMs: Annotated[float, Field(ge=0, le=600_000, allow_inf_nan=False)] = Field(
        description="From joining to the first rendered frame."
    )
    path: Literal["direct", "relay"] = Field(description="Whether media went through TURN.")


class ChatHistory(BaseModel):
    messages: list[dict[str, Any]]


class AckMessage(TypedDict):
    __pydantic_config__ = _FORBID_EXTRA  # type: ignore[misc]

    type: Literal["ack"]
    seq: Annotated[int, Field(ge=0)]


class PingMessage(TypedDict):
    __pydantic_config__ = _FORBID_EXTRA  # type: ignore[misc]

    type: Literal["ping", "pong"]
    id: NotRequired[ClientMessageId | None]


class LeaveMessage(TypedDict):
    __pydantic_config__ = _FORBID_EXTRA  # type: ignore[misc]

    type: Literal["leave"]
    id: NotRequired[ClientMessageId | None]


class BroadcastMessage(TypedDict):
    """A viewer in a broadcast room: ``subscribe`` asks the media server for an offer;
    ``switched`` says its broadcast stream renders, so the host may close their mesh
    connection."""

    __pydantic_config__ = _FORBID_EXTRA  # type: ignore[misc]

    type: Literal["subscribe", "switched"]
    id: NotRequired[ClientMessageId | None]


ClientMessage = Annotated[
    WsSignal | WsChat | AckMessage | PingMessage | LeaveMessage | HelloMessage | BroadcastMessage,
    Field(discriminator="type"),
]
client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
hello_adapter: TypeAdapter[HelloMessage] = TypeAdapter(HelloMessage)


def signal_payload(
    kind: str, desc: SessionDescription | None, candidate: IceCandidate | None
) -> dict[str, Any]:
    """The payload of a signaling message, checking the field its kind needs is there."""
    if kind in ("offer", "answer"):
        if desc is None:
            raise ValueError(f"an {kind} needs 'desc'")
        if desc["type"] != kind:
            raise ValueError(f"an {kind} needs desc.type '{kind}', got '{desc['type']}'")
        return {"desc": desc}
    if candidate is None:
        raise ValueError("a candidate message needs 'candidate'")
    return {"candidate": without_nulls(candidate)}


def without_nulls(candidate: IceCandidate) -> IceCandidate:
    """A candidate as relayed: fields given as null are left out, as if not given."""
    if None in candidate.values():
        return cast(
            IceCandidate, {name: value for name, value in candidate.items() if value is not None}
        )
    return candidate


# --- Responses ----------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


Passcode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class RoomOptions(_Strict):
    """Optional body of POST /api/rooms."""

    passcode: Passcode | None = Field(None, description="Viewers must give it to join.")


class JoinOptions(_Strict):
    """Optional body of POST /api/rooms/{id}/viewers."""

    passcode: Passcode | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = Field(
        None, description="Display name, shown to the host."
    )


class RoomAccess(_Strict):
    """Body of PATCH /api/rooms/{id}: lock the room, set or clear the passcode."""

    locked: bool | None = Field(None, description="True: no new viewers may join.")
    paused: bool | None = Field(
        None, description="True: the host paused sharing (viewers are told); false: resumed."
    )
    passcode: Passcode | None = Field(
        None, description="A new passcode; null (given explicitly) clears it."
    )


ICE_FIELD_DESCRIPTION = (
    "This participant's STUN/TURN servers, as GET /api/rooms/{id}/ice-servers answers: "
    "given here so that connecting needs no second round trip."
)


class RoomCreated(BaseModel):
    roomId: str
    hostToken: str
    expiresAt: float
    maxViewers: int
    url: str
    ice: dict[str, Any] = Field(description=ICE_FIELD_DESCRIPTION)


class ViewerJoined(BaseModel):
    roomId: str
    viewerId: str
    viewerToken: str
    expiresAt: float
    ice: dict[str, Any] = Field(description=ICE_FIELD_DESCRIPTION)


class ViewerInfo(BaseModel):
    viewerId: str
    presence: str
    joinedAt: float


class RoomInfo(BaseModel):
    roomId: str
    exists: bool
    ended: bool
    hostPresence: str
    hostPresent: bool
    viewerCount: int
    maxViewers: int
    full: bool
    locked: bool = False
    paused: bool = False
    passcodeRequired: bool = False
    path: Literal["mesh", "broadcast"] = Field(
        "mesh",
        description="mesh: viewers receive from the host's browser; broadcast: from the "
        "room's media server.",
    )
    expiresAt: float
    viewers: list[ViewerInfo] | None = Field(
        None, description="Each viewer's presence; only with the host's token."
    )


class Accepted(BaseModel):
    ok: bool = True
    seq: int | None = Field(None, description="Position of the message in the recipient's queue.")


class Messages(BaseModel):
    messages: list[dict[str, Any]]
    lastSeq: int


class OfferResponse(BaseModel):
    desc: dict[str, Any] | None


class AnswerResponse(BaseModel):
    desc: dict[str, Any] | None
    viewerId: str | None = None
    answers: list[dict[str, Any]] = Field(
        default_factory=list, description="Every answer taken, each with its viewerId."
    )


class CandidatesResponse(BaseModel):
    candidates: list[dict[str, Any]]
