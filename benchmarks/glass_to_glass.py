"""Glass-to-glass latency: from the moment the host's source paints a frame to the moment
the viewer's page renders it, per codec and preset, on loopback.

The host page shares a canvas that paints the wall-clock time as blocks (benchmarks/
pages/clock.js, tested in tests/browser/test_clock_reader.py), handed to the page in
place of the screen capture. The viewer page reads the time back from every frame its
video renders (requestVideoFrameCallback, drawn to a canvas); both pages run on this
machine's clock. For each codec Chromium offers (the host's connections are told to
prefer it: setCodecPreferences) and each of the page's presets (detail, motion):
``--seconds`` of readings, ``--repeats`` times, alternated. Reported: p50/p95/p99/max
latency, frames a second, freezes (gaps between rendered frames over 200 ms), and from
getStats the receiver's jitter buffer delay and the sender's encode time per frame.

    python benchmarks/glass_to_glass.py             # writes results/glass.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from join_latency import ARGS, TRACK_PCS, free_port, start_server
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CLOCK = (Path(__file__).resolve().parent / "pages" / "clock.js").read_text()
CODECS = ("VP8", "VP9", "AV1", "H264")

# The host page's connections prefer one codec (the benchmark's choice, not the page's).
PREFER_CODEC = """
navigator.mediaDevices.getDisplayMedia = async () => window.peerscreenClock.source({ fps: 30 });
(() => {
  const wanted = new URLSearchParams(location.search).get("codec");
  if (!wanted) return;
  const addTrack = RTCPeerConnection.prototype.addTrack;
  RTCPeerConnection.prototype.addTrack = function (...args) {
    const sender = addTrack.apply(this, args);
    const transceiver = this.getTransceivers().find((t) => t.sender === sender);
    if (transceiver && sender.track && sender.track.kind === "video") {
      const codecs = RTCRtpSender.getCapabilities("video").codecs;
      const name = "video/" + wanted.toLowerCase();
      const first = codecs.filter((c) => c.mimeType.toLowerCase() === name);
      const rest = codecs.filter((c) => !first.includes(c));
      transceiver.setCodecPreferences([...first, ...rest]);
    }
    return sender;
  };
})();
"""

RECEIVER_STATS = """async () => {
  const pc = window.peerConnections.find((p) => p.connectionState === "connected");
  let out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") out = {
      jitterBufferDelay: s.jitterBufferDelay, emitted: s.jitterBufferEmittedCount,
      codecId: s.codecId, framesDecoded: s.framesDecoded, decodeTime: s.totalDecodeTime,
    };
  });
  const report = await pc.getStats();
  const codec = out.codecId ? report.get(out.codecId) : null;
  out.codec = codec ? codec.mimeType : null;
  return out;
}"""
SENDER_STATS = """async () => {
  let out = {};
  for (const pc of window.peerConnections) {
    if (pc.connectionState !== "connected") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") out = {
        encodeTime: s.totalEncodeTime, framesEncoded: s.framesEncoded, bytes: s.bytesSent,
        width: s.frameWidth, height: s.frameHeight,
      };
    });
  }
  return out;
}"""


def share(browser: Browser, base: str, codec: str, preset: str) -> tuple[Page, str]:
    host = browser.new_context(bypass_csp=True).new_page()
    host.add_init_script(TRACK_PCS)
    host.add_init_script(CLOCK)
    host.add_init_script(PREFER_CODEC)
    host.goto(f"{base}/?codec={codec}")
    host.get_by_role("button", name="Start sharing").click()
    host.wait_for_function("document.getElementById('room-code').textContent.length")
    if preset == "motion":
        host.get_by_label("Motion").check()
    return host, host.locator("#room-code").inner_text()


CAP_BITRATE = """async (kbps) => {
  for (const pc of window.peerConnections) {
    for (const sender of pc.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      const parameters = sender.getParameters();
      for (const encoding of parameters.encodings) encoding.maxBitrate = kbps * 1000;
      await sender.setParameters(parameters);
    }
  }
}"""


def measure(
    browser: Browser, base: str, codec: str, preset: str, seconds: float, cap: int | None
) -> dict[str, Any]:
    host, code = share(browser, base, codec, preset)
    viewer = browser.new_context(bypass_csp=True).new_page()
    viewer.add_init_script(TRACK_PCS)
    viewer.add_init_script(CLOCK)
    viewer.goto(f"{base}/r/{code}")
    viewer.wait_for_function(
        "document.getElementById('remote-video').videoWidth > 0", timeout=30_000
    )
    if cap is not None:  # after the page set its own encoder parameters on connect
        viewer.wait_for_timeout(500)
        host.evaluate(CAP_BITRATE, cap)
    # Settle: the first seconds of a connection ramp its bitrate up.
    viewer.wait_for_timeout(2000)
    viewer.evaluate("window.peerscreenClock.watch(document.getElementById('remote-video'))")
    receiver_before = viewer.evaluate(RECEIVER_STATS)
    sender_before = host.evaluate(SENDER_STATS)
    started = time.monotonic()
    viewer.wait_for_timeout(seconds * 1000)
    elapsed = time.monotonic() - started
    readings = viewer.evaluate("window.clockReadings")
    sharpness = viewer.evaluate("window.clockSharpness")
    rejected = viewer.evaluate("window.clockRejected")
    receiver = viewer.evaluate(RECEIVER_STATS)
    sender = host.evaluate(SENDER_STATS)
    host.context.close()
    viewer.context.close()
    latencies = sorted(r["latency"] for r in readings)
    times = [r["at"] for r in readings]
    gaps = [b - a for a, b in itertools.pairwise(times)]

    def pct(p: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(p * len(latencies)))])

    emitted = receiver["emitted"] - receiver_before["emitted"]
    encoded = sender["framesEncoded"] - sender_before["framesEncoded"]
    ssims = [s["ssim"] for s in sharpness]
    psnrs = [s["psnr"] for s in sharpness if s["psnr"] is not None]
    return {
        "codec": codec,
        "preset": preset,
        "cap_kbps": cap,
        "text_ssim": round(statistics.median(ssims), 4) if ssims else None,
        "text_psnr_db": round(statistics.median(psnrs), 1) if psnrs else None,
        "negotiated": receiver["codec"],
        "readings": len(latencies),
        "rejected": rejected,
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": float(latencies[-1]),
        "fps": round(len(latencies) / elapsed, 1),
        "freezes_over_200_ms": sum(1 for g in gaps if g > 200),
        "longest_gap_ms": max(gaps) if gaps else None,
        "jitter_buffer_ms": round(
            1000 * (receiver["jitterBufferDelay"] - receiver_before["jitterBufferDelay"]) / emitted,
            1,
        )
        if emitted
        else None,
        "encode_ms_per_frame": round(
            1000 * (sender["encodeTime"] - sender_before["encodeTime"]) / encoded, 1
        )
        if encoded
        else None,
        "kbps": round(8 * (sender["bytes"] - sender_before["bytes"]) / elapsed / 1000),
        "size": f"{sender.get('width')}x{sender.get('height')}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codecs", default=",".join(CODECS))
    parser.add_argument("--presets", default="detail,motion")
    parser.add_argument(
        "--caps", default="", help="bitrate caps in kbit/s, e.g. 300,1000,3000 (none: uncapped)"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "glass.json"
    )
    args = parser.parse_args()
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    caps: list[int | None] = [int(c) for c in args.caps.split(",") if c.strip()] or [None]
    if not 1 <= args.repeats <= 10 or not 5 <= args.seconds <= 300:
        parser.error("--repeats 1-10, --seconds 5-300")
    port = free_port()
    server = start_server(port)
    base = f"http://127.0.0.1:{port}"
    runs: list[dict[str, Any]] = []
    try:
        executable = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            for repeat in range(args.repeats):
                for preset, cap in [(p, c) for p in presets for c in caps]:
                    for codec in codecs:  # alternated: a noisy moment hits every codec
                        result = measure(browser, base, codec, preset, args.seconds, cap)
                        result["repeat"] = repeat + 1
                        runs.append(result)
                        print(json.dumps(result), flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    summary = {}
    for preset, cap, codec in [(p, k, c) for p in presets for k in caps for c in codecs]:
        mine = [
            r
            for r in runs
            if r["codec"] == codec and r["preset"] == preset and r["cap_kbps"] == cap
        ]
        summary[f"{preset} {cap or 'uncapped'} {codec}"] = {
            "p50_ms": [r["p50_ms"] for r in mine],
            "p95_ms": [r["p95_ms"] for r in mine],
            "median_p50_ms": statistics.median(r["p50_ms"] for r in mine),
        }
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seconds": args.seconds,
        "summary": summary,
        "runs": runs,
    }
    print(json.dumps(summary, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
