"""What a person sees and does on the page, as test helpers."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

COUNT_FRAMES = """() => {
  const video = document.getElementById("remote-video");
  window.framesRendered = 0;
  const tick = () => { window.framesRendered++; video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
}"""


def start_sharing(page: Page, base_url: str) -> str:
    """Open the start page, click Start sharing; the room code the page shows."""
    page.goto(base_url + "/")
    page.get_by_role("button", name="Start sharing").click()
    code = page.locator("#room-code")
    expect(code).to_have_text(re.compile(r"^[a-z0-9]{4}-[a-z0-9]{5}-[a-z0-9]{4}$"))
    return code.inner_text()


def watch(page: Page, base_url: str, code: str) -> None:
    page.goto(f"{base_url}/r/{code}")


def expect_frames_flowing(page: Page, frames: int = 15) -> None:
    """The viewer's video renders new frames and its clock advances."""
    expect(page.locator("body")).to_have_attribute("data-viewer-state", "connected")
    page.wait_for_function("document.getElementById('remote-video').videoWidth > 0")
    page.evaluate(COUNT_FRAMES)
    start = page.evaluate("document.getElementById('remote-video').currentTime")
    page.wait_for_function(f"window.framesRendered >= {frames}")
    page.wait_for_function(f"document.getElementById('remote-video').currentTime > {start} + 0.3")


def status_text(page: Page) -> str:
    return page.locator("#status").inner_text()


TRACK_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.peerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.peerConnections.push(this); }
  };
})();
"""


def track_peer_connections(page: Page) -> None:
    """Count the page's RTCPeerConnections (installed before the page's own scripts)."""
    page.add_init_script(TRACK_PEER_CONNECTIONS)


def peer_connection_count(page: Page) -> int:
    count: int = page.evaluate("window.peerConnections.length")
    return count


VIDEO_SENDER = """() => window.peerConnections[0].getSenders()
  .find((s) => s.track && s.track.kind === "video")"""


def host_video_sender(page: Page) -> dict[str, object]:
    """The first viewer connection's video sender: its track and encoding settings."""
    result: dict[str, object] = page.evaluate(
        f"""() => {{
      const sender = ({VIDEO_SENDER})();
      const encoding = sender.getParameters().encodings[0] || {{}};
      return {{trackId: sender.track.id, contentHint: sender.track.contentHint,
               maxFramerate: encoding.maxFramerate ?? null}};
    }}"""
    )
    return result


def say(page: Page, text: str, name: str | None = None) -> None:
    """Write in the room's chat, under ``name`` when given."""
    if name is not None:
        page.get_by_placeholder("Your name").fill(name)
    page.get_by_placeholder("Write a message").fill(text)
    page.get_by_role("button", name="Send").click()
