"""A new user's first hour: the paths the other tests never walked (blank names, the host
page after stopping, pasted links, double clicks, the viewer after leaving)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import ConsoleMessage, Page, Response, Route, expect

from ..support.processes import ServerProcess
from .pages import (
    expect_frames_flowing,
    peer_connection_count,
    start_sharing,
    track_peer_connections,
    watch,
)

NewPage = Callable[..., Page]

TRACK_CAPTURES = """
(() => {
  const native = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
  window.captures = [];
  navigator.mediaDevices.getDisplayMedia = async (...args) => {
    const stream = await native(...args);
    window.captures.push(stream);
    return stream;
  };
})();
"""
LIVE_TRACKS = """() => window.captures.flatMap((s) => s.getTracks())
  .filter((t) => t.readyState === "live").length"""


def rooms_created(server: ServerProcess) -> float:
    metrics = httpx.get(server.base_url + "/metrics").text
    line = next(m for m in metrics.splitlines() if m.startswith("peerscreen_rooms_created_total "))
    return float(line.split()[1])


def test_chat_works_for_people_who_left_their_name_blank(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    # Under the page's real Content-Security-Policy: no probes, only what a person does.
    host, viewer = new_page(enforce_csp=True), new_page(enforce_csp=True)
    code = start_sharing(host, memory_server.base_url)
    watch(viewer, memory_server.base_url, code)
    expect(viewer.locator("#status")).to_have_text("Connected.")
    for page, text in ((host, "hello from the host"), (viewer, "hello from a viewer")):
        expect(page.get_by_placeholder("Your name")).to_have_value("")
        page.get_by_placeholder("Write a message").fill(text)
        page.get_by_role("button", name="Send").click()
    for page in (host, viewer):
        log = page.locator("#chat-log li")
        expect(log).to_have_count(2)
        expect(log.nth(0).locator(".who")).to_contain_text("Host")
        expect(log.nth(1).locator(".who")).to_have_text(re.compile(r"^Viewer [a-z0-9]{4}$"))
        expect(page.locator("#status")).not_to_contain_text("at least 1 character")
    host.screenshot(path=str(screenshots / "host-chat-blank-names.png"))


def test_after_stop_the_host_sees_the_end_and_nothing_stays_captured(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host, viewer = new_page(), new_page()
    host.add_init_script(TRACK_CAPTURES)
    code = start_sharing(host, base)
    # This server listens on 127.0.0.1 only: the host is told its link works here only.
    expect(host.locator("#local-only-hint")).to_be_visible()
    expect(host.locator("#local-only-hint")).to_contain_text("--host 0.0.0.0")
    watch(viewer, base, code)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
    host.get_by_role("button", name="Stop sharing").click()

    expect(host.locator("#host-ended")).to_be_visible()
    expect(host.locator("#host-ended-summary")).to_contain_text("1 person watched")
    expect(host.locator("#local-only-hint")).to_be_hidden()
    expect(host.locator("#host-ended-summary")).to_contain_text("You shared for")
    # Nothing of the dead room is left to act on.
    for gone in ("#room-code", "#room-link", "#room-qr", "#lock-room", "#host-passcode", "#chat"):
        expect(host.locator(gone)).to_be_hidden()
    expect(host.locator("#status")).to_have_text("Sharing stopped.")
    assert host.evaluate(LIVE_TRACKS) == 0
    host.screenshot(path=str(screenshots / "host-after-stop.png"))

    # "Share something else" for the dead room (as a stale click would) captures nothing.
    host.evaluate("() => document.getElementById('switch-source').click()")
    expect(host.locator("#host-ended")).to_be_visible()
    assert host.evaluate("() => window.captures.length") == 1
    assert host.evaluate(LIVE_TRACKS) == 0

    # One clear action: share again, in a new room.
    host.get_by_role("button", name="Share again").click()
    expect(host.locator("#room-code")).to_be_visible()
    expect(host.locator("#room-code")).not_to_have_text(code)
    expect(host.locator("#status")).to_have_text("Sharing. Send the link to your viewers.")
    expect(host.locator("#viewer-count")).to_have_text("0")
    expect(host.locator("#chat-log li")).to_have_count(0)
    assert host.evaluate(LIVE_TRACKS) >= 1
    host.get_by_role("button", name="Stop sharing").click()
    expect(host.locator("#host-ended-summary")).to_contain_text("nobody watched")
    assert host.evaluate(LIVE_TRACKS) == 0


def test_double_clicking_start_sharing_makes_one_room(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    host = new_page()
    host.add_init_script(TRACK_CAPTURES)
    host.goto(memory_server.base_url + "/")
    before = rooms_created(memory_server)
    host.get_by_role("button", name="Start sharing").dblclick()
    expect(host.locator("#room-code")).to_have_text(re.compile(r"^[a-z0-9-]{15}$"))
    assert host.evaluate("() => window.captures.length") == 1
    assert rooms_created(memory_server) - before == 1
    host.get_by_role("button", name="Stop sharing").click()


def test_a_pasted_link_joins_and_junk_is_named_for_what_it_is(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    link = host.locator("#room-link").input_value()
    assert link.endswith(f"/r/{code}")

    viewer = new_page(enforce_csp=True)
    viewer.goto(base + "/")
    viewer.get_by_label("Join a room").fill(f"  {link}  ")
    viewer.get_by_role("button", name="Join").click()
    expect(viewer.locator("#status")).to_have_text("Connected.")
    expect(viewer).to_have_url(f"{base}/r/{code}")

    typed = new_page(enforce_csp=True)
    typed.goto(base + "/")
    typed.get_by_label("Join a room").fill(code.replace("-", " ").upper())
    typed.get_by_role("button", name="Join").click()
    expect(typed.locator("#status")).to_have_text("Connected.")

    junk = new_page(enforce_csp=True)
    junk.goto(base + "/")
    junk.get_by_label("Join a room").fill("see you at the meeting")
    junk.get_by_role("button", name="Join").click()
    expect(junk.locator("#status")).to_contain_text("That is not a room code")
    expect(junk.locator("#status")).not_to_contain_text("network")
    expect(junk.locator("#viewer-message")).to_be_hidden()
    expect(junk.locator("#landing")).to_be_visible()
    junk.screenshot(path=str(screenshots / "landing-not-a-code.png"))

    # A mistyped link says the same, with no connection check offered.
    junk.goto(base + "/r/not-a-room")
    expect(junk.locator("#viewer-message-title")).to_contain_text("That is not a room code")
    expect(junk.locator("#check-connection")).to_be_hidden()
    host.get_by_role("button", name="Stop sharing").click()


def test_after_leaving_the_viewer_page_offers_only_what_can_work(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host, viewer = new_page(), new_page(enforce_csp=True)
    code = start_sharing(host, base)
    watch(viewer, base, code)
    expect(viewer.locator("#status")).to_have_text("Connected.")
    viewer.get_by_role("button", name="Leave").click()
    expect(viewer.locator("#viewer-message-title")).to_have_text("You left the room.")
    # Said once: the card says it, the status bar only says the state.
    expect(viewer.get_by_text("You left the room.")).to_have_count(1)
    expect(viewer.locator("#status")).to_have_text("Not watching")
    # A voluntary leave is no connection problem; chat cannot work any more.
    expect(viewer.locator("#check-connection")).to_be_hidden()
    expect(viewer.get_by_placeholder("Write a message")).to_be_disabled()
    expect(viewer.locator("#chat-closed")).to_be_visible()
    viewer.screenshot(path=str(screenshots / "viewer-after-leave.png"))

    # Removed by the host, and the room's end: the same.
    removed = new_page(enforce_csp=True)
    watch(removed, base, code)
    expect(removed.locator("#status")).to_have_text("Connected.")
    host.locator("#viewer-list button[data-remove]").first.click()
    expect(removed.locator("#viewer-message-title")).to_have_text(
        "The host removed you from the room."
    )
    expect(removed.locator("#check-connection")).to_be_hidden()
    expect(removed.get_by_placeholder("Write a message")).to_be_disabled()

    ended = new_page(enforce_csp=True)
    watch(ended, base, code)
    expect(ended.locator("#status")).to_have_text("Connected.")
    host.get_by_role("button", name="Stop sharing").click()
    expect(ended.locator("#viewer-message-title")).to_have_text("Host ended sharing.")
    expect(ended.locator("#check-connection")).to_be_hidden()
    expect(ended.get_by_placeholder("Write a message")).to_be_disabled()


def record_problems(page: Page, label: str, problems: list[str]) -> None:
    """Collect the page's console errors and failed requests into ``problems``."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"{label} console: {message.text}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            problems.append(f"{label} {response.status} {response.url}")

    page.on("console", on_console)
    page.on("response", on_response)


def test_pages_load_without_errors_in_the_console(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    """A whole session, host and viewer, under the real Content-Security-Policy: no
    console error, no failed request (the favicon included)."""
    base = memory_server.base_url
    host, viewer = new_page(enforce_csp=True), new_page(enforce_csp=True)
    problems: list[str] = []
    record_problems(host, "host", problems)
    record_problems(viewer, "viewer", problems)
    code = start_sharing(host, base)
    watch(viewer, base, code)
    expect(viewer.locator("#status")).to_have_text("Connected.")
    viewer.get_by_placeholder("Write a message").fill("hi")
    viewer.get_by_role("button", name="Send").click()
    expect(host.locator("#chat-log li")).to_have_count(1)
    check = new_page(enforce_csp=True)
    record_problems(check, "check", problems)
    check.goto(base + "/check")
    expect(check.locator("#verdict")).not_to_have_attribute("data-verdict", "pending")
    assert httpx.get(base + "/favicon.ico").status_code == 200
    # A viewer that leaves, then closes its page: no request that can only fail.
    leaver = new_page(enforce_csp=True)
    record_problems(leaver, "leaver", problems)
    watch(leaver, base, code)
    expect(leaver.locator("#status")).to_have_text("Connected.")
    leaver.get_by_role("button", name="Leave").click()
    expect(leaver.locator("#viewer-message-title")).to_have_text("You left the room.")
    leaver.goto(base + "/")
    host.get_by_role("button", name="Stop sharing").click()
    expect(viewer.locator("#viewer-message-title")).to_have_text("Host ended sharing.")
    viewer.goto(base + "/")  # after the end: leaving the page asks nothing of the server
    host.goto(base + "/")
    expect(host.get_by_role("button", name="Start sharing")).to_be_visible()
    assert problems == [], problems


def test_viewers_hear_within_2_s_that_the_hosts_page_went_away(
    start_server: Callable[..., ServerProcess], new_page: NewPage, screenshots: Path
) -> None:
    server = start_server(heartbeat_interval=1, heartbeat_timeout=2.5, grace_period=4)
    host, viewer = new_page(), new_page()
    code = start_sharing(host, server.base_url)
    watch(viewer, server.base_url, code)
    expect_frames_flowing(viewer)
    expect(viewer.locator("#stalled")).to_be_hidden()
    started = time.monotonic()
    host.close()
    expect(viewer.locator("#status")).to_have_text(
        "The host's page went away. Waiting for it to come back...", timeout=2000
    )
    told = time.monotonic() - started
    assert told < 2, f"told after {told:.1f} s"
    # The frozen picture says it is frozen.
    expect(viewer.locator("#stalled")).to_be_visible(timeout=4000)
    expect(viewer.locator("#stalled")).to_contain_text("No new picture")
    viewer.screenshot(path=str(screenshots / "viewer-host-page-gone.png"))
    # And when the grace period is over, the room's end.
    expect(viewer.locator("#viewer-message-title")).to_have_text(
        "Host ended sharing.", timeout=15_000
    )
    expect(viewer.locator("#stalled")).to_be_hidden()


def test_the_api_reference_renders_with_no_internet(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    """/docs under its real Content-Security-Policy, with every request that does not go
    to this server refused."""
    page = new_page(enforce_csp=True)
    elsewhere: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(memory_server.base_url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    problems: list[str] = []
    record_problems(page, "docs", problems)
    page.goto(memory_server.base_url + "/docs")
    expect(page.get_by_text("POST/api/rooms", exact=False).first).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator(".title")).to_contain_text("peerscreen")
    page.screenshot(path=str(screenshots / "api-docs.png"))
    assert elsewhere == [] and problems == [], (elsewhere, problems)


def test_titles_counts_and_names_say_what_is_happening(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host = new_page(enforce_csp=True)
    code = start_sharing(host, base)
    expect(host).to_have_title("Sharing · 0 viewers · peerscreen")
    expect(host.get_by_text("No one yet: send the link.")).to_be_visible()
    first = new_page(enforce_csp=True)
    watch(first, base, code)
    expect(first.locator("#status")).to_have_text("Connected.")
    expect(first).to_have_title("Watching · peerscreen")
    expect(first.locator("#audience")).to_have_text("Only you are watching.")
    expect(host).to_have_title("Sharing · 1 viewer · peerscreen")
    expect(host.get_by_text("No one yet: send the link.")).to_be_hidden()
    second = new_page(enforce_csp=True)
    watch(second, base, code)
    for page in (first, second):
        expect(page.locator("#audience")).to_have_text("2 people are watching.")
    # The passcode's button and a viewer's cannot be mistaken for each other.
    expect(host.get_by_role("button", name="Clear passcode")).to_be_visible()
    expect(host.get_by_role("button", name=re.compile(r"^Remove "))).to_have_count(2)
    host.screenshot(path=str(screenshots / "host-two-viewers-titles.png"))
    second.get_by_role("button", name="Leave").click()
    expect(first.locator("#audience")).to_have_text("Only you are watching.")
    expect(second).to_have_title("Not watching · peerscreen")
    host.get_by_role("button", name="Stop sharing").click()
    expect(host).to_have_title("Stopped sharing · peerscreen")


def test_the_host_sees_a_preview_and_can_pause_without_losing_anyone(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host, viewer = new_page(), new_page()
    track_peer_connections(viewer)
    code = start_sharing(host, base)
    host.wait_for_function("document.getElementById('preview').videoWidth > 0")
    watch(viewer, base, code)
    expect_frames_flowing(viewer)

    host.get_by_role("button", name="Pause").click()
    expect(host.locator("#preview-paused")).to_be_visible()
    expect(host.get_by_role("button", name="Resume sharing")).to_be_visible()
    expect(viewer.locator("#status")).to_have_text("The host paused sharing.")
    expect(viewer.locator("#stalled")).to_contain_text("The host paused sharing")
    host.screenshot(path=str(screenshots / "host-paused.png"))
    viewer.screenshot(path=str(screenshots / "viewer-paused.png"))
    # Someone joining meanwhile is told too.
    late = new_page()
    watch(late, base, code)
    expect(late.locator("#status")).to_have_text("The host paused sharing.")

    host.get_by_role("button", name="Resume sharing").click()
    expect(viewer.locator("#status")).to_have_text("Connected.")
    expect_frames_flowing(viewer)
    expect_frames_flowing(late)
    # No renegotiation: the same single connection carried it all.
    assert peer_connection_count(viewer) == 1
    host.get_by_role("button", name="Stop sharing").click()
