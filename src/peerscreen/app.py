"""The ASGI application: routes, error handling, and the store's lifetime."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from . import __version__
from .api import classic, rooms, socket
from .api.deps import error_responses
from .collector import FreezingCollector
from .config import Settings
from .errors import (
    ErrorCode,
    PeerscreenError,
    StoreUnavailable,
    from_validation,
    unauthorized,
)
from .gate import ConnectionGate
from .ice import check_ice_servers as check_ice_servers_for
from .ice import media_server_turn, relay_configured
from .metrics import CONTENT_TYPE
from .protocol import MAX_BODY_BYTES
from .ratelimit import (
    Limit,
    Network,
    RateLimited,
    RateLimits,
    client_address,
    client_ip_of,
    is_trusted,
    parse_networks,
)
from .signaling import Signaling
from .store import create_store
from .web_security import SecurityHeaders
from .websocket import Handler, Refused, UpgradeRequest, WebSocketProtocol

logger = logging.getLogger("peerscreen")

WEB_DIR = resources.files("peerscreen") / "web"

DESCRIPTION = """
Signaling for peer-to-peer screen sharing. A host creates a room (`POST /api/rooms`),
viewers join it (`POST /api/rooms/{id}/viewers`), and offers, answers and ICE candidates
travel between them through per-participant mailboxes.

Delivery: push over the WebSocket `/api/rooms/{id}/ws` (protocol in `docs/protocol.md`),
or long-poll with `wait=` on the GET endpoints. Every call carries the caller's token as
`Authorization: Bearer <token>`. Errors are `{"error": {"code", "message"}}`.
"""


def error_response(error: PeerscreenError) -> JSONResponse:
    headers = None
    if isinstance(error, StoreUnavailable):
        headers = {"Retry-After": "2"}
    elif isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after)}
    return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


class ApiRateLimit:
    """Counts every API call (and socket opened) against its client address's limit."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            limits: RateLimits = self.state.rate_limits
            try:
                await limits.hit(Limit.API, client_ip_of(scope, self.state.trusted_proxies))
            except PeerscreenError as error:
                self.state.signaling.metrics.errors.labels(error.code.value).inc()
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over the limit with 413 before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.limit:
                    await self._refuse(scope, receive, send)
                    return
                await self.app(scope, receive, send)  # the server enforces the length
                return
        # No length given (chunked): read up to the limit here, then hand the body on.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    def _message(self) -> str:
        return f"Request body is larger than {self.limit // 1024} KB."

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(PeerscreenError(ErrorCode.PAYLOAD_TOO_LARGE, self._message()))
        await response(scope, receive, send)


def count_error(request: Request, code: str) -> None:
    signaling: Signaling | None = getattr(request.app.state, "signaling", None)
    if signaling is not None:
        signaling.metrics.errors.labels(code).inc()


def _replay(chunks: list[bytes], final: Message | None, receive: Receive) -> Receive:
    """A receive callable that yields an already-read body, then defers to the server."""
    pending: list[Message] = (
        [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
        if final is None
        else [final]
    )

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class PeerscreenApp:
    """The ASGI entry point: HTTP goes to the FastAPI application, WebSockets straight to
    the socket endpoint (see :mod:`peerscreen.api.socket` for why).

    Connections are capped per client address by the HTTP server
    (:mod:`peerscreen.http_server`), except those from trusted proxies, which carry many
    clients: for them the cap applies here, to each client's requests and sockets in
    progress, by the address the proxy names.
    """

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.proxies: list[Network] = api.state.trusted_proxies
        self.gate = ConnectionGate(api.state.settings.max_connections_per_client, [])

    def begin_shutdown(self) -> None:
        """The server is stopping: waiting long-polls return now."""
        signaling: Signaling | None = getattr(self.api.state, "signaling", None)
        if signaling is not None:
            signaling.polls.drain()

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Sockets are counted in accept_socket: they reach peerscreen's own protocol,
        # not this ASGI entry point.
        if self.proxies and scope["type"] == "http":
            peer = scope.get("client")
            if peer is not None and is_trusted(peer[0], self.proxies):
                return self._counted(scope, receive, send)
        return self._route(scope, receive, send)

    def _route(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket":
            return _no_asgi_websockets(receive, send)
        return self.api(scope, receive, send)

    def accept_socket(self, ws: WebSocketProtocol, request: UpgradeRequest) -> Handler:
        """The handler of a WebSocket upgrade (see :mod:`peerscreen.websocket`); a
        PeerscreenError refuses the handshake with its HTTP status."""
        sockets: socket.Sockets | None = getattr(self.api.state, "sockets", None)
        if sockets is None:
            raise StoreUnavailable("not started")
        peer = request.peer[0] if request.peer else None
        forwarded = request.headers.get(b"x-forwarded-for")
        client_ip = client_address(
            peer, forwarded.decode("latin-1") if forwarded else None, self.proxies
        )
        # A proxy carries many clients: the cap applies to the one it names.
        proxied = peer is not None and self.proxies and is_trusted(peer, self.proxies)
        if proxied and not self.gate.admit(id(ws), client_ip):
            return Refused(ws, self.gate.refusal().close_code, "Too many connections")
        return sockets.accept(
            ws, request.path, client_ip, request.headers.get(b"sec-websocket-protocol")
        )

    def socket_closed(self, ws: WebSocketProtocol) -> None:
        self.gate.release(id(ws))

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        holder = id(scope)
        if not self.gate.admit(holder, client_ip_of(scope, self.proxies)):
            error = self.gate.refusal()
            response = error_response(error)
            response.headers["Retry-After"] = "5"
            await response(scope, receive, send)
            return
        try:
            await self._route(scope, receive, send)
        finally:
            self.gate.release(holder)


async def _no_asgi_websockets(receive: Receive, send: Send) -> None:
    """WebSockets are served by peerscreen's own protocol (``peerscreen serve``), not ASGI."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})


def create_app(settings: Settings | None = None) -> PeerscreenApp:
    """The peerscreen application for the given settings (defaults: environment)."""
    return PeerscreenApp(create_api(settings))


def create_api(settings: Settings | None = None) -> FastAPI:
    """The HTTP API as a FastAPI application; its lifespan runs the store and sockets."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = create_store(settings)
        await store.open()
        rate_limits = RateLimits(settings, store)
        signaling = Signaling(settings, store, rate_limits)
        await signaling.start()
        sockets = socket.Sockets(signaling, rate_limits)
        await sockets.start()
        app.state.signaling = signaling
        app.state.sockets = sockets
        app.state.rate_limits = rate_limits
        logger.info("peerscreen %s: %s store", __version__, store.kind)
        # Everything loaded so far lives as long as the process, and so do the sockets
        # once they have lasted a while: keep them out of the collector's full passes
        # (collector.py), which otherwise stall delivery for tens of milliseconds.
        collector = FreezingCollector()
        collector.start()
        signaling.metrics.watch_gc()
        try:
            yield
        finally:
            collector.stop()
            signaling.metrics.unwatch_gc()
            await sockets.stop()
            await signaling.stop()
            await store.close()

    app = FastAPI(
        title="peerscreen",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from local files, under the page's CSP
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)

    @app.exception_handler(PeerscreenError)
    async def on_peerscreen_error(request: Request, exc: PeerscreenError) -> JSONResponse:
        if isinstance(exc, StoreUnavailable):
            logger.warning("store unavailable: %s", exc.detail)
        count_error(request, exc.code.value)
        return error_response(exc)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"error": {"code": "internal_error", "message": "Unexpected server error."}},
            status_code=500,
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = from_validation(exc.errors(), "Request body")
        count_error(request, error.code.value)
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: ErrorCode.NOT_FOUND,
            405: ErrorCode.METHOD_NOT_ALLOWED,
            401: ErrorCode.UNAUTHORIZED,
            403: ErrorCode.FORBIDDEN,
        }.get(exc.status_code, ErrorCode.INVALID_REQUEST)
        message = {
            404: "No such endpoint.",
            405: "Method not allowed on this endpoint.",
        }.get(exc.status_code, str(exc.detail))
        response = JSONResponse(
            {"error": {"code": code.value, "message": message}}, status_code=exc.status_code
        )
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    app.include_router(rooms.router)
    app.include_router(classic.router)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Is the server up and its store reachable",
        responses=error_responses(),
    )
    async def healthz(request: Request) -> dict[str, Any]:
        signaling: Signaling = request.app.state.signaling
        await signaling.store.ping()
        return {"status": "ok", "store": signaling.store.kind}

    @app.get(
        "/api/config",
        tags=["operations"],
        summary="What the web page needs to know: timeouts and ICE servers",
        responses=error_responses(),
    )
    async def client_config(request: Request) -> dict[str, Any]:
        # Credentials come per participant from /api/rooms/{id}/ice-servers; this says
        # only what the page may tell its user before joining.
        return {
            "offerTimeout": settings.offer_timeout,
            "iceServers": [],
            "relayAvailable": relay_configured(settings),
            "relayOnly": settings.relay_only,
        }

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics of this process",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}},
    )
    async def metrics(request: Request) -> Response:
        signaling: Signaling = request.app.state.signaling
        signaling.metrics.sockets.set(len(request.app.state.sockets))
        signaling.metrics.long_polls.set(signaling.polls.waiting)
        return Response(signaling.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(WEB_DIR / "index.html"))

    @app.get("/docs", include_in_schema=False)
    async def api_reference() -> FileResponse:
        return FileResponse(str(WEB_DIR / "docs.html"))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        # Browsers ask for this path on their own, whatever the page links to.
        return FileResponse(str(WEB_DIR / "favicon.svg"), media_type="image/svg+xml")

    @app.get("/check", include_in_schema=False)
    async def check_page() -> FileResponse:
        return FileResponse(str(WEB_DIR / "check.html"))

    @app.get(
        "/api/check/ice-servers",
        tags=["operations"],
        summary="ICE servers for the connectivity check page, with one-minute credentials",
        responses=error_responses(),
    )
    async def check_ice_servers() -> dict[str, Any]:
        return check_ice_servers_for(settings)

    @app.get("/api/media/turn", include_in_schema=False)
    async def media_server_turn_credentials(
        request: Request, api: str | None = None, key: str | None = None
    ) -> dict[str, Any]:
        # Janus's turn_rest_api: the media server (never a browser) asks for TURN
        # credentials, with the admin key the server gave it.
        expected = settings.janus_admin_key
        given = api or key or ""
        if expected is None or not hmac.compare_digest(
            given.encode(), expected.get_secret_value().encode()
        ):
            raise unauthorized("This is for the media server: it needs its key.")
        credentials = media_server_turn(settings)
        if credentials is None:
            raise PeerscreenError(ErrorCode.NOT_FOUND, "This server has no relay (TURN).")
        logger.info("the media server fetched TURN credentials")
        return credentials

    @app.get("/r/{room_code}", include_in_schema=False)
    async def room_page(room_code: str) -> FileResponse:
        # The page checks the room itself, so it can say "Room not found" in place.
        return FileResponse(str(WEB_DIR / "index.html"))

    # Swagger UI's files from the package that ships them: /docs works offline.
    app.mount("/static/swagger-ui", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=str(WEB_DIR)), name="static")
    # Outermost last: CORS answers preflights first; every response gets the headers.
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(ApiRateLimit, state=app.state)
    app.add_middleware(SecurityHeaders)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    return app
