"""The start page names every module main.js needs, so the browser fetches them in one
round rather than one import level at a time (first frame from opening a link)."""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "src" / "peerscreen" / "web"
IMPORT = re.compile(r'^import .* from "\./([a-z]+\.js)";$', re.MULTILINE)
PRELOAD = re.compile(r'<link rel="modulepreload" href="/static/js/([a-z]+\.js)">')


def imported_by(module: str) -> set[str]:
    found: set[str] = set()
    waiting = [module]
    while waiting:
        for name in IMPORT.findall((WEB / "js" / waiting.pop()).read_text()):
            if name not in found:
                found.add(name)
                waiting.append(name)
    return found


def test_index_preloads_exactly_the_modules_main_imports() -> None:
    preloaded = PRELOAD.findall((WEB / "index.html").read_text())
    assert len(preloaded) == len(set(preloaded))
    assert set(preloaded) == imported_by("main.js")
    assert {"viewer.js", "peer.js", "signaling.js"} <= set(preloaded)  # two levels deep
