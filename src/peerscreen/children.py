"""Helper processes the server starts and keeps (coturn with --turn, Janus with --janus)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import subprocess
import threading

logger = logging.getLogger("peerscreen.children")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to end it when the server goes.

    uvicorn ends the process by re-raising the signal it caught, which skips ``finally``
    blocks; without this, every stop would leave the helper behind.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: stop() in the server's finally is all there is


class Supervised:
    """A helper process kept running: started again (after a growing pause) whenever it
    exits, until :meth:`stop`, which ends it politely, then firmly."""

    def __init__(self, name: str, command: list[str], first_delay: float) -> None:
        self.name = name
        self.command = command
        self.first_delay = first_delay
        self.restarts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name=self.name, daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

    def _supervise(self) -> None:
        delay = self.first_delay
        while not self._stopping.is_set():
            process = self.process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            logger.warning("%s exited with %s; restarting in %.1f s", self.name, code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 30.0)
            self.restarts += 1
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(5)
