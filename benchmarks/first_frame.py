"""First frame from opening the link: a viewer navigates to a room link (page load
included) and the clock stops at the first frame its video renders; where the time goes.

One server (in-memory store) and one headless Chromium on loopback; a host page shares
Chromium's fake 1280x720 capture. Each of ``--opens`` viewers opens the link in a fresh
browser context. Marks taken in the viewer page (installed before its scripts) split the
time into: page load (navigation to the first API call), join (the join call), to socket
(join answered to the WebSocket created: the page's own work), socket handshake (to its
open), offer (socket open to the host's offer),
answer (offer to the answer set locally), connect (answer to the connection's
"connected": ICE and DTLS), first packet (connected to the first frame's receive time:
mostly the host's encoder starting), and show (received to rendered: decode and paint).
Then ``--traced`` more opens run under a Chromium trace, which shows the first packet phase
from the host's side (benchmarks/encoder_start.py): its encoder's set-up, the frames
captured meanwhile and not encoded, the first encode, the viewer's first decode.

With ``--baseline REV`` a second server runs the page and server of that git revision
(from a temporary worktree), and opens alternate between the two, so a noisy moment hits
both; the report gives the ratio of medians.

    scripts/bench first --opens 20 --baseline HEAD~3        # writes results/first.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from encoder_start import CONNECTION_MARKS, encoder_start, medians, traced_open
from join_latency import ARGS, RENDERED, free_port, host_room, rendered_page, start_server
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parent.parent

# Viewer marks, in ms since navigation start (performance.now()).
VIEWER_MARKS = """
(() => {
  const RENDERED = "__RENDERED__";
  const marks = window.firstFrameMarks = {};
  const mark = (name) => { if (!(name in marks)) marks[name] = performance.now(); };
  const fetch = window.fetch;
  window.fetch = (input, init) => {
    const url = String(input);
    if (url.includes("/api/")) mark("firstApiCall");
    const joining = /\\/api\\/rooms\\/[^/]+\\/viewers$/.test(url) && init?.method === "POST";
    if (joining) mark("joinSent");
    const answer = fetch(input, init);
    if (joining) answer.then(() => mark("joined"), () => undefined);
    return answer;
  };
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    constructor(...args) {
      super(...args);
      mark("socketCreated");
      this.addEventListener("open", () => mark("socketOpen"));
      this.addEventListener("message", (event) => {
        if (String(event.data).includes('"type":"offer"')) mark("offerReceived");
      });
    }
  };
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected") mark("connected");
      });
    }
    async setLocalDescription(...args) {
      const result = await super.setLocalDescription(...args);
      if (this.localDescription?.type === "answer") mark("answerSet");
      return result;
    }
  };
  new MutationObserver(() => {
    for (const video of document.querySelectorAll("video:not([data-first-frame])")) {
      video.dataset.firstFrame = "1";
      video.requestVideoFrameCallback((now, frame) => {
        mark("rendered");
        marks.received = frame.receiveTime ?? marks.rendered;
        window.firstFrameAt = performance.timeOrigin + marks.rendered;
        console.log(RENDERED);
      });
    }
  }).observe(document, { childList: true, subtree: true });
})();
""".replace("__RENDERED__", RENDERED)

PHASES = (
    ("page load", None, "firstApiCall"),
    ("join", "joinSent", "joined"),
    ("to socket", "joined", "socketCreated"),
    ("socket handshake", "socketCreated", "socketOpen"),
    ("offer", "socketOpen", "offerReceived"),
    ("answer", "offerReceived", "answerSet"),
    ("connect", "answerSet", "connected"),
    ("first packet", "connected", "received"),
    ("show", "received", "rendered"),
)


def open_link(browser: Browser, link: str) -> dict[str, float]:
    with rendered_page(browser, link, VIEWER_MARKS) as (page, started):
        rendered_at = float(page.evaluate("window.firstFrameAt"))
        marks: dict[str, float] = page.evaluate("window.firstFrameMarks")
    result = {"total": rendered_at - started, "in page": marks["rendered"]}
    for name, start, end in PHASES:
        if end in marks and (start is None or start in marks):
            result[name] = marks[end] - (marks[start] if start else 0.0)
    return result


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ["total", "in page", *(name for name, _, _ in PHASES)]:
        values = sorted(s[key] for s in samples if key in s)
        if values:
            out[key] = {
                "p50_ms": round(statistics.median(values), 1),
                "p95_ms": round(values[min(len(values) - 1, int(0.95 * len(values)))], 1),
            }
    return out


def baseline_server(revision: str, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """A server running ``revision``'s code (server and page) from a temporary worktree."""
    tree = Path(tempfile.mkdtemp(prefix="peerscreen-baseline-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), revision],
        check=True,
    )
    return start_server(port, env={**os.environ, "PYTHONPATH": str(tree / "src")}), tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opens", type=int, default=20)
    parser.add_argument("--baseline", help="a git revision to measure alongside, alternated")
    parser.add_argument(
        "--traced", type=int, default=3, help="opens under a trace, after the timed ones"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "first.json"
    )
    args = parser.parse_args()
    if not 1 <= args.opens <= 200:
        parser.error("--opens must be between 1 and 200")
    if not 0 <= args.traced <= 20:
        parser.error("--traced must be between 0 and 20")
    servers = {"current": start_server(port := free_port())}
    bases = {"current": f"http://127.0.0.1:{port}"}
    tree = None
    if args.baseline:
        servers["baseline"], tree = baseline_server(args.baseline, port := free_port())
        bases["baseline"] = f"http://127.0.0.1:{port}"
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    traced: list[dict[str, float]] = []
    try:
        executable = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            rooms = {name: host_room(browser, base)[1] for name, base in bases.items()}
            for _ in range(args.opens):
                for name, link in rooms.items():  # alternated
                    samples[name].append(open_link(browser, link))
            if args.traced:
                # A room of its own: no other viewer's encoder in the trace.
                _, link = host_room(browser, bases["current"], CONNECTION_MARKS)
                for _ in range(args.traced):
                    reading = encoder_start(traced_open(browser, link))
                    if reading is not None:
                        traced.append(reading)
            browser.close()
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(10)
        if tree is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
            )
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "opens": args.opens,
        "baseline_revision": args.baseline,
    }
    for name in servers:
        report[name] = summarize(samples[name])
    if traced:
        report["current"]["first packet, traced (ms from the viewer's connected)"] = {
            "median": medians(traced),
            "opens": traced,
        }
    if "baseline" in samples:
        report["current_over_baseline_p50"] = round(
            report["current"]["total"]["p50_ms"] / report["baseline"]["total"]["p50_ms"], 2
        )
    print(json.dumps(report, indent=2))
    report["samples_ms"] = samples
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
