"""Broadcast against mesh: what the host's browser uploads and spends as viewers are
added, what Janus spends per viewer, and how soon a viewer sees the first frame.

Runs in the network namespace of scripts/netns (Janus offers 127.0.0.2 there); the
viewers that fill rooms are light ones (benchmarks/light_viewers.py: aiortc, frames
counted, not decoded), so the CPU measured is the host browser's and Janus's.

1. Host cost. One server without a media server (mesh) and one with ``--janus
   --mesh-max 1`` (broadcast). For 1, 2, 4, 8 and 16 viewers in each: the host page's
   upload (outbound-rtp bytes over its peer connections) and its Chromium's CPU (its own
   browser, every process of it, from /proc) over ``--window`` seconds, once every
   viewer receives.
2. Janus per viewer. One broadcast room; 10, 20, 40, 80... light viewers until one step
   where a viewer gets under 90% of the frames the host sends: Janus's CPU and memory at
   each step.
3. First frame. A fresh browser page opening the link of a mesh room and of a broadcast
   room, alternated: from the navigation to the first frame its video renders.

    python benchmarks/broadcast.py                 # writes results/broadcast.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from join_latency import ARGS, TRACK_PCS, free_port, host_room, start_server, summary
from playwright.sync_api import Browser, sync_playwright
from watch_first_frame import browser_once

ROOT = Path(__file__).resolve().parent.parent
LIGHT = Path(__file__).resolve().parent / "light_viewers.py"
JANUS = ("--janus", "--janus-ice-addresses", "127.0.0.2", "--mesh-max", "1")

OUTBOUND = """async () => {
  let bytes = 0, frames = 0, streams = 0;
  for (const pc of window.peerConnections) {
    if (pc.connectionState === "closed") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp") bytes += s.bytesSent || 0;
      if (s.type === "outbound-rtp" && s.kind === "video") {
        frames = Math.max(frames, s.framesSent || 0); streams += 1;
      }
    });
  }
  return {bytes, frames, streams};
}"""


class LightViewers:
    """A light_viewers.py process and its latest report."""

    def __init__(self, link: str, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(LIGHT), link, str(count), "--seconds", "600"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.count = count

    def report(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next report; they come once a second, so silence means it is stuck."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"the light viewers said nothing for {timeout} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the light viewers stopped")
        data: dict[str, Any] = json.loads(line)
        return data

    def wait_receiving(self, timeout: float = 60.0) -> dict[str, Any]:
        """The first report in which every viewer has frames coming."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = self.report()
            if last and len(report["decoders"]) >= self.count:
                grown = [b > a for a, b in zip(last["decoders"], report["decoders"], strict=False)]
                if len(grown) >= self.count and all(grown[-self.count :]):
                    return report
            last = report
        raise RuntimeError(f"{self.count} viewers did not all receive within {timeout} s")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # they leave the room
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def browser_pid(browser: Browser) -> int:
    """Chromium's main process: the child of this process whose command is chromium."""
    for child in psutil.Process().children(recursive=True):
        try:
            main = "chromium" in child.name() and "--type=" not in " ".join(child.cmdline())
            if main and child.pid not in KNOWN_BROWSERS:
                KNOWN_BROWSERS.add(child.pid)
                pid: int = child.pid
                return pid
        except psutil.NoSuchProcess:
            continue
    raise RuntimeError("no Chromium process found")


KNOWN_BROWSERS: set[int] = set()


def host_cost(
    host_browser: Browser, host_pid: int, base: str, counts: list[int], window: float
) -> list[dict[str, Any]]:
    host, link = host_room(host_browser, base, TRACK_PCS)
    rows = []
    for count in counts:
        viewers = LightViewers(link, count)
        try:
            viewers.wait_receiving()
            time.sleep(2.0)  # the encoders' bitrate ramps up after a connection starts
            before, cpu_before, at = host.evaluate(OUTBOUND), tree_cpu(host_pid), time.time()
            time.sleep(window)
            after, cpu_after = host.evaluate(OUTBOUND), tree_cpu(host_pid)
            seconds = time.time() - at
            rows.append(
                {
                    "viewers": count,
                    "upload_kbps": round(8 * (after["bytes"] - before["bytes"]) / seconds / 1000),
                    "host_cpu_percent": round(100 * (cpu_after - cpu_before) / seconds, 1),
                    "video_streams": after["streams"],
                    "fps": round((after["frames"] - before["frames"]) / seconds, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        finally:
            viewers.stop()
        host.wait_for_function("document.getElementById('viewer-count').textContent === '0'")
    host.context.close()
    return rows


def janus_pid(server: subprocess.Popen[bytes]) -> int:
    for child in psutil.Process(server.pid).children():
        if child.name() == "janus":
            pid: int = child.pid
            return pid
    raise RuntimeError("the server started no Janus")


def janus_cost(
    browser: Browser, base: str, server: subprocess.Popen[bytes], window: float, most: int
) -> list[dict[str, Any]]:
    """Light viewers in steps, in processes of up to PER_PROCESS each (one Python process
    handles about that many at full rate), until a step where one of them gets under 90%
    of the host's frames, or does not connect within two minutes."""
    host, link = host_room(browser, base, TRACK_PCS)
    janus = psutil.Process(janus_pid(server))
    rows: list[dict[str, Any]] = []
    count = 10
    while count <= most:
        groups = [
            LightViewers(link, min(PER_PROCESS, count - start))
            for start in range(0, count, PER_PROCESS)
        ]
        try:
            try:
                firsts = [group.wait_receiving(120) for group in groups]
            except RuntimeError as exc:
                rows.append({"viewers": count, "failed": str(exc)})
                print(json.dumps(rows[-1]), flush=True)
                break
            sent_before = host.evaluate(OUTBOUND)["frames"]
            cpu = janus.cpu_times()
            at = time.time()
            lasts = [group.report() for group in groups]
            while time.time() - at < window:
                lasts = [group.report() for group in groups]
            seconds = time.time() - at
            cpu_after = janus.cpu_times()
            sent = (host.evaluate(OUTBOUND)["frames"] - sent_before) / seconds
            got = []
            for group, first, last in zip(groups, firsts, lasts, strict=True):
                span = last["at"] - first["at"]
                pairs = zip(first["decoders"], last["decoders"], strict=False)
                got += [(b - a) / span for a, b in pairs][-group.count :]
            row = {
                "viewers": count,
                "janus_cpu_percent": round(
                    100 * (cpu_after.user + cpu_after.system - cpu.user - cpu.system) / seconds, 1
                ),
                "janus_rss_mb": round(janus.memory_info().rss / 1e6, 1),
                "host_fps": round(sent, 1),
                "slowest_viewer_fps": round(min(got), 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            for group in groups:
                group.stop()
        if row["slowest_viewer_fps"] < 0.9 * row["host_fps"]:
            break
        count *= 2
    host.context.close()
    return rows


PER_PROCESS = 40


def first_frames(browser: Browser, links: dict[str, str], joins: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in links}
    for _ in range(joins):
        for name, link in links.items():
            samples[name].append(browser_once(browser, link))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,2,4,8,16")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--most", type=int, default=160, help="most light viewers for Janus")
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--phases", default="host,janus,first", help="which to run")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "broadcast.json"
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if not all(1 <= c <= 64 for c in counts) or not 10 <= args.most <= 400:
        parser.error("--counts between 1 and 64, --most between 10 and 400")
    mesh_port, broadcast_port = free_port(), free_port()
    mesh = start_server(mesh_port, "--mesh-max", "100")
    broadcast = start_server(broadcast_port, *JANUS)
    mesh_base = f"http://127.0.0.1:{mesh_port}"
    broadcast_base = f"http://127.0.0.1:{broadcast_port}"
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    try:
        executable = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            host_browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            host_pid = browser_pid(host_browser)
            other = playwright.chromium.launch(executable_path=executable, args=ARGS)
            browser_pid(other)
            phases = args.phases.split(",")
            if "host" in phases:
                report["host_cost"] = {
                    "mesh": host_cost(host_browser, host_pid, mesh_base, counts, args.window),
                    "broadcast": host_cost(
                        host_browser, host_pid, broadcast_base, counts, args.window
                    ),
                }
            if "janus" in phases:
                report["janus_cost"] = janus_cost(
                    other, broadcast_base, broadcast, args.window, args.most
                )
            if "first" in phases:
                # First frame: a mesh room, and a broadcast room with one viewer in it.
                _, mesh_link = host_room(other, mesh_base, TRACK_PCS)
                _, broadcast_link = host_room(other, broadcast_base, TRACK_PCS)
                warm = LightViewers(broadcast_link, 1)
                warm.wait_receiving()
                samples = first_frames(
                    other, {"mesh": mesh_link, "broadcast": broadcast_link}, args.joins
                )
                warm.stop()
                report["first_frame"] = {name: summary(v) for name, v in samples.items()}
                report["first_frame_samples_ms"] = samples
                medians = {name: statistics.median(v) for name, v in samples.items()}
                report["first_frame_broadcast_over_mesh_p50"] = round(
                    medians["broadcast"] / medians["mesh"], 2
                )
            host_browser.close()
            other.close()
    finally:
        for server in (mesh, broadcast):
            server.terminate()
            server.wait(10)
    print(json.dumps({k: v for k, v in report.items() if "samples" not in k}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
