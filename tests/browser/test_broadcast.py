"""Broadcast rooms: past --mesh-max viewers, the host publishes once to Janus and every
viewer receives from it. Janus is real (Debian's), started by the server (--janus), in
the suite's network namespace (scripts/netns), where it offers 127.0.0.2."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
from playwright.sync_api import Page, expect

from peerscreen.media.janus import JanusConnection, JanusError
from peerscreen.media.local_janus import LocalJanus

from ..support.commands import ClientCommand, room_link
from ..support.processes import RedisServer, ServerProcess, TurnServer, wait_until
from .pages import expect_frames_flowing, say, start_sharing, track_peer_connections, watch

NewPage = Callable[..., Page]
T = TypeVar("T")

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


def expect_reconnected(viewer: Page) -> None:
    """The viewer renders again over a new connection (a third one: its first from the
    host, its first from the media server, then this), the others closed, unreloaded."""
    viewer.wait_for_function(
        "window.peerConnections.filter((pc) => pc.connectionState === 'connected').length"
        " === 1 && window.peerConnections.length >= 3",
        timeout=30_000,
    )
    expect_frames_flowing(viewer)


def janus_server(start_server: Callable[..., ServerProcess], **options: object) -> ServerProcess:
    """A server with its own Janus, offering candidates on the namespace's 127.0.0.2."""
    return start_server(janus=True, janus_ice_addresses="127.0.0.2", **options)


def counted_host(new_page: NewPage, base: str) -> tuple[Page, str]:
    """A host page whose peer connections are counted, sharing; the page and room code."""
    host = new_page()
    track_peer_connections(host)
    return host, start_sharing(host, base)


def test_a_long_polling_viewer_receives_the_broadcast_too(
    media_network: None, start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    """A viewer whose WebSocket cannot open subscribes and answers over HTTP."""
    server = janus_server(start_server, mesh_max=1)
    host, code = counted_host(new_page, server.base_url)
    viewer = new_page()
    viewer.goto(f"{server.base_url}/r/{code}?transport=long-poll")
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(1)
    expect_frames_flowing(viewer)
    # The viewer's figures come from its own stream, the host's from its one upload.
    viewer.get_by_role("button", name="Stats").click()
    expect(viewer.locator("#stats-overlay")).to_contain_text("1280x720")
    expect(host.locator("#room-path")).to_contain_text("1280x720")
    host.wait_for_function(f"({OUTBOUND_VIDEO})().then((n) => n === 1)")


def test_past_mesh_max_viewers_the_host_uploads_once(
    media_network: None,
    start_server: Callable[..., ServerProcess],
    new_page: NewPage,
    screenshots: Path,
) -> None:
    server = janus_server(start_server, mesh_max=2)
    base = server.base_url
    host, code = counted_host(new_page, base)
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


def janus_of(server: ServerProcess) -> psutil.Process:
    """The Janus the server started (--janus)."""
    assert server.process is not None
    children = psutil.Process(server.process.pid).children()
    return next(child for child in children if child.name() == "janus")


def test_when_janus_dies_the_room_recovers_and_viewers_render_again(
    media_network: None, start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = janus_server(start_server, mesh_max=1)
    base = server.base_url
    host, code = counted_host(new_page, base)
    viewers = [new_page(), new_page()]
    for viewer in viewers:
        track_peer_connections(viewer)
        watch(viewer, base, code)
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(2)
    for viewer in viewers:
        expect_frames_flowing(viewer)
    first = janus_of(server)
    first.kill()  # SIGKILL: no goodbye, every session and room gone
    first.wait(10)
    # The supervisor starts a new Janus; the host publishes to it, viewers resubscribe,
    # each on a new connection, without reloading.
    for viewer in viewers:
        expect_reconnected(viewer)
    second = janus_of(server)
    assert second.pid != first.pid
    host.wait_for_function(f"({OUTBOUND_VIDEO})().then((n) => n === 1)")
    # Janus ends with the server.
    server.stop()
    second.wait(10)
    assert not second.is_running()


def media_handles(base: str) -> float:
    """Janus handles the server holds (peerscreen_media_handles)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    found = re.search(r"^peerscreen_media_handles (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_passcode_lock_remove_and_end_in_a_broadcast_room(
    media_network: None, start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = janus_server(start_server, mesh_max=1)
    base = server.base_url
    host = new_page()
    code = start_sharing(host, base)
    host.get_by_label("Passcode", exact=True).fill("blue heron")
    host.get_by_role("button", name="Set passcode").click()
    expect(host.locator("#status")).to_have_text("Passcode set: new viewers must enter it.")
    viewers = []
    for _ in range(2):
        viewer = new_page()
        watch(viewer, base, code)
        expect(viewer.locator("#passcode-prompt")).to_contain_text("needs a passcode")
        viewer.locator("#viewer-passcode").fill("blue heron")
        viewer.get_by_role("button", name="Join").click()
        viewers.append(viewer)
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(2)
    for viewer in viewers:
        expect_frames_flowing(viewer)
    wait_until(lambda: media_handles(base) == 3, 10, "host + 2 viewers on Janus")
    # Chat does not care how the picture travels.
    say(viewers[0], "Sharp text, thanks")
    expect(host.locator("#chat-log li")).to_contain_text(["Sharp text, thanks"])

    # Locked: a newcomer stays out, those inside keep watching.
    host.get_by_role("button", name="Lock room").click()
    outsider = new_page()
    watch(outsider, base, code)
    expect(outsider.locator("#viewer-message-title")).to_contain_text("locked this room")

    # Removed: its stream from Janus stops at once, not when ICE times out.
    viewer_id = host.locator("#viewer-list li").first.get_attribute("data-viewer-id")
    host.get_by_role("button", name=re.compile(f"Remove .*{viewer_id}")).click()
    expect(viewers[0].locator("#viewer-message-title")).to_have_text(
        "The host removed you from the room."
    )
    wait_until(lambda: media_handles(base) == 2, 3, "the removed viewer's handle gone")
    expect_frames_flowing(viewers[1])

    host.get_by_role("button", name="Stop sharing").click()
    expect(viewers[1].locator("#viewer-message-title")).to_have_text("Host ended sharing.")
    wait_until(lambda: media_handles(base) == 0, 3, "every handle gone with the room")


def test_two_browsers_and_ten_light_viewers_all_from_one_upload(
    media_network: None,
    start_server: Callable[..., ServerProcess],
    new_page: NewPage,
    screenshots: Path,
) -> None:
    server = janus_server(start_server, mesh_max=2)
    base = server.base_url
    host, code = counted_host(new_page, base)
    browsers = [new_page(), new_page()]
    for viewer in browsers:
        watch(viewer, base, code)
    light = subprocess.run(
        [sys.executable, "-m", "tests.support.many_viewers", f"{base}/r/{code}", "10",
         "--frames", "10", "--seconds", "90"],
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert light.returncode == 0, light.stderr[-3000:]
    result = json.loads(light.stdout.strip().splitlines()[-1])
    assert all(frames >= 10 for frames in result["frames"]), result
    assert all(result["from_media_server"]), result
    assert {tuple(size) for size in result["sizes"]} == {(1280, 720)}
    for viewer in browsers:
        expect_frames_flowing(viewer)
    host.wait_for_function(f"({OUTBOUND_VIDEO})().then((n) => n === 1)")
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(2)
    host.screenshot(path=str(screenshots / "host-broadcast-twelve.png"))
    # Twelve is past the mesh cap (--max-viewers, 10): a broadcast room takes more.
    info = host.evaluate(f"fetch('/api/rooms/{code}').then((r) => r.json())")
    assert (info["path"], info["maxViewers"]) == ("broadcast", 300)


# Records the longest time between two rendered frames of the viewer's video, across
# changes of its stream (the page swaps srcObject when the broadcast stream renders).
WATCH_GAPS = """() => {
  const video = document.getElementById("remote-video");
  window.longestGapMs = 0;
  window.framesSeen = 0;
  let last = performance.now();
  const tick = () => {
    const now = performance.now();
    window.longestGapMs = Math.max(window.longestGapMs, now - last);
    window.framesSeen += 1;
    last = now;
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}"""


def test_watching_viewers_keep_rendering_through_the_switch_to_broadcast(
    media_network: None, start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = janus_server(start_server, mesh_max=3)
    base = server.base_url
    host, code = counted_host(new_page, base)
    watching = [new_page(), new_page()]
    for viewer in watching:
        watch(viewer, base, code)
    for viewer in watching:
        expect_frames_flowing(viewer)
        viewer.evaluate(WATCH_GAPS)
    expect(host.locator("#room-path")).to_contain_text("Direct")
    # The third viewer takes the room to broadcast.
    third = new_page()
    watch(third, base, code)
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(3)
    host.wait_for_function(f"({OUTBOUND_VIDEO})().then((n) => n === 1)")
    for viewer in watching:
        before = viewer.evaluate("window.framesSeen")
        viewer.wait_for_function(f"window.framesSeen > {before} + 15")
        gap = viewer.evaluate("window.longestGapMs")
        print(f"longest frame gap through the switch: {gap:.0f} ms")
        # The picture went on: no freeze of the kind a break-before-make would cause.
        assert gap < 2000, f"the picture froze for {gap:.0f} ms during the switch"
    expect_frames_flowing(third)


PUBLISHER_MAX_FRAMERATE = """() => {
  const live = window.peerConnections.filter((pc) => pc.connectionState === "connected");
  const sender = live.at(-1).getSenders().find((s) => s.track && s.track.kind === "video");
  return sender.getParameters().encodings[0].maxFramerate;
}"""


NO_FRAMES_FOR_1500_MS = """() => {
  const video = document.getElementById("remote-video");
  const quality = video.getVideoPlaybackQuality().totalVideoFrames;
  if (window.lastFrames !== quality) {
    window.lastFrames = quality;
    window.stillSince = performance.now();
  }
  return performance.now() - window.stillSince > 1500;
}"""


def test_in_broadcast_the_host_pauses_switches_source_and_reloads(
    media_network: None, start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = janus_server(start_server, mesh_max=1)
    base = server.base_url
    host, code = counted_host(new_page, base)
    viewer = new_page()
    track_peer_connections(viewer)
    watch(viewer, base, code)
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(1)
    expect_frames_flowing(viewer)

    connections = viewer.evaluate("window.peerConnections.length")
    host.get_by_role("button", name="Pause").click()
    expect(viewer.locator("#status")).to_have_text("The host paused sharing.")
    # Long enough for Janus to see the media stop (it says so after a second).
    viewer.wait_for_function(NO_FRAMES_FOR_1500_MS, polling=100)
    host.get_by_role("button", name="Resume").click()
    expect_frames_flowing(viewer)
    # Resuming is not a new publication: nobody reconnects.
    assert viewer.evaluate("window.peerConnections.length") == connections
    # The quality presets reach the one upload to the media server.
    host.get_by_label("Motion").check()
    host.wait_for_function(f"({PUBLISHER_MAX_FRAMERATE})() === 30")
    host.get_by_role("button", name="Share something else").click()
    expect_frames_flowing(viewer)

    # A reload: the host's page publishes again, the viewer resubscribes by itself.
    host.reload()
    host.get_by_role("button", name="Resume sharing").click()
    expect(host.locator("#room-path")).to_contain_text("Broadcast", timeout=20_000)
    viewer.wait_for_function(f"window.peerConnections.length > {connections}")
    expect_frames_flowing(viewer)


@pytest.fixture
def two_media_nodes() -> Iterator[list[LocalJanus]]:
    """Two Janus of one deployment (shared secrets), each its own port range."""
    nodes = [
        LocalJanus(
            rtp_ports=(42000 + 200 * n, 42199 + 200 * n),
            ice_addresses=("127.0.0.2",),
            api_secret="test-api-secret",
            admin_secret="test-admin-key",
        )
        for n in range(2)
    ]
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


def rooms_on(node: LocalJanus) -> list[str]:
    """The VideoRoom rooms a node holds, asked over its API."""

    async def ask() -> list[str]:
        connection = await JanusConnection.open(node.url, node.config.api_secret)
        try:
            handle = await (await connection.create_session()).attach()
            data, _ = await handle.message(
                {"request": "list", "admin_key": node.config.admin_secret}
            )
            return [str(room["room"]) for room in data["list"]]
        finally:
            await connection.close()

    return in_thread(ask())


def test_two_processes_on_one_redis_and_two_media_nodes(
    media_network: None,
    start_server: Callable[..., ServerProcess],
    redis_server: RedisServer,
    two_media_nodes: list[LocalJanus],
    new_page: NewPage,
) -> None:
    """The host on one process, viewers on the other; the room on one node, then on the
    other when the first dies for good."""
    redis_server.flush()
    shared = {
        "redis_url": redis_server.url,
        "janus_urls": ",".join(node.url for node in two_media_nodes),
        "janus_api_secret": "test-api-secret",
        "janus_admin_key": "test-admin-key",
        "mesh_max": 1,
    }
    wait_until(lambda: all(_answers(node) for node in two_media_nodes), 10, "both nodes")
    first, second = start_server(**shared), start_server(**shared)
    host, code = counted_host(new_page, first.base_url)
    viewers = [new_page(), new_page()]
    for viewer in viewers:
        track_peer_connections(viewer)
        watch(viewer, second.base_url, code)
    for viewer in viewers:
        expect_frames_flowing(viewer)
    host.wait_for_function(f"({OUTBOUND_VIDEO})().then((n) => n === 1)")
    placed = [node for node in two_media_nodes if rooms_on(node)]
    assert len(placed) == 1, "the room is on exactly one node"
    other = next(node for node in two_media_nodes if node is not placed[0])

    placed[0].stop()  # for good: no restart
    for viewer in viewers:
        expect_reconnected(viewer)
    assert len(rooms_on(other)) == 1, "the room moved to the node that lives"
    host.wait_for_function(f"({OUTBOUND_VIDEO})().then((n) => n === 1)")


def _answers(node: LocalJanus) -> bool:
    async def ask() -> bool:
        try:
            connection = await JanusConnection.open(node.url, node.config.api_secret, 1)
        except JanusError:
            return False
        await connection.close()
        return True

    return in_thread(ask())


def in_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a thread of its own: Playwright's sync API keeps an
    event loop running on the test's thread."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


def test_a_terminal_host_publishes_to_the_media_server_too(
    media_network: None,
    start_server: Callable[..., ServerProcess],
    new_page: NewPage,
    artifacts: Path,
) -> None:
    server = janus_server(start_server, mesh_max=1)
    share = ClientCommand(
        artifacts / "logs",
        "share", "--server", server.base_url, "--test-pattern", "--size", "640x360",
        "--fps", "15", "--no-qr", "--ice-address", "127.0.0.2",
    ).start()  # fmt: skip
    try:
        link = room_link(share)
        viewers = [new_page(), new_page()]
        for viewer in viewers:
            track_peer_connections(viewer)
            viewer.goto(link)
        for viewer in viewers:
            expect_frames_flowing(viewer)
            # Its picture comes from the media server: the host's own connection closed.
            viewer.wait_for_function(
                "window.peerConnections.filter((pc) => pc.connectionState === 'connected')"
                ".length === 1"
            )
        share.wait_for(r"broadcast(.|\n)*broadcast")
        info = viewers[0].evaluate(f"fetch('{link.replace('/r/', '/api/rooms/')}')"
                                   ".then((r) => r.json())")  # fmt: skip
        assert info["path"] == "broadcast"
    finally:
        share.stop()


def test_relay_only_through_turn_in_a_broadcast_room(
    media_network: None,
    start_server: Callable[..., ServerProcess],
    new_page: NewPage,
    artifacts: Path,
) -> None:
    turn = TurnServer(artifacts / "logs", relay_ip="127.0.0.2").start()
    try:
        server = janus_server(
            start_server,
            mesh_max=1,
            turn_urls=turn.url,
            turn_secret=turn.secret,
            relay_only=True,
        )
        host = new_page()
        track_peer_connections(host)
        code = start_sharing(host, server.base_url)
        viewer = new_page()
        track_peer_connections(viewer)
        watch(viewer, server.base_url, code)
        expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(1)
        expect_frames_flowing(viewer)
        # Both the upload to Janus and the viewer's stream from it go through the relay.
        for page in (host, viewer):
            page.wait_for_function(f"({RELAYED_CONNECTIONS})().then((n) => n === 1)")
        # Janus was given the same relay, with credentials it asks this server for.
        assert "the media server fetched TURN credentials" in server.log()
    finally:
        turn.stop()


RELAYED_CONNECTIONS = """async () => {
  let relayed = 0;
  for (const pc of window.peerConnections) {
    if (pc.connectionState !== "connected") continue;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        const local = report.get(s.localCandidateId);
        if (local && local.candidateType === "relay") relayed += 1;
      }
    });
  }
  return relayed;
}"""


def test_with_no_media_server_left_a_small_room_goes_back_to_a_mesh(
    media_network: None,
    start_server: Callable[..., ServerProcess],
    two_media_nodes: list[LocalJanus],
    new_page: NewPage,
) -> None:
    only = two_media_nodes[0]
    two_media_nodes[1].stop()  # this test needs one
    wait_until(lambda: _answers(only), 10, "the media node")
    server = start_server(
        janus_urls=only.url,
        janus_api_secret="test-api-secret",
        janus_admin_key="test-admin-key",
        mesh_max=1,
    )
    host = new_page()
    code = start_sharing(host, server.base_url)
    viewer = new_page()
    track_peer_connections(viewer)
    watch(viewer, server.base_url, code)
    expect(host.locator("#viewer-list li[data-state='broadcast']")).to_have_count(1)
    expect_frames_flowing(viewer)
    only.stop()  # for good, and no other node
    # Within the recovery time (5 s) the host serves the viewer itself again.
    expect(host.locator("#room-path")).to_contain_text("Direct", timeout=20_000)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
    expect_reconnected(viewer)
