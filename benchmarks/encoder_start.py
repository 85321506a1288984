"""Where the first frame's "first packet" phase goes: a Chromium trace of one viewer
opening a room link, read for the host's encoder starting and the viewer's first decode.

The page's own marks stop at "connected" and at the first frame's receive time; what the
host does in between happens in WebRTC's threads, which only a trace shows. getStats
cannot: Chromium caches its report for up to 50 ms, as long as the whole phase.

Times are in ms from the viewer page's "connected" event. The events read are Chromium's
own trace events (names as of Chromium 120-156): ``WebRtcVideoSource::OnFrameCaptured``
(a captured frame reaching WebRTC), the frame cadence adapter's tasks on the encoder
queue (a long one with no encode inside is the encoder being set up),
``VideoEncoder::Encode`` and ``VCMGenericDecoder::Decode``.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from join_latency import FIRST_FRAME, rendered_page
from playwright.sync_api import Browser

# Marks in the trace (performance.mark, category blink.user_timing) for each page's
# connection: "<who>-answer" when the viewer's answer is set, "<who>-connected".
CONNECTION_MARKS = """
(() => {
  const who = location.pathname.startsWith("/r/") ? "viewer" : "host";
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected") performance.mark(`${who}-connected`);
      });
    }
    async setLocalDescription(...args) {
      const result = await super.setLocalDescription(...args);
      if (this.localDescription?.type === "answer") performance.mark(`${who}-answer`);
      return result;
    }
  };
})();
"""

CATEGORIES = ["blink.user_timing", "webrtc", "media", "toplevel"]
SET_UP_MIN_MS = 10.0  # a cadence adapter task this long with no encode in it


def traced_open(browser: Browser, link: str) -> list[dict[str, Any]]:
    """Open ``link`` in a fresh context while Chromium traces, until the first frame
    renders; the trace's events."""
    browser.start_tracing(categories=CATEGORIES)
    try:
        with rendered_page(browser, link, FIRST_FRAME, CONNECTION_MARKS):
            pass
    finally:
        data = json.loads(browser.stop_tracing())
    events: list[dict[str, Any]] = data["traceEvents"] if isinstance(data, dict) else data
    return events


def _mark(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("name") == name), None)


def encoder_start(events: list[dict[str, Any]]) -> dict[str, float] | None:
    """The host's encoder starting and the viewer's first decode, from one traced open;
    None if the trace lacks the marks (the open failed)."""
    connected, answer = _mark(events, "viewer-connected"), _mark(events, "viewer-answer")
    host_connected = _mark(events, "host-connected")
    if connected is None or answer is None or host_connected is None:
        return None
    t0, host, viewer = connected["ts"], host_connected["pid"], connected["pid"]

    def at(event: dict[str, Any]) -> float:
        return float(event["ts"] - t0) / 1000

    def dur(event: dict[str, Any]) -> float:
        return float(event.get("dur", 0)) / 1000

    # Nothing of this connection is encoded before the viewer answered.
    after = [e for e in events if e.get("ts", 0) >= answer["ts"]]
    encodes = [
        e for e in after if e["pid"] == host and e["name"] == "VideoEncoder::Encode" and "dur" in e
    ]
    if not encodes:
        return None
    first = min(encodes, key=lambda e: e["ts"])
    set_ups = [
        e
        for e in after
        if e["pid"] == host
        and e["name"] == "ThreadPool_RunTask"
        and "frame_cadence_adapter" in str(e.get("args", {}).get("src_file", ""))
        and dur(e) >= SET_UP_MIN_MS
        and e["ts"] < first["ts"]
        and not any(e["ts"] <= x["ts"] <= e["ts"] + e["dur"] for x in encodes)
    ]
    # Frames captured once the encoder could start (its set-up began with one) that were
    # not encoded; one capture reaches WebRTC once per connection: count distinct frames.
    since = min((e["ts"] for e in set_ups), default=first["ts"])
    captured = {
        e.get("args", {}).get("ts")
        for e in after
        if e["pid"] == host
        and e["name"] == "WebRtcVideoSource::OnFrameCaptured"
        and since - 5000 <= e["ts"] < first["ts"] - 5000  # not the encoded frame's own
    }
    decodes = [
        e
        for e in after
        if e["pid"] == viewer and e["name"] == "VCMGenericDecoder::Decode" and "dur" in e
    ]
    result = {
        "host connected": at(host_connected),
        "encoder set-up ms": sum(dur(e) for e in set_ups),
        "frames captured, not encoded": float(len(captured)),
        "first encode starts": at(first),
        "first encode ms": dur(first),
    }
    if set_ups:
        result["encoder set-up starts"] = at(min(set_ups, key=lambda e: e["ts"]))
    if decodes:
        decode = min(decodes, key=lambda e: e["ts"])
        result["first decode starts"] = at(decode)
        result["first decode ms"] = dur(decode)
    return {key: round(value, 1) for key, value in result.items()}


def medians(readings: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(key for reading in readings for key in reading)
    return {key: round(statistics.median(r[key] for r in readings if key in r), 1) for key in keys}
