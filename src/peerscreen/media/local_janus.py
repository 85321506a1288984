"""``peerscreen serve --janus``: a local Janus, started and kept running beside the server,
as ``--turn`` does for coturn.

The server writes Janus a configuration folder of its own (``janus_config``) with a
generated API secret and admin key, its API and admin API on loopback only, and
restarts it if it dies. Everything Janus held (sessions, rooms) dies with it: the
broadcast code notices the closed API socket and rebuilds.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

from pydantic import SecretStr

from ..children import Supervised
from ..config import Settings
from ..ice import relay_configured
from .janus_config import JanusConfig

logger = logging.getLogger("peerscreen.janus")


class JanusNotInstalled(RuntimeError):
    pass


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalJanus:
    """A supervised ``janus`` process."""

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalJanus:
        low, _, high = settings.janus_rtp_ports.partition("-")
        addresses = tuple(a.strip() for a in settings.janus_ice_addresses.split(",") if a.strip())
        stun = next(
            (u.removeprefix("stun:") for u in settings.stun_urls.split(",") if u.strip()), None
        )
        # Janus gets the same relay as the pages, asking this server for credentials.
        turn_api = f"{_own_url(settings)}/api/media/turn" if relay_configured(settings) else None
        return cls((int(low), int(high)), addresses, stun, turn_rest_api=turn_api)

    def __init__(
        self,
        rtp_ports: tuple[int, int] = (40000, 40999),
        ice_addresses: tuple[str, ...] = (),
        stun_server: str | None = None,
        api_secret: str | None = None,
        admin_secret: str | None = None,
        turn_rest_api: str | None = None,
    ) -> None:
        binary = shutil.which("janus")
        if binary is None:
            raise JanusNotInstalled(
                "--janus needs the Janus media server, which is not installed "
                "(Debian/Ubuntu: apt install janus)."
            )
        self.binary = binary
        self.config = JanusConfig(
            api_port=free_loopback_port(),
            admin_port=free_loopback_port(),
            # Generated unless given: several nodes of one deployment share theirs.
            api_secret=api_secret or secrets.token_urlsafe(24),
            admin_secret=admin_secret or secrets.token_urlsafe(24),
            rtp_ports=rtp_ports,
            ice_addresses=ice_addresses,
            stun_server=stun_server,
            turn_rest_api=turn_rest_api,
        )
        self.folder = Path(tempfile.mkdtemp(prefix="peerscreen-janus-"))
        self.config_file = self.config.write(self.folder)
        self.log_file = self.folder / "janus.log"
        self._child = Supervised("janus", self.command(), first_delay=0.2)

    @property
    def url(self) -> str:
        """The API's WebSocket address."""
        return f"ws://127.0.0.1:{self.config.api_port}"

    def settings_for(self, settings: Settings) -> Settings:
        """The server's settings, pointing at this Janus with its generated secrets."""
        return settings.model_copy(
            update={
                "janus_urls": self.url,
                "janus_api_secret": SecretStr(self.config.api_secret),
                "janus_admin_key": SecretStr(self.config.admin_secret),
            }
        )

    @property
    def pid(self) -> int | None:
        process = self._child.process
        return process.pid if process is not None else None

    def command(self) -> list[str]:
        return [
            self.binary,
            "-C", str(self.config_file),
            "-F", str(self.folder),
            "-L", str(self.log_file),
            "-N",  # the log file, not the server's stdout
            "-o",  # no colours in it
        ]  # fmt: skip

    def start(self) -> None:
        self._child.start()
        logger.info("janus API on %s (RTP ports %d-%d)", self.url, *self.config.rtp_ports)

    @property
    def restarts(self) -> int:
        return self._child.restarts

    def stop(self) -> None:
        self._child.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _own_url(settings: Settings) -> str:
    """How a process on this machine reaches the server."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{settings.port}"
