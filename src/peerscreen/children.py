"""Helper processes the server starts and keeps (coturn with --turn, Janus with --janus)."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal

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
