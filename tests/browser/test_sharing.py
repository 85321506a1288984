"""A host shares its screen with viewers, in real Chromium against a real server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, Route, expect

from ..support.processes import ServerProcess, wait_until
from .pages import (
    VIDEO_SENDER,
    expect_frames_flowing,
    host_video_sender,
    peer_connection_count,
    start_sharing,
    track_peer_connections,
    watch,
)

NewPage = Callable[..., Page]


def test_host_and_two_viewers_see_frames_then_the_host_stops(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host = new_page()
    host.goto(base + "/")
    host.screenshot(path=str(screenshots / "landing.png"))
    code = start_sharing(host, base)

    viewers = [new_page(), new_page()]
    for viewer in viewers:
        watch(viewer, base, code)
    for viewer in viewers:
        expect_frames_flowing(viewer)

    expect(host.locator("#viewer-count")).to_have_text("2")
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(2)
    # This server has no TURN: the host is told viewers behind strict NAT may not connect.
    expect(host.locator("#no-relay-hint")).to_be_visible()
    host.screenshot(path=str(screenshots / "host-two-viewers.png"))
    viewers[0].screenshot(path=str(screenshots / "viewer-watching.png"))

    host.get_by_role("button", name="Stop sharing").click()
    for viewer in viewers:
        expect(viewer.locator("#viewer-message-title")).to_have_text("Host ended sharing.")
        expect(viewer.locator("#status")).to_have_attribute("data-state", "ended")
    viewers[0].screenshot(path=str(screenshots / "viewer-host-ended.png"))


def test_unknown_room_says_so_at_once(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    page = new_page()
    watch(page, memory_server.base_url, "zzzz-zzzzz-zzzz")
    expect(page.locator("#viewer-message-title")).to_contain_text("Room not found", timeout=3000)
    page.screenshot(path=str(screenshots / "viewer-room-not-found.png"))


def test_a_host_that_never_offers_times_out(
    start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = start_server(offer_timeout=2)
    room = httpx.post(server.base_url + "/api/rooms").json()
    page = new_page()
    watch(page, server.base_url, room["roomId"])
    expect(page.locator("#viewer-message-title")).to_contain_text("No offer received from host")


def test_quality_and_source_switches_keep_frames_and_connections(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host, viewer = new_page(), new_page()
    track_peer_connections(host)
    track_peer_connections(viewer)
    code = start_sharing(host, base)
    watch(viewer, base, code)
    expect_frames_flowing(viewer)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
    host.wait_for_function(f"({VIDEO_SENDER})().getParameters().encodings[0].maxFramerate === 15")
    assert host_video_sender(host)["contentHint"] == "detail"

    host.get_by_label("Motion").check()
    host.wait_for_function(f"({VIDEO_SENDER})().getParameters().encodings[0].maxFramerate === 30")
    assert host_video_sender(host)["contentHint"] == "motion"
    expect_frames_flowing(viewer)
    host.screenshot(path=str(screenshots / "host-quality-motion.png"))

    before = host_video_sender(host)["trackId"]
    host.get_by_role("button", name="Share something else").click()
    host.wait_for_function(f"({VIDEO_SENDER})().track.id !== {before!r}")
    assert host_video_sender(host)["contentHint"] == "motion"
    expect_frames_flowing(viewer)

    # Same connections throughout: nothing was renegotiated from scratch.
    assert peer_connection_count(host) == 1
    assert peer_connection_count(viewer) == 1


def test_a_viewer_leaves_and_another_joins_without_disturbing_the_rest(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    leaving, staying = new_page(), new_page()
    for viewer in (leaving, staying):
        watch(viewer, base, code)
        expect_frames_flowing(viewer)

    leaving.get_by_role("button", name="Leave").click()
    expect(leaving.locator("#viewer-message-title")).to_have_text("You left the room.")
    expect(host.locator("#viewer-count")).to_have_text("1")

    late = new_page()
    watch(late, base, code)
    expect_frames_flowing(late)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(2)
    expect_frames_flowing(staying)


def test_a_viewer_who_leaves_while_joining_does_not_stay_in_the_room(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    viewer = new_page()
    track_peer_connections(viewer)
    held: list[Route] = []

    def hold_the_join(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)  # answered below, once the viewer has left
        else:
            route.continue_()

    viewer.route("**/api/rooms/*/viewers", hold_the_join)
    watch(viewer, base, code)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        viewer.wait_for_timeout(20)  # lets Playwright run the route handler
    assert held, "the page never called join"

    viewer.get_by_role("button", name="Leave").click()
    expect(viewer.locator("#viewer-message-title")).to_have_text("You left the room.")
    with viewer.expect_response(lambda r: r.request.method == "POST") as joined:
        held[0].continue_()
    assert joined.value.ok  # the server did add this viewer...

    # ...and the page takes it back out at once, rather than connecting unseen.
    wait_until(
        lambda: httpx.get(f"{base}/api/rooms/{code}").json()["viewerCount"] == 0,
        5,
        "the room without the viewer who left",
    )
    expect(host.locator("#viewer-count")).to_have_text("0")
    assert peer_connection_count(viewer) == 0
    expect(viewer.locator("#viewer-message-title")).to_have_text("You left the room.")


def test_sharing_through_redis_with_a_long_polling_viewer(
    redis_backed_server: ServerProcess, new_page: NewPage
) -> None:
    base = redis_backed_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    viewer = new_page()
    viewer.goto(f"{base}/r/{code}?transport=long-poll")
    expect_frames_flowing(viewer)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
    host.get_by_role("button", name="Stop sharing").click()
    expect(viewer.locator("#viewer-message-title")).to_have_text("Host ended sharing.")


def test_a_full_room_says_so(start_server: Callable[..., ServerProcess], new_page: NewPage) -> None:
    server = start_server(max_viewers=1)
    room = httpx.post(server.base_url + "/api/rooms").json()
    httpx.post(f"{server.base_url}/api/rooms/{room['roomId']}/viewers")
    page = new_page()
    watch(page, server.base_url, room["roomId"])
    expect(page.locator("#viewer-message-title")).to_contain_text("Room is full")


def test_the_browsers_own_stop_button_ends_the_room(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    base = memory_server.base_url
    host, viewer = new_page(), new_page()
    track_peer_connections(host)
    code = start_sharing(host, base)
    watch(viewer, base, code)
    expect_frames_flowing(viewer)
    # The browser's "Stop sharing" bar ends the capture track; headless Chromium has no
    # such bar, so the test fires the same event the browser would.
    host.evaluate(
        "window.peerConnections[0].getSenders()"
        ".forEach((s) => s.track && s.track.dispatchEvent(new Event('ended')))"
    )
    expect(host.locator("#status")).to_have_text("Sharing stopped.")
    expect(viewer.locator("#viewer-message-title")).to_have_text("Host ended sharing.")


def test_the_viewer_page_fits_a_phone(
    memory_server: ServerProcess, browser: Browser, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True
    )
    try:
        page = phone.new_page()
        watch(page, base, code)
        expect_frames_flowing(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
        # The video takes the width of the screen...
        video = page.locator("#remote-video").bounding_box()
        assert video is not None and video["width"] >= 0.9 * 390, video
        # ...the controls stay on one row...
        tops = page.evaluate(
            "[...document.querySelectorAll('#viewer-controls button')]"
            ".filter((b) => b.offsetParent).map((b) => b.getBoundingClientRect().top)"
        )
        assert len(tops) >= 4 and max(tops) - min(tops) < 2, tops
        # ...and the statistics overlay covers a small part of the picture.
        page.get_by_role("button", name="Stats").click()
        expect(page.locator("#stats-overlay dd").first).to_be_visible()
        overlay = page.locator("#stats-overlay").bounding_box()
        assert overlay is not None
        share = overlay["width"] * overlay["height"] / (video["width"] * video["height"])
        assert share < 0.4, f"the overlay covers {share:.0%} of the video"
        page.screenshot(path=str(screenshots / "viewer-phone.png"))
    finally:
        phone.close()


def test_a_reloaded_host_resumes_and_viewers_reconnect(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host, viewer = new_page(), new_page()
    track_peer_connections(viewer)
    code = start_sharing(host, base)
    watch(viewer, base, code)
    expect_frames_flowing(viewer)

    host.reload()
    expect(host.locator("#resume-code")).to_have_text(code)
    host.screenshot(path=str(screenshots / "host-resume.png"))
    host.get_by_role("button", name="Resume sharing").click()
    expect(host.locator("#room-code")).to_have_text(code)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
    # The viewer got a new connection from the new host page, and frames again.
    viewer.wait_for_function("window.peerConnections.length === 2")
    expect_frames_flowing(viewer)


def test_a_host_that_closes_its_page_ends_the_room_after_the_grace_period(
    start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = start_server(heartbeat_interval=0.5, heartbeat_timeout=1.5, grace_period=2)
    host, viewer = new_page(), new_page()
    code = start_sharing(host, server.base_url)
    watch(viewer, server.base_url, code)
    expect_frames_flowing(viewer)
    host.close()
    expect(viewer.locator("#viewer-message-title")).to_have_text(
        "Host ended sharing.", timeout=15_000
    )


BLOCK_WEBSOCKETS = """
window.WebSocket = class BlockedWebSocket {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor() {
    this.readyState = 3;
    setTimeout(() => this.onclose && this.onclose({code: 1006, reason: ""}), 10);
  }
  send() {}
  close() {}
};
"""


def test_a_viewer_behind_a_websocket_blocking_proxy_falls_back_to_long_poll(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    viewer = new_page()
    viewer.add_init_script(BLOCK_WEBSOCKETS)
    viewer.goto(base + "/")
    viewer.get_by_label("Join a room").fill(code.upper().replace("-", " "))  # as typed
    viewer.get_by_role("button", name="Join").click()
    # The address bar shows the code in its canonical form, a link others can open.
    expect(viewer).to_have_url(f"{base}/r/{code}")
    expect_frames_flowing(viewer)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)


def test_a_browser_that_cannot_share_can_still_watch(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    page = new_page()
    page.add_init_script("delete MediaDevices.prototype.getDisplayMedia;")
    page.goto(memory_server.base_url + "/")
    expect(page.get_by_role("button", name="Start sharing")).to_be_disabled()
    expect(page.locator("#share-unsupported")).to_contain_text("You can still watch")
    expect(page.get_by_role("button", name="Join")).to_be_enabled()


def test_the_page_works_under_its_own_content_security_policy(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    base = memory_server.base_url
    violations: list[str] = []
    host, viewer = new_page(enforce_csp=True), new_page(enforce_csp=True)
    for page in (host, viewer):
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
    code = start_sharing(host, base)
    expect(host.locator("#room-qr")).to_have_attribute("src", f"/api/rooms/{code}/qr.svg")
    watch(viewer, base, code)
    expect(viewer.locator("#status")).to_have_text("Connected.")
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
    assert violations == []
