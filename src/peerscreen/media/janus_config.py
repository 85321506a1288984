"""The configuration folder of a Janus that peerscreen starts itself (``--janus``).

Only what broadcast needs is loaded: the VideoRoom plugin and the WebSocket transport,
both bound to loopback, behind a generated API secret. Rooms are created over the API
only (``admin_key``), so a client that learned the API secret still could not make its
own. Writing the files is the only I/O here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

LIBRARY = Path("/usr/lib/x86_64-linux-gnu/janus")
"""Where Debian's ``janus`` package puts its plugins, transports and loggers."""

UNUSED_PLUGINS = (
    "audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip",
    "streaming", "textroom", "videocall", "voicemail",
)  # fmt: skip
UNUSED_TRANSPORTS = ("http", "mqtt", "nanomsg", "pfunix", "rabbitmq")


@dataclass(frozen=True)
class JanusConfig:
    """What differs between two local Janus processes."""

    api_port: int
    admin_port: int
    api_secret: str
    admin_secret: str
    rtp_ports: tuple[int, int] = (40000, 40999)
    ice_addresses: tuple[str, ...] = ()
    """Gather candidates on these addresses only (``ice_enforce_list``); empty: every
    non-loopback interface. Janus never gathers on a loopback interface."""
    stun_server: str | None = None
    """``host:port`` of a STUN server, for a Janus behind NAT to learn its public address."""
    turn_rest_api: str | None = None
    """Where Janus asks for TURN credentials (the server's ``/api/media/turn``), with
    ``admin_secret`` as its key; None when there is no relay."""
    library: Path = LIBRARY

    def files(self) -> dict[str, str]:
        """File name -> text, in libconfig (``.jcfg``) syntax."""
        nat = ["full_trickle = true", "ignore_mdns = true"]
        if self.ice_addresses:
            nat.append(f"ice_enforce_list = {_text(','.join(self.ice_addresses))}")
        if self.stun_server:
            host, _, port = self.stun_server.rpartition(":")
            nat += [f"stun_server = {_text(host)}", f"stun_port = {int(port)}"]
        if self.turn_rest_api:
            nat += [
                f"turn_rest_api = {_text(self.turn_rest_api)}",
                f"turn_rest_api_key = {_text(self.admin_secret)}",
                'turn_rest_api_method = "GET"',
                "turn_rest_api_timeout = 5",
            ]
        return {
            "janus.jcfg": _sections(
                general=[
                    "configs_folder = CONFIGS",
                    f"plugins_folder = {_text(str(self.library / 'plugins'))}",
                    f"transports_folder = {_text(str(self.library / 'transports'))}",
                    f"events_folder = {_text(str(self.library / 'events'))}",
                    f"loggers_folder = {_text(str(self.library / 'loggers'))}",
                    "debug_level = 3",
                    "debug_colors = false",
                    f"api_secret = {_text(self.api_secret)}",
                    f"admin_secret = {_text(self.admin_secret)}",
                    # A session the server stopped keeping alive is gone after a minute.
                    "session_timeout = 60",
                ],
                media=[
                    f"rtp_port_range = {_text(f'{self.rtp_ports[0]}-{self.rtp_ports[1]}')}",
                    # Link-local IPv6 addresses reach nobody a browser could be.
                    "ipv6_linklocal = false",
                ],
                nat=nat,
                plugins=[
                    "disable = " + _text(",".join(f"libjanus_{p}.so" for p in UNUSED_PLUGINS))
                ],
                transports=[
                    "disable = " + _text(",".join(f"libjanus_{t}.so" for t in UNUSED_TRANSPORTS))
                ],
                loggers=['disable = "libjanus_jsonlog.so"'],
                events=["broadcast = false"],
            ),
            "janus.transport.websockets.jcfg": _sections(
                general=[
                    'json = "compact"',
                    "ws = true",
                    f"ws_port = {self.api_port}",
                    'ws_ip = "127.0.0.1"',
                    'ws_acl = "127."',
                    "wss = false",
                ],
                admin=[
                    "admin_ws = true",
                    f"admin_ws_port = {self.admin_port}",
                    'admin_ws_ip = "127.0.0.1"',
                    'admin_ws_acl = "127."',
                    "admin_wss = false",
                ],
            ),
            "janus.plugin.videoroom.jcfg": _sections(
                general=[f"admin_key = {_text(self.admin_secret)}", "string_ids = true"]
            ),
        }

    def write(self, folder: Path) -> Path:
        """Write the files (readable by this user only: they hold the secrets); the path
        of ``janus.jcfg``."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files().items():
            text = text.replace("CONFIGS", _text(str(folder)))
            descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(text)
        return folder / "janus.jcfg"


def _text(value: str) -> str:
    """A libconfig string: JSON's escaping is a subset libconfig reads."""
    return json.dumps(value)


def _sections(**sections: list[str]) -> str:
    lines = []
    for name, settings in sections.items():
        lines.append(f"{name}: {{")
        lines += [f"\t{setting}" for setting in settings]
        lines.append("}")
    return "\n".join(lines) + "\n"
