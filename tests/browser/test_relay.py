"""Connections through a real coturn on loopback, forced to relay."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from ..support.processes import ServerProcess, TurnServer
from .pages import expect_frames_flowing, start_sharing

NewPage = Callable[..., Page]

SELECTED_PAIR_TYPES = """async () => {
  const pc = window.peerConnections[0];
  const stats = await pc.getStats();
  let pairId = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  const pair = pairId && stats.get(pairId);
  if (!pair) return null;
  const type = (id) => stats.get(id).candidateType;
  return [type(pair.localCandidateId), type(pair.remoteCandidateId)];
}"""

TRACK_PCS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.peerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.peerConnections.push(this); }
  };
})();
"""


def test_relay_only_viewer_renders_frames_through_turn(
    start_server: Callable[..., ServerProcess], turn_server: TurnServer, new_page: NewPage
) -> None:
    server = start_server(turn_urls=turn_server.url, turn_secret=turn_server.secret)
    host = new_page()
    host.add_init_script(TRACK_PCS)
    host.goto(server.base_url + "/?relay=1")
    host.get_by_role("button", name="Start sharing").click()
    expect(host.locator("#room-code")).not_to_be_empty()
    code = host.locator("#room-code").inner_text()
    viewer = new_page()
    viewer.add_init_script(TRACK_PCS)
    viewer.goto(f"{server.base_url}/r/{code}?relay=1")
    expect_frames_flowing(viewer)
    viewer.wait_for_function(f"({SELECTED_PAIR_TYPES})().then((t) => t !== null)")
    types = viewer.evaluate(SELECTED_PAIR_TYPES)
    assert types[0] == "relay", types


def test_wrong_turn_credentials_are_refused_and_the_page_says_so(
    start_server: Callable[..., ServerProcess], turn_server: TurnServer, new_page: NewPage
) -> None:
    server = start_server(turn_urls=turn_server.url, turn_secret="not-the-coturn-secret")
    host = new_page()
    code = start_sharing(host, server.base_url)
    viewer = new_page()
    viewer.goto(f"{server.base_url}/r/{code}?relay=1")
    expect(viewer.locator("#status")).to_contain_text(
        "Could not reach the host through the relay", timeout=60_000
    )
