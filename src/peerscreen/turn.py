"""``peerscreen serve --turn``: a local coturn, started and kept running beside the server.

One command then gives a complete setup on one machine: the server generates a shared
secret, hands it to coturn (``use-auth-secret``) and to its own credential endpoint, and
restarts coturn if it dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import secrets
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from pydantic import SecretStr

from .config import Settings

logger = logging.getLogger("peerscreen.turn")


class TurnNotInstalled(RuntimeError):
    pass


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to end coturn when the server goes.

    uvicorn ends the process by re-raising the signal it caught, which skips ``finally``
    blocks; without this, every stop would leave a coturn behind.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: stop() in the server's finally is all there is


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
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

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
            "-n",
            f"--listening-port={self.port}",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
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
        if self.listen.startswith("127."):
            args.append("--allow-loopback-peers")
        return args

    def start(self) -> None:
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name="turn", daemon=True)
        self._supervisor.start()
        logger.info("coturn on port %d (relay ports %d-%d)", self.port, *self.relay_ports)

    def _spawn(self) -> None:
        self._process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=str(Path.cwd()),
            preexec_fn=_die_with_parent,
        )

    def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            logger.warning("coturn exited with %s; restarting in %.0f s", code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 30.0)
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._supervisor is not None:
            self._supervisor.join(5)
