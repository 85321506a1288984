"""What the commands show: one progress line that rewrites itself on a terminal (a
line every few seconds in a log), and the room's link as a QR code."""

from __future__ import annotations

import io
import sys
import time
from typing import TextIO

import segno

LOG_EVERY_S = 5.0


class StatusLine:
    """Progress on stderr: rewritten in place on a terminal, appended otherwise."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self._shown = ""
        self._logged_at = 0.0

    def progress(self, text: str) -> None:
        if self.live:
            self.out.write("\r\x1b[2K" + text)
            self._shown = text
        elif time.monotonic() - self._logged_at >= LOG_EVERY_S:
            self.out.write(text + "\n")
            self._logged_at = time.monotonic()
        self.out.flush()

    def say(self, text: str) -> None:
        """A message that stays: printed above the progress line."""
        if self.live and self._shown:
            self.out.write("\r\x1b[2K")
        self.out.write(text + "\n")
        if self.live and self._shown:
            self.out.write(self._shown)
        self.out.flush()

    def done(self) -> None:
        if self.live and self._shown:
            self.out.write("\n")
            self._shown = ""
        self.out.flush()


def qr_text(url: str) -> str:
    """The link as a QR code drawn with half blocks, two rows to a line."""
    buffer = io.StringIO()
    segno.make(url, error="m").terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue()
