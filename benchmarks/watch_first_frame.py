"""First picture for ``peerscreen watch``, against a browser viewer of the same room.

A host shares from the real page in headless Chromium. In turns, in the same run:

- ``peerscreen watch LINK --duration 0``: the clock starts just before the process is
  started (interpreter start-up and imports count, as they do for a user) and stops when
  the command says "First picture", read from its output pipe as it is written. The
  command's own figure, from its join call to the first decoded frame, is kept too.
- a browser viewer opening the room link in a fresh context: the clock starts just before
  the navigation (page load counts) and stops at the first frame its video renders
  (``requestVideoFrameCallback``, read in the page, on the same wall clock).

Loopback only; aiortc gathers on 127.0.0.1 (``--ice-address``).

    python benchmarks/watch_first_frame.py --joins 10     # writes results/watch.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from join_latency import (
    ARGS,
    FIRST_FRAME,
    free_port,
    host_room,
    rendered_page,
    start_server,
    summary,
)
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
FIRST_PICTURE = re.compile(r"First picture after ([0-9.]+) s")


def watch_once(link: str) -> tuple[float, float]:
    """(ms from process start to first picture, the command's own join-to-picture ms)."""
    started = time.time()
    command = subprocess.Popen(
        [sys.executable, "-m", "peerscreen", "watch", link, "--duration", "0",
         "--ice-address", "127.0.0.1", "--offer-timeout", "20"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert command.stderr is not None
    try:
        for line in command.stderr:  # ends when the command exits (30 s at most)
            found = FIRST_PICTURE.search(line)
            if found:
                return (time.time() - started) * 1000, float(found.group(1)) * 1000
        raise RuntimeError("peerscreen watch ended without a picture")
    finally:
        command.wait(30)


def browser_once(browser: Browser, link: str) -> float:
    with rendered_page(browser, link, FIRST_FRAME) as (page, started):
        return float(page.evaluate("window.firstFrameAt")) - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "watch.json"
    )
    args = parser.parse_args()
    if not 1 <= args.joins <= 100:
        parser.error("--joins must be between 1 and 100")
    port = free_port()
    server = start_server(port)
    base = f"http://127.0.0.1:{port}"
    watch_total: list[float] = []
    watch_join: list[float] = []
    browser_total: list[float] = []
    try:
        executable = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            _, link = host_room(browser, base)
            for _ in range(args.joins):  # alternated, so a noisy moment hits both
                total, joined = watch_once(link)
                watch_total.append(total)
                watch_join.append(joined)
                browser_total.append(browser_once(browser, link))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "peerscreen watch, from process start": summary(watch_total),
        "peerscreen watch, from its join call": summary(watch_join),
        "browser viewer, from opening the link": summary(browser_total),
        "watch_over_browser_p50": round(
            statistics.median(watch_total) / statistics.median(browser_total), 2
        ),
        "samples_ms": {
            "watch": watch_total,
            "watch_join": watch_join,
            "browser": browser_total,
        },
    }
    print(json.dumps({k: v for k, v in report.items() if k != "samples_ms"}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
