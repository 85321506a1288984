"""A host shares its screen with viewers, in real Chromium against a real server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from ..support.processes import ServerProcess
from .pages import expect_frames_flowing, start_sharing, watch

NewPage = Callable[[], Page]


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
    host.screenshot(path=str(screenshots / "host-two-viewers.png"))
    viewers[0].screenshot(path=str(screenshots / "viewer-watching.png"))

    host.get_by_role("button", name="Stop sharing").click()
    for viewer in viewers:
        expect(viewer.locator("#status")).to_have_text("Host ended sharing.")
        expect(viewer.locator("#status")).to_have_attribute("data-state", "ended")
    viewers[0].screenshot(path=str(screenshots / "viewer-host-ended.png"))


def test_unknown_room_says_so_at_once(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    page = new_page()
    watch(page, memory_server.base_url, "zzzz-zzzzz-zzzz")
    expect(page.locator("#status")).to_contain_text("Room not found", timeout=3000)
    page.screenshot(path=str(screenshots / "viewer-room-not-found.png"))


def test_a_host_that_never_offers_times_out(
    start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = start_server(offer_timeout=2)
    room = httpx.post(server.base_url + "/api/rooms").json()
    page = new_page()
    watch(page, server.base_url, room["roomId"])
    expect(page.locator("#status")).to_contain_text("No offer received from host")
