"""Glass-to-glass latency: from the moment the host's source paints a frame to the moment
the viewer's page renders it, per codec and preset, on loopback, clean or impaired.

The host page shares a canvas that paints the wall-clock time as blocks (benchmarks/
pages/clock.js, tested in tests/browser/test_clock_reader.py), handed to the page in
place of the screen capture. The viewer page reads the time back from every frame its
video renders (requestVideoFrameCallback, drawn to a canvas); both pages run on this
machine's clock. Every combination of the lists given is measured, ``--repeats`` times,
alternated: codecs (the host's connections are told to prefer one: setCodecPreferences),
the page's presets (detail, motion), scalability modes (``L1T3``: set on the sender),
bitrate caps (the sender's maxBitrate), degradation preference, frame rate cap and
resolution scale (set on the sender over the page's own), still or scrolling text, the
network path (direct; or both peers relayed through coturn behind a UDP hop that drops
and delays: benchmarks/impairment.py) and a bandwidth cap on loopback (tbf; the script
runs in scripts/netns). Reported: p50/p95/p99/max latency, frames a second, freezes
(gaps between rendered frames over 200 and 500 ms), small-text SSIM and PSNR against the
source, and where the time goes from getStats: encode, the sender's pacing, network (half
the round trip), jitter buffer, decode, and what remains (capture, render).

    scripts/bench glass                                   # writes results/glass.json
    scripts/bench glass --codecs VP8 --paths "direct;loss=1,rtt=50" --shape 0,500
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import socket
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from impairment import ImpairedUdpProxy, Impairment, shape_loopback
from join_latency import ARGS, TRACK_PCS, free_port, host_room, start_server
from playwright.sync_api import Browser, Page, sync_playwright

from peerscreen.config import Settings
from peerscreen.turn import LocalTurn

ROOT = Path(__file__).resolve().parent.parent
CLOCK = (Path(__file__).resolve().parent / "pages" / "clock.js").read_text()
CODECS = ("VP8", "VP9", "AV1", "H264")

# The host page's connections prefer one codec (the benchmark's choice, over the page's).
PREFER_CODEC = """
navigator.mediaDevices.getDisplayMedia = async () => window.peerscreenClock.source({
  fps: 30, scroll: new URLSearchParams(location.search).get("scroll") === "1",
});
(() => {
  const wanted = new URLSearchParams(location.search).get("codec");
  if (!wanted) return;
  const name = "video/" + wanted.toLowerCase();
  // Whatever order the page asks for, the benchmark's codec comes first.
  const setPreferences = RTCRtpTransceiver.prototype.setCodecPreferences;
  RTCRtpTransceiver.prototype.setCodecPreferences = function (codecs) {
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === name);
    return setPreferences.call(this, [...first, ...codecs.filter((c) => !first.includes(c))]);
  };
  const addTrack = RTCPeerConnection.prototype.addTrack;
  RTCPeerConnection.prototype.addTrack = function (...args) {
    const sender = addTrack.apply(this, args);
    const transceiver = this.getTransceivers().find((t) => t.sender === sender);
    if (transceiver && sender.track && sender.track.kind === "video") {
      transceiver.setCodecPreferences(RTCRtpSender.getCapabilities("video").codecs);
    }
    return sender;
  };
})();
"""

RECEIVER_STATS = """async () => {
  const pc = window.peerConnections.find((p) => p.connectionState === "connected");
  let out = {};
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") out = {
      ...out, jitterBufferDelay: s.jitterBufferDelay, emitted: s.jitterBufferEmittedCount,
      codecId: s.codecId, framesDecoded: s.framesDecoded, decodeTime: s.totalDecodeTime,
      packetsLost: s.packetsLost, packetsReceived: s.packetsReceived,
      nacks: s.nackCount, plis: s.pliCount, freezes: s.freezeCount,
      fecReceived: s.fecPacketsReceived, retransmitted: s.retransmittedPacketsReceived,
    };
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      out.rtt = s.currentRoundTripTime;
      const local = report.get(s.localCandidateId);
      out.path = local ? local.candidateType : null;
    }
  });
  const codec = out.codecId ? report.get(out.codecId) : null;
  out.codec = codec ? codec.mimeType : null;
  return out;
}"""
SENDER_STATS = """async () => {
  let out = {};
  for (const pc of window.peerConnections) {
    if (pc.connectionState !== "connected") continue;
    for (const sender of pc.getSenders()) {
      if (sender.track?.kind !== "video") continue;
      const parameters = sender.getParameters();
      const encoding = parameters.encodings?.[0] ?? {};
      out.settings = {
        degradation: parameters.degradationPreference ?? null,
        maxFramerate: encoding.maxFramerate ?? null,
        scale: encoding.scaleResolutionDownBy ?? null,
        maxBitrate: encoding.maxBitrate ?? null,
      };
    }
    (await pc.getStats()).forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        out.estimate = s.availableOutgoingBitrate;
      }
      if (s.type === "outbound-rtp" && s.kind === "video") out = {
        ...out, encodeTime: s.totalEncodeTime, framesEncoded: s.framesEncoded, bytes: s.bytesSent,
        width: s.frameWidth, height: s.frameHeight, sendDelay: s.totalPacketSendDelay,
        packets: s.packetsSent, scalabilityMode: s.scalabilityMode ?? null,
        limitation: s.qualityLimitationReason,
      };
    });
  }
  return out;
}"""


@dataclass(frozen=True)
class Setup:
    """One combination measured."""

    codec: str
    preset: str
    cap_kbps: int | None = None
    scalability: str | None = None
    text: str = "still"
    path: str = "direct"  # or an Impairment's text: through TURN behind the lossy hop
    shape_kbps: int | None = None
    hint: str | None = None  # the track's contentHint, over the page's
    degradation: str | None = None  # the sender's degradationPreference, over the page's
    max_fps: int | None = None  # the encoding's maxFramerate, over the page's
    scale: float | None = None  # the encoding's scaleResolutionDownBy, over the page's

    @property
    def sets_encoder(self) -> bool:
        """Whether the benchmark sets the sender up over the page's own settings."""
        return any(
            value is not None
            for value in (
                self.cap_kbps, self.scalability, self.hint, self.degradation, self.max_fps,
                self.scale,
            )
        )  # fmt: skip

    @property
    def relayed(self) -> bool:
        return self.path != "direct"

    def label(self) -> str:
        parts = [self.preset, self.codec]
        if self.scalability:
            parts.append(self.scalability)
        if self.cap_kbps:
            parts.append(f"cap {self.cap_kbps}")
        if self.text != "still":
            parts.append(self.text)
        if self.relayed:
            parts.append(f"turn {self.path}" if self.path != "turn" else "turn")
        if self.shape_kbps:
            parts.append(f"link {self.shape_kbps} kbit/s")
        if self.hint:
            parts.append(f"hint {self.hint}")
        if self.degradation:
            parts.append(self.degradation)
        if self.max_fps:
            parts.append(f"max {self.max_fps} fps")
        if self.scale:
            parts.append(f"scale 1/{self.scale:g}")
        return ", ".join(parts)


def share(browser: Browser, base: str, setup: Setup) -> tuple[Page, str]:
    query = f"?codec={setup.codec}&scroll={int(setup.text == 'scroll')}"
    host, link = host_room(
        browser,
        base,
        TRACK_PCS,
        CLOCK,
        PREFER_CODEC,
        query=query + ("&relay=1" if setup.relayed else ""),
    )
    if setup.preset == "motion":
        host.get_by_label("Motion").check()
    return host, link


# The benchmark's encoder settings, on top of the page's own.
SET_ENCODER = """async ({kbps, mode, hint, degradation, maxFps, scale}) => {
  for (const pc of window.peerConnections) {
    for (const sender of pc.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      if (hint) sender.track.contentHint = hint;
      const parameters = sender.getParameters();
      for (const encoding of parameters.encodings) {
        if (kbps) encoding.maxBitrate = kbps * 1000;
        if (mode) encoding.scalabilityMode = mode;
        if (maxFps) encoding.maxFramerate = maxFps;
        if (scale) encoding.scaleResolutionDownBy = scale;
      }
      if (degradation) parameters.degradationPreference = degradation;
      await sender.setParameters(parameters);
    }
  }
}"""


def per(total: float, count: float, scale: float = 1000.0) -> float | None:
    return round(scale * total / count, 1) if count else None


def measure(browser: Browser, base: str, setup: Setup, seconds: float) -> dict[str, Any]:
    host, link = share(browser, base, setup)
    viewer = browser.new_context(bypass_csp=True).new_page()
    viewer.add_init_script(TRACK_PCS)
    viewer.add_init_script(CLOCK)
    viewer.goto(link + ("?relay=1" if setup.relayed else ""))
    viewer.wait_for_function(
        "document.getElementById('remote-video').videoWidth > 0", timeout=30_000
    )
    if setup.sets_encoder:  # after the page's own, on connect
        viewer.wait_for_timeout(500)
        host.evaluate(
            SET_ENCODER,
            {
                "kbps": setup.cap_kbps, "mode": setup.scalability, "hint": setup.hint,
                "degradation": setup.degradation, "maxFps": setup.max_fps, "scale": setup.scale,
            },
        )  # fmt: skip
    # Settle: the first seconds of a connection ramp its bitrate up.
    viewer.wait_for_timeout(2000)
    viewer.evaluate(
        "(scroll) => window.peerscreenClock.watch(document.getElementById('remote-video'), "
        "{ scroll })",
        setup.text == "scroll",
    )
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
    negotiated = (receiver.get("codec") or "").removeprefix("video/")
    if negotiated.upper() != setup.codec.upper():  # a figure for the wrong codec is worse than none
        raise RuntimeError(
            f"asked for {setup.codec}, the connection used {negotiated or 'nothing'}"
        )
    if not readings:
        return {**asdict(setup), "label": setup.label(), "readings": 0, "rejected": rejected}
    latencies = sorted(r["latency"] for r in readings)
    times = [r["at"] for r in readings]
    gaps = [b - a for a, b in itertools.pairwise(times)]

    def pct(p: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(p * len(latencies)))])

    def delta(after: dict[str, Any], before: dict[str, Any], key: str) -> float:
        return float((after.get(key) or 0) - (before.get(key) or 0))

    def median_of(key: str, digits: int) -> float | None:
        values = [s[key] for s in sharpness if s.get(key) is not None]
        return round(statistics.median(values), digits) if values else None

    emitted = delta(receiver, receiver_before, "emitted")
    encoded = delta(sender, sender_before, "framesEncoded")
    lost = delta(receiver, receiver_before, "packetsLost")
    received = delta(receiver, receiver_before, "packetsReceived")
    p50 = pct(0.5)
    where = {
        "encode_ms": per(delta(sender, sender_before, "encodeTime"), encoded),
        "pacing_ms": per(
            delta(sender, sender_before, "sendDelay"), delta(sender, sender_before, "packets")
        ),
        "network_ms": round(500 * receiver["rtt"], 1) if receiver.get("rtt") else None,
        "jitter_buffer_ms": per(delta(receiver, receiver_before, "jitterBufferDelay"), emitted),
        "decode_ms": per(
            delta(receiver, receiver_before, "decodeTime"),
            delta(receiver, receiver_before, "framesDecoded"),
        ),
    }
    where["rest_ms"] = round(p50 - sum(v for v in where.values() if v is not None), 1)
    return {
        **asdict(setup),
        "label": setup.label(),
        "text_ssim": median_of("ssim", 4),
        "text_ssim_dark_on_light": median_of("darkOnLight", 4),
        "text_ssim_light_on_dark": median_of("lightOnDark", 4),
        "text_psnr_db": median_of("psnr", 1),
        "negotiated": receiver["codec"],
        "sent_scalability": sender.get("scalabilityMode"),
        "candidate": receiver.get("path"),
        "readings": len(latencies),
        "rejected": rejected,
        "p50_ms": p50,
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": float(latencies[-1]),
        "fps": round(len(latencies) / elapsed, 1),
        "freezes_over_200_ms": sum(1 for g in gaps if g > 200),
        "freezes_over_500_ms": sum(1 for g in gaps if g > 500),
        "longest_gap_ms": max(gaps) if gaps else None,
        "loss_percent": round(100 * lost / (lost + received), 2) if lost + received else 0.0,
        "nacks": delta(receiver, receiver_before, "nacks"),
        "retransmitted_received": delta(receiver, receiver_before, "retransmitted"),
        "fec_received": delta(receiver, receiver_before, "fecReceived"),
        "where_p50_goes": where,
        "jitter_buffer_ms": where["jitter_buffer_ms"],
        "encode_ms_per_frame": where["encode_ms"],
        "kbps": round(8 * delta(sender, sender_before, "bytes") / elapsed / 1000),
        "size": f"{sender.get('width')}x{sender.get('height')}",
        "limited_by": sender.get("limitation"),
        "sender_settings": sender.get("settings"),
        "send_estimate_kbps": round(sender["estimate"] / 1000) if sender.get("estimate") else None,
    }


def names(text: str, separator: str = ",") -> list[str]:
    return [part.strip() for part in text.split(separator) if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codecs", default=",".join(CODECS))
    parser.add_argument("--presets", default="detail,motion")
    parser.add_argument(
        "--caps", default="", help="bitrate caps in kbit/s, e.g. 300,1000,3000 (none: uncapped)"
    )
    parser.add_argument("--scalability", default="", help="modes to try, e.g. none,L1T3")
    parser.add_argument(
        "--hints", default="", help="contentHint to set on the track, e.g. detail,text"
    )
    parser.add_argument(
        "--degradations",
        default="",
        help="degradationPreference to set, e.g. maintain-resolution,balanced",
    )
    parser.add_argument("--framerates", default="", help="maxFramerate to set, e.g. 15,30")
    parser.add_argument("--scales", default="", help="scaleResolutionDownBy to set, e.g. 1,1.5")
    parser.add_argument("--text", default="still", help="still,scroll")
    parser.add_argument(
        "--paths",
        default="direct",
        help='";"-separated: direct, turn, or an impairment through TURN such as '
        '"loss=1,rtt=50,jitter=5" (end to end between the peers)',
    )
    parser.add_argument(
        "--shape", default="", help="loopback bandwidth caps in kbit/s (tbf), e.g. 0,500"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "glass.json"
    )
    args = parser.parse_args()
    if not 1 <= args.repeats <= 10 or not 5 <= args.seconds <= 300:
        parser.error("--repeats 1-10, --seconds 5-300")
    impairments: dict[str, Impairment] = {}  # by the path name a Setup carries
    paths: list[str] = []
    for given in names(args.paths, ";"):
        if given not in ("direct", "turn"):
            try:
                impairment = Impairment.parse(given)
            except ValueError as error:
                parser.error(str(error))
            given = str(impairment)
            impairments[given] = impairment
        paths.append(given)
    try:
        framerates = [int(f) for f in names(args.framerates)]
        scales = [float(f) for f in names(args.scales)]
    except ValueError as error:
        parser.error(f"--framerates and --scales take numbers: {error}")
    if not all(1 <= f <= 60 for f in framerates) or not all(1 <= k <= 16 for k in scales):
        parser.error("--framerates take 1-60 frames a second, --scales 1-16")
    setups = [
        Setup(codec, preset, cap, mode, text, path, shape, hint, degradation, fps, scale)
        for preset in names(args.presets)
        for degradation in list[str | None](names(args.degradations)) or [None]
        for fps in list[int | None](framerates) or [None]
        for scale in list[float | None](scales) or [None]
        for cap in [int(c) or None for c in names(args.caps)] or [None]
        for mode in [None if m == "none" else m for m in names(args.scalability)] or [None]
        for hint in list[str | None](names(args.hints)) or [None]
        for text in names(args.text)
        for path in paths
        for shape in [int(k) or None for k in names(args.shape)] or [None]
        for codec in names(args.codecs)  # innermost: a noisy moment hits every codec
    ]
    if len(setups) * args.repeats * (args.seconds + 8) > 4 * 3600:
        parser.error(f"{len(setups) * args.repeats} runs would take over four hours")
    turn = proxy = None
    relay_env: dict[str, str] = {}
    if any(setup.relayed for setup in setups):
        turn, proxy, relay_env = start_relay()
    port = free_port()
    server = start_server(port, env={**os.environ, **relay_env})
    base = f"http://127.0.0.1:{port}"
    runs: list[dict[str, Any]] = []
    try:
        executable = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            for repeat in range(args.repeats):
                for setup in setups:
                    if proxy is not None:
                        proxy.impairment = impairments.get(setup.path, Impairment())
                    with shape_loopback(setup.shape_kbps):
                        result = measure(browser, base, setup, args.seconds)
                    result["repeat"] = repeat + 1
                    runs.append(result)
                    print(json.dumps(result), flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
        if proxy is not None:
            proxy.stop()
        if turn is not None:
            turn.stop()
    summary = {}
    for setup in setups:
        mine = [r for r in runs if r["label"] == setup.label() and r["readings"]]
        summary[setup.label()] = {
            "p50_ms": [r["p50_ms"] for r in mine],
            "p95_ms": [r["p95_ms"] for r in mine],
            "text_ssim": [r["text_ssim"] for r in mine],
            "freezes_over_500_ms": [r["freezes_over_500_ms"] for r in mine],
        }
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seconds": args.seconds,
        "summary": summary,
        "runs": runs,
    }
    print(json.dumps(summary, indent=2))
    print(markdown(runs))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def markdown(runs: list[dict[str, Any]]) -> str:
    """One table row per combination, the repeats side by side (as in benchmarks/README)."""

    def spread(values: list[Any], unit: str = "") -> str:
        present = [v for v in values if v is not None]
        if not present:
            return "-"
        low, high = min(present), max(present)
        return f"{low:g}{unit}" if low == high else f"{low:g}-{high:g}{unit}"

    rows = [
        "| setup | p50 (each run) | p95 | max | fps | freezes > 200 / 500 ms | rejected "
        "| jitter buffer | encode / frame | kbit/s | text SSIM (PSNR) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in dict.fromkeys(r["label"] for r in runs):
        mine = [r for r in runs if r["label"] == label and r.get("readings")]
        if not mine:
            rows.append(f"| {label} | no readings | | | | | | | | | |")
            continue

        def each(key: str, mine: list[dict[str, Any]] = mine) -> list[Any]:
            return [r.get(key) for r in mine]

        p50 = ", ".join(f"{v:g}" for v in each("p50_ms"))
        p95 = ", ".join(f"{v:g}" for v in each("p95_ms"))
        freezes = f"{sum(each('freezes_over_200_ms'))} / {sum(each('freezes_over_500_ms'))}"
        ssim = spread(each("text_ssim"))
        psnr = spread(each("text_psnr_db"), " dB")
        rows.append(
            f"| {label} | {p50} ms | {p95} ms | {spread(each('max_ms'), ' ms')} "
            f"| {spread(each('fps'))} | {freezes} | {spread(each('rejected'))} "
            f"| {spread(each('jitter_buffer_ms'), ' ms')} "
            f"| {spread(each('encode_ms_per_frame'), ' ms')} | {spread(each('kbps'))} "
            f"| {ssim} ({psnr}) |"
        )
    return "\n".join(rows)


def start_relay() -> tuple[LocalTurn, ImpairedUdpProxy, dict[str, str]]:
    """coturn on loopback, the lossy hop in front of it, and the environment that points
    a server at the hop."""
    settings = Settings(
        host="127.0.0.1",
        turn_port=free_port(),
        turn_relay_ports="47000-47199",
        turn_allow_private_peers=True,
    )
    turn = LocalTurn(settings)
    turn.start()
    deadline = time.monotonic() + 10
    while True:  # coturn listens on TCP too: a connect means it is up
        try:
            socket.create_connection(("127.0.0.1", turn.port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                turn.stop()
                raise
            time.sleep(0.1)
    proxy = ImpairedUdpProxy(("127.0.0.1", turn.port)).start()
    env = {
        "PEERSCREEN_TURN_URLS": f"turn:127.0.0.1:{proxy.port}?transport=udp",
        "PEERSCREEN_TURN_SECRET": turn.secret,
    }
    return turn, proxy, env


if __name__ == "__main__":
    raise SystemExit(main())
