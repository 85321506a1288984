"""``peerscreen serve --turn``: a local coturn, started and kept running beside the server.

One command then gives a complete setup on one machine: the server generates a shared
secret, hands it to coturn (``use-auth-secret``) and to its own credential endpoint, and
restarts coturn if it dies.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from pydantic import SecretStr

from .children import Supervised
from .config import Settings

logger = logging.getLogger("peerscreen.turn")


PRIVATE_PEER_RANGES = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "::1",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)
"""Loopback, private, shared, link-local and benchmark ranges (IPv4 and IPv6)."""


class TurnNotInstalled(RuntimeError):
    pass


class LocalTurn:
    """A supervised ``turnserver`` process."""

    def __init__(self, settings: Settings) -> None:
        binary = shutil.which("turnserver")
        if binary is None:
            raise TurnNotInstalled(
                "--turn needs coturn's turnserver, which is not installed "
                "(Debian/Ubuntu: apt install coturn)."
            )
        self.binary = binary
        self.secret = secrets.token_urlsafe(32)
        self.port = settings.turn_port
        self.listen = "0.0.0.0" if settings.host in ("0.0.0.0", "::") else settings.host
        self.public_host = settings.turn_host or (
            "127.0.0.1" if self.listen == "0.0.0.0" else self.listen
        )
        low, _, high = settings.turn_relay_ports.partition("-")
        self.relay_ports = (int(low), int(high))
        self.allow_private_peers = settings.turn_allow_private_peers
        # The secret goes to coturn in a file only this user can read: a command line is
        # readable by every local user through /proc.
        self.config_dir = Path(tempfile.mkdtemp(prefix="peerscreen-turn-"))
        self.config_file = self.config_dir / "turnserver.conf"
        descriptor = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as config:
            config.write(f"static-auth-secret={self.secret}\n")
        self._child: Supervised | None = None

    def settings_for(self, settings: Settings) -> Settings:
        """The server's settings, pointing at this coturn with its generated secret."""
        host = self.public_host
        urls = f"turn:{host}:{self.port}?transport=udp,turn:{host}:{self.port}?transport=tcp"
        return settings.model_copy(
            update={"turn_urls": urls, "turn_secret": SecretStr(self.secret)}
        )

    def command(self) -> list[str]:
        args = [
            self.binary,
            "-c",
            str(self.config_file),
            f"--listening-port={self.port}",
            "--use-auth-secret",
            "--realm=peerscreen",
            "--fingerprint",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            f"--min-port={self.relay_ports[0]}",
            f"--max-port={self.relay_ports[1]}",
            "--log-file=stdout",
            "--simple-log",
            "--no-stdout-log",
        ]
        if self.listen != "0.0.0.0":
            args += [f"--listening-ip={self.listen}", f"--relay-ip={self.listen}"]
        args.append("--no-multicast-peers")
        if self.allow_private_peers:
            args.append("--allow-loopback-peers")
        else:
            # A relay anyone with a room link can use must not reach into the server's
            # own network: only public addresses are relayed to.
            args += [f"--denied-peer-ip={span}" for span in PRIVATE_PEER_RANGES]
        return args

    def start(self) -> None:
        self._child = Supervised("coturn", self.command(), first_delay=1.0)
        self._child.start()
        logger.info("coturn on port %d (relay ports %d-%d)", self.port, *self.relay_ports)

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
        shutil.rmtree(self.config_dir, ignore_errors=True)
