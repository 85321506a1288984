"""Join latency: from a viewer's Connect to the first rendered frame, in headless Chromium.

Two flows against the same server in one run:

- peerscreen: the host shares from the real page; each viewer opens the start page, types
  the room code and presses Join; the clock runs from the form's submit event to the
  first frame the video renders (``requestVideoFrameCallback``).
- baseline, the original polling flow: a host page that posts its offer and candidates
  once and polls ``/api/answer`` and ``/api/candidate`` every second, and a viewer that
  polls ``/api/offer`` and ``/api/candidate`` every second (setInterval: the first poll
  comes after a second, as in the original), all through
  the REST endpoints. One host per viewer, as the original allowed one viewer per room.

Both use Debian's Chromium with a fake capture device; only loopback addresses. Contexts
bypass the page's Content-Security-Policy, which forbids the benchmark's own probes.

    python benchmarks/join_latency.py            # 20 joins each, writes results/join.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, Route, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]

# Starts the clock when the join form is submitted (the viewer's Connect) and stops it at
# the first frame any <video> on the page renders. Both are read inside the page, so the
# driver's own delays count for neither flow.
RENDERED = "peerscreen benchmark: first frame rendered"
FIRST_FRAME = """
(() => {
  document.addEventListener("submit", () => { window.connectAt = Date.now(); }, true);
  const watch = (video) => video.requestVideoFrameCallback(() => {
    if (window.firstFrameAt) return;
    window.firstFrameAt = Date.now();
    console.log("__RENDERED__");
  });
  new MutationObserver(() => {
    for (const video of document.querySelectorAll("video:not([data-watched])")) {
      video.dataset.watched = "1";
      watch(video);
    }
  }).observe(document, {childList: true, subtree: true});
})();
""".replace("__RENDERED__", RENDERED)

# Lists the page's peer connections in window.peerConnections (installed before its scripts).
TRACK_PCS = """(() => {
  const Native = window.RTCPeerConnection;
  window.peerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.peerConnections.push(this); }
  };
})();"""

# The original single-viewer flow, polling every second through the REST endpoints.
SEED_PAGE = (Path(__file__).parent / "original_flow.html").read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    port: int, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A peerscreen server on loopback with limits no benchmark reaches (and ``extra``
    flags, and ``env`` in place of this environment); returns once it answers."""
    server = subprocess.Popen(
        [
            sys.executable, "-m", "peerscreen", "serve", "--port", str(port),
            "--log-level", "warning", "--max-viewers", "200",
            "--rate-rooms", "100000/hour", "--rate-api", "1000000/hour",
            "--max-connections-per-client", "100000", *extra,
        ],
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                server.terminate()
                raise
            time.sleep(0.1)


def host_room(browser: Browser, base: str, *init_scripts: str, query: str = "") -> tuple[Page, str]:
    """A host page in a context of its own (``init_scripts`` installed before the page's
    own) that has started sharing; the page and the room link."""
    host = browser.new_context(bypass_csp=True).new_page()
    for script in init_scripts:
        host.add_init_script(script)
    host.goto(f"{base}/{query}")
    host.get_by_role("button", name="Start sharing").click()
    host.wait_for_function("document.getElementById('room-code').textContent.length > 0")
    return host, f"{base}/r/{host.locator('#room-code').inner_text()}"


def wait_for(page: Page, expression: str, timeout_ms: int = 30_000) -> Any:
    return page.wait_for_function(expression, timeout=timeout_ms).json_value()


@contextlib.contextmanager
def rendered_page(
    browser: Browser, link: str, *init_scripts: str, timeout_ms: int = 30_000
) -> Iterator[tuple[Page, float]]:
    """A page in a fresh context (``init_scripts`` installed, one of which logs RENDERED)
    that opened ``link`` and rendered its first frame, with the wall-clock ms just before
    it navigated; the context closes after.

    The page says when it rendered rather than being polled: polling (``wait_for``)
    injects Playwright's own script into a freshly opened page while it connects, which
    took the page's main thread for about 50 ms here and counted in every figure.
    """
    context = browser.new_context(bypass_csp=True)
    try:
        for script in init_scripts:
            context.add_init_script(script)
        page = context.new_page()
        started = time.time() * 1000
        with page.expect_console_message(
            lambda message: message.text == RENDERED, timeout=timeout_ms
        ):
            page.goto(link, wait_until="commit")
        yield page, started
    finally:
        context.close()


def peerscreen_joins(browser: Browser, base: str, joins: int) -> list[float]:
    host, link = host_room(browser, base)
    code = link.rsplit("/", 1)[1]
    results = []
    for _ in range(joins):
        context = browser.new_context(bypass_csp=True)
        context.add_init_script(FIRST_FRAME)
        page = context.new_page()
        page.goto(base + "/")
        page.fill("#join-code", code)
        page.get_by_role("button", name="Join").click()
        first = wait_for(page, "window.firstFrameAt")
        connect = page.evaluate("window.connectAt")
        results.append(float(first - connect))
        page.get_by_role("button", name="Leave").click()
        context.close()
    host.context.close()
    return results


def seed_joins(browser: Browser, base: str, joins: int) -> list[float]:
    def serve_seed(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=SEED_PAGE)

    results = []
    for _ in range(joins):
        room = httpx.post(base + "/api/rooms").json()
        viewer = httpx.post(f"{base}/api/rooms/{room['roomId']}/viewers").json()
        host_context = browser.new_context(bypass_csp=True)
        host_context.route("**/bench-original-flow*", serve_seed)
        host = host_context.new_page()
        host.goto(
            f"{base}/bench-original-flow?role=host&room={room['roomId']}&token={room['hostToken']}"
        )
        wait_for(host, "window.hostReady")
        context = browser.new_context(bypass_csp=True)
        context.route("**/bench-original-flow*", serve_seed)
        context.add_init_script(FIRST_FRAME)
        page = context.new_page()
        page.goto(
            f"{base}/bench-original-flow?role=viewer&room={room['roomId']}"
            f"&token={viewer['viewerToken']}&viewer={viewer['viewerId']}"
        )
        page.wait_for_function("typeof window.connect === 'function'")
        page.evaluate("window.connect()")
        first = wait_for(page, "window.firstFrameAt")
        connect = page.evaluate("window.connectAt")
        results.append(float(first - connect))
        context.close()
        host_context.close()
    return results


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(pct(0.95), 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
        "n": len(ordered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "join.json"
    )
    args = parser.parse_args()
    if not 1 <= args.joins <= 200:
        parser.error("--joins must be between 1 and 200")
    port = free_port()
    server = start_server(port)
    base = f"http://127.0.0.1:{port}"
    try:
        executable = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            ours = peerscreen_joins(browser, base, args.joins)
            baseline = seed_joins(browser, base, args.joins)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "peerscreen": summary(ours),
        "original polling flow": summary(baseline),
        "speedup_p50": round(statistics.median(baseline) / statistics.median(ours), 1),
        "samples_ms": {"peerscreen": ours, "original polling flow": baseline},
    }
    print(json.dumps({k: v for k, v in report.items() if k != "samples_ms"}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
