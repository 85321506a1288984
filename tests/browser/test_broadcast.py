"""Broadcast rooms: past --mesh-max viewers, the host publishes once to Janus and every
viewer receives from it. Janus is real (Debian's), started by the server (--janus), in
the suite's network namespace (scripts/netns), where it offers 127.0.0.2."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..support.processes import ServerProcess
from .pages import expect_frames_flowing, start_sharing, track_peer_connections, watch

NewPage = Callable[..., Page]

OUTBOUND_VIDEO = """async () => {
  let streams = 0;
  for (const pc of window.peerConnections) {
    if (pc.connectionState === "closed") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") streams += 1;
    });
  }
  return streams;
}"""


@pytest.fixture(scope="module")
def media_network() -> None:
    """Janus offers candidates only on a non-loopback interface: the namespace's jlo."""
    addresses = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", "jlo"], capture_output=True, text=True, check=False
    )
    if "127.0.0.2" not in addresses.stdout:
        pytest.fail("broadcast tests run in scripts/netns (scripts/test does that)")


def test_past_mesh_max_viewers_the_host_uploads_once(
    media_network: None,
    start_server: Callable[..., ServerProcess],
    new_page: NewPage,
    screenshots: Path,
) -> None:
    server = start_server(janus=True, janus_ice_addresses="127.0.0.2", mesh_max=2)
    base = server.base_url
    host = new_page()
    track_peer_connections(host)
    code = start_sharing(host, base)
    viewers = [new_page() for _ in range(3)]
    for viewer in viewers:
        watch(viewer, base, code)
    for viewer in viewers:
        expect_frames_flowing(viewer)
    expect(host.locator("#room-path")).to_contain_text("Broadcast", timeout=20_000)
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(3)
    host.wait_for_function(f"({OUTBOUND_VIDEO})().then((n) => n === 1)")
    for viewer in viewers:
        expect_frames_flowing(viewer)
    host.screenshot(path=str(screenshots / "host-broadcast.png"))
    info = host.evaluate(f"fetch('/api/rooms/{code}').then((r) => r.json())")
    assert info["path"] == "broadcast"
