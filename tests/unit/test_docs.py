"""docs/protocol.md is what third-party clients are written from: it must list every
error the server can answer with, at its real status."""

from __future__ import annotations

import re
from pathlib import Path

from peerscreen.errors import STATUS, ErrorCode

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def documented_errors() -> dict[str, int]:
    text = PROTOCOL.read_text()
    table = text[text.index("## 4. Errors") :]
    found: dict[str, int] = {}
    for status, codes in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", table, re.MULTILINE):
        for code in re.findall(r"`([a-z_]+)`", codes):
            found[code] = int(status)
    return found


def test_every_error_code_is_documented_with_its_status() -> None:
    assert documented_errors() == {code.value: status for code, status in STATUS.items()}
    assert set(STATUS) == set(ErrorCode)
