"""ICE servers for the page: STUN, and TURN with short-lived credentials.

With coturn's ``use-auth-secret``, the server never hands out the shared secret: each
participant gets a username ``<expiry>:<room>:<participant>`` and, as password, the
base64 HMAC-SHA1 of that username under the secret (the TURN REST API convention).
coturn recomputes the HMAC and refuses the credential once the expiry has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from .config import Settings


def turn_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def split_urls(text: str) -> list[str]:
    return [url.strip() for url in text.split(",") if url.strip()]


def relay_configured(settings: Settings) -> bool:
    return bool(split_urls(settings.turn_urls)) and (
        settings.turn_secret is not None or settings.turn_username is not None
    )


def ice_servers(
    settings: Settings, room_id: str, participant_id: str, now: float | None = None
) -> dict[str, Any]:
    """The RTCConfiguration pieces for one participant, with credentials valid for
    ``turn_ttl`` seconds."""
    servers: list[dict[str, Any]] = []
    stun = split_urls(settings.stun_urls)
    if stun:
        servers.append({"urls": stun})
    turn = split_urls(settings.turn_urls)
    expires_at = int((now if now is not None else time.time()) + settings.turn_ttl)
    if turn and settings.turn_secret is not None:
        username = f"{expires_at}:{room_id}:{participant_id}"
        servers.append(
            {
                "urls": turn,
                "username": username,
                "credential": turn_credential(settings.turn_secret.get_secret_value(), username),
            }
        )
    elif turn and settings.turn_username is not None and settings.turn_password is not None:
        servers.append(
            {
                "urls": turn,
                "username": settings.turn_username,
                "credential": settings.turn_password.get_secret_value(),
            }
        )
    return {
        "iceServers": servers,
        "iceTransportPolicy": "relay" if settings.relay_only else "all",
        "relayAvailable": relay_configured(settings),
        "expiresAt": expires_at,
    }


def media_server_turn(settings: Settings, now: float | None = None) -> dict[str, Any] | None:
    """TURN credentials for the media server, in the TURN REST API answer Janus expects
    (``turn_rest_api``); None when the server has no relay."""
    if not relay_configured(settings):
        return None
    config = ice_servers(settings, "media", "janus", now)
    turn = next(s for s in config["iceServers"] if s.get("username"))
    return {
        "username": turn["username"],
        "password": turn["credential"],
        "ttl": settings.turn_ttl,
        "uris": [u for u in turn["urls"] if u.startswith("turn:")],
    }


CHECK_TTL = 60
"""Seconds the check page's credentials last: enough to test an allocation, not to relay
a session."""


def check_ice_servers(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """ICE servers for the connectivity check page, which anyone may open.

    Only short-lived credentials derived from a shared secret are handed out here; static
    credentials never are, so with them the relay is listed as not checkable.
    """
    if settings.turn_secret is not None:
        config = ice_servers(
            settings.model_copy(update={"turn_ttl": CHECK_TTL}), "check", "check", now
        )
        config["relayCheckable"] = config["relayAvailable"]
        return config
    config = ice_servers(
        settings.model_copy(update={"turn_urls": "", "turn_username": None, "turn_password": None}),
        "check",
        "check",
        now,
    )
    config["relayAvailable"] = relay_configured(settings)
    config["relayCheckable"] = False
    return config
