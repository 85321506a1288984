"""HTTP response headers that keep the page safe, and who may call the API from elsewhere."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The page loads only its own scripts and styles (no inline script), talks only to its
# own server, and may capture the screen for itself alone.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
PERMISSIONS_POLICY = (
    "display-capture=(self), fullscreen=(self), picture-in-picture=(self), "
    "camera=(), microphone=(), geolocation=()"
)
# The sharing page: Chromium consults the camera and microphone policy when a page
# captures the screen (and logs a violation if they are denied), so there they are this
# origin's only, like screen capture. Every other page keeps them denied.
SHARING_PAGE_POLICY = (
    "display-capture=(self), fullscreen=(self), picture-in-picture=(self), "
    "camera=(self), microphone=(self), geolocation=()"
)


def _is_sharing_page(path: str) -> bool:
    return path == "/" or path.startswith("/r/")


HSTS = "max-age=31536000"


class SecurityHeaders:
    """Adds the headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        sharing_page = _is_sharing_page(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                # Room links are secrets of a kind: never pass them on as a referrer.
                headers.setdefault("Referrer-Policy", "no-referrer")
                policy = SHARING_PAGE_POLICY if sharing_page else PERMISSIONS_POLICY
                headers.setdefault("Permissions-Policy", policy)
                if https:
                    # Once a browser has seen the page over https, never again over http.
                    headers.setdefault("Strict-Transport-Security", HSTS)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)
