"""``peerscreen watch`` and ``peerscreen share`` run as the user runs them: a separate
process, its output kept in a log file the test reads."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from .processes import stop_process, wait_until

# aiortc skips loopback when gathering; these tests have nothing but loopback to use.
LOOPBACK_ICE = ("--ice-address", "127.0.0.1")


class ClientCommand:
    """One run of the ``peerscreen`` client command."""

    _runs = 0

    def __init__(self, log_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        ClientCommand._runs += 1
        self.args = [sys.executable, "-m", "peerscreen", *args]
        self.log_path = log_dir / f"client-{os.getpid()}-{ClientCommand._runs}-{args[0]}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ClientCommand:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first match of ``pattern`` in the output, once it appears."""
        found: list[re.Match[str]] = []

        def appeared() -> bool:
            match = re.search(pattern, self.output())
            if match is None and self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"exited before {pattern!r}:\n{self.output()}")
            if match is not None:
                found.append(match)
            return match is not None

        wait_until(appeared, timeout, f"{pattern!r} in {self.log_path}")
        return found[0]

    def wait(self, timeout: float = 60.0) -> int:
        """The exit status; fails the test if the command is still running by then."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s:\n{self.output()}") from None

    def interrupt(self) -> None:
        """Ctrl-C."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        stop_process(self.process)


def room_link(share: ClientCommand, timeout: float = 30.0) -> str:
    """The link ``peerscreen share`` printed."""
    return share.wait_for(r"Room link: (\S+)", timeout).group(1)


def run_watch(log_dir: Path, link: str, *args: str) -> ClientCommand:
    """``peerscreen watch LINK ...`` on loopback, started."""
    return ClientCommand(log_dir, "watch", link, *LOOPBACK_ICE, *args).start()


def run_share(
    log_dir: Path, server: str, *args: str, env: dict[str, str] | None = None
) -> ClientCommand:
    """``peerscreen share --server SERVER ...`` on loopback, started."""
    return ClientCommand(
        log_dir, "share", "--server", server, *LOOPBACK_ICE, *args, env=env
    ).start()
