"""Connections through a real coturn on loopback, forced to relay."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
from playwright.sync_api import Page, expect

from ..support.processes import ServerProcess, TurnServer, free_port, wait_until
from .pages import expect_frames_flowing, start_sharing, track_peer_connections

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


def test_relay_only_viewer_renders_frames_through_turn(
    start_server: Callable[..., ServerProcess], turn_server: TurnServer, new_page: NewPage
) -> None:
    server = start_server(turn_urls=turn_server.url, turn_secret=turn_server.secret)
    host = new_page()
    track_peer_connections(host)
    host.goto(server.base_url + "/?relay=1")
    host.get_by_role("button", name="Start sharing").click()
    expect(host.locator("#room-code")).not_to_be_empty()
    code = host.locator("#room-code").inner_text()
    viewer = new_page()
    track_peer_connections(viewer)
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
    expect(viewer.locator("#viewer-message-title")).to_contain_text(
        "Could not reach the host through the relay", timeout=60_000
    )


def test_stats_overlay_and_metrics_show_what_happened(
    start_server: Callable[..., ServerProcess], turn_server: TurnServer, new_page: NewPage
) -> None:
    server = start_server(turn_urls=turn_server.url, turn_secret=turn_server.secret)
    host = new_page()
    code = start_sharing(host, server.base_url)
    direct, relayed = new_page(), new_page()
    direct.goto(f"{server.base_url}/r/{code}")
    relayed.goto(f"{server.base_url}/r/{code}?relay=1")
    for viewer in (direct, relayed):
        expect_frames_flowing(viewer)
    relayed.keyboard.press("s")  # the key toggles the overlay, as the button does
    overlay = relayed.locator("#stats-overlay")
    expect(overlay).to_be_visible()
    expect(overlay.locator("[data-stat=resolution]")).to_have_text("1280x720")
    expect(overlay.locator("[data-stat=path]")).to_have_text("via relay (TURN)")
    expect(overlay.locator("[data-stat=bitrate]")).not_to_have_text("0 kbit/s")
    expect(overlay.locator("[data-stat=frame-rate]")).not_to_have_text("0 fps")
    expect(host.locator("#upload-total")).to_contain_text("uploading")
    expect(host.locator("#no-relay-hint")).to_be_hidden()
    expect(host.locator("#viewer-list .link-stats").first).to_contain_text("fps")
    # Both overlays say which codec is in use.
    expect(host.locator("#viewer-list .link-stats").first).to_contain_text("VP8")
    expect(overlay.locator("[data-stat=codec]")).to_have_text("VP8")

    def metric(name: str) -> float:
        """A sample's value from /metrics (0 when absent)."""
        for line in httpx.get(server.base_url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    # Each viewer's page reports its setup time and path once its first frame renders.
    wait_until(
        lambda: (
            metric('peerscreen_connection_setup_seconds_count{path="relay"}') >= 1
            and metric('peerscreen_connection_setup_seconds_count{path="direct"}') >= 1
        ),
        10,
        "both viewers' connection reports in /metrics",
    )
    assert metric("peerscreen_rooms_created_total") >= 1
    assert metric("peerscreen_viewers_joined_total") >= 2
    assert metric('peerscreen_messages_relayed_total{type="offer"}') >= 2
    httpx.get(server.base_url + "/api/rooms/zzzz-zzzzz-zzzz")
    assert metric('peerscreen_errors_total{code="room_not_found"}') >= 1


def test_check_page_verdicts(
    start_server: Callable[..., ServerProcess],
    memory_server: ServerProcess,
    turn_server: TurnServer,
    new_page: NewPage,
    screenshots: Path,
) -> None:
    page = new_page()
    page.goto(memory_server.base_url + "/check")
    expect(page.locator("#verdict")).to_have_attribute("data-verdict", "no-relay")
    expect(page.locator("#verdict-title")).to_have_text("No relay is configured")
    # Not a success: not in green. And with no STUN server, STUN was not tested at all.
    expect(page.locator("#status")).to_have_attribute("data-state", "warning")
    expect(page.locator("[data-check=srflx]")).to_have_attribute("data-ok", "untested")
    expect(page.locator("[data-check=srflx]")).to_contain_text("no STUN server is configured")
    expect(page.locator("[data-check=relay]")).to_have_attribute("data-ok", "untested")
    page.screenshot(path=str(screenshots / "check-no-relay.png"))
    expect(page.locator("[data-check=webrtc]")).to_have_attribute("data-ok", "true")
    expect(page.locator("[data-check=screen]")).to_have_attribute("data-ok", "true")

    working = start_server(turn_urls=turn_server.url, turn_secret=turn_server.secret)
    page.goto(working.base_url + "/check")
    # The TURN server also answers as STUN, so the browser learns its public address too.
    expect(page.locator("#verdict")).to_have_attribute("data-verdict", "direct-ok")
    expect(page.locator("#verdict-text")).to_contain_text("the relay is there")
    expect(page.locator("[data-check=relay]")).to_have_attribute("data-ok", "true")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.screenshot(path=str(screenshots / "check-relay-ok.png"))

    unreachable = start_server(
        turn_urls=f"turn:127.0.0.1:{free_port()}?transport=udp", turn_secret="whatever"
    )
    page.goto(unreachable.base_url + "/check")
    expect(page.locator("#verdict")).to_have_attribute(
        "data-verdict", "relay-broken", timeout=30_000
    )
    expect(page.locator("#verdict-title")).to_contain_text("did not give a relay address")

    # Static credentials are never handed to this public page: it says it cannot test them.
    static = start_server(
        turn_urls=turn_server.url, turn_username="someone", turn_password="not-for-the-page"
    )
    page.goto(static.base_url + "/check")
    expect(page.locator("#verdict")).to_have_attribute("data-verdict", "relay-unchecked")
    expect(page.locator("#verdict-title")).to_have_text(
        "A relay is configured, but this page cannot test it"
    )
    expect(page.locator("[data-check=relay]")).to_have_attribute("data-ok", "untested")
    expect(page.locator("[data-check=relay]")).to_contain_text("Not tested")
    page.screenshot(path=str(screenshots / "check-relay-unchecked.png"))


def test_serve_with_turn_runs_its_own_coturn(
    start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    low = 45000 + free_port() % 1000 * 10
    server = start_server(turn=True, turn_port=free_port(), turn_relay_ports=f"{low}-{low + 9}")
    assert httpx.get(server.base_url + "/api/config").json()["relayAvailable"] is True
    page = new_page()
    page.goto(server.base_url + "/check")
    expect(page.locator("[data-check=relay]")).to_have_attribute("data-ok", "true")

    # Supervised: when coturn dies, the server starts it again.
    assert server.process is not None

    def coturn_pids() -> set[int]:
        children = psutil.Process(server.process.pid).children()  # type: ignore[union-attr]
        return {
            c.pid
            for c in children
            if c.name() == "turnserver" and c.is_running() and c.status() != psutil.STATUS_ZOMBIE
        }

    (first,) = coturn_pids()
    # Its secret is not on its command line, which every local user can read.
    check = httpx.get(server.base_url + "/api/check/ice-servers").json()
    arguments = " ".join(psutil.Process(first).cmdline())
    assert "static-auth-secret" not in arguments and "--denied-peer-ip=10.0.0.0" in arguments
    assert check["relayCheckable"] is True
    psutil.Process(first).kill()
    wait_until(lambda: coturn_pids() - {first}, 15, "coturn restarted by the server")
    page.goto(server.base_url + "/check")
    expect(page.locator("[data-check=relay]")).to_have_attribute("data-ok", "true")

    # Stopping the server leaves no coturn behind.
    (second,) = coturn_pids()
    server.stop()
    wait_until(
        lambda: (
            not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE
        ),
        10,
        "coturn to end with the server",
    )


def test_serve_with_turn_says_when_coturn_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peerscreen", "serve", "--turn", "--port", str(free_port())],
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "apt install coturn" in result.stderr
