"""Chat, passcodes, locking, removing viewers, the access secret and rate limits, as
people meet them in the page."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from ..support.processes import ServerProcess
from .pages import expect_frames_flowing, say, start_sharing, watch

NewPage = Callable[..., Page]
XSS = "<img src=x onerror=alert(1)>"


def test_chat_between_host_and_viewers_with_history_and_no_markup(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host, alice, bob = new_page(), new_page(), new_page()
    code = start_sharing(host, base)
    for viewer in (alice, bob):
        watch(viewer, base, code)
        expect(viewer.locator("#status")).to_have_text("Connected.")
    say(host, "Welcome!", name="Dana")
    say(alice, "Hi Dana", name="Alice")
    say(bob, XSS, name="Bob")
    for page in (host, alice, bob):
        log = page.locator("#chat-log li")
        expect(log).to_have_count(3)
        expect(log.nth(0)).to_contain_text("Dana")
        expect(log.nth(0)).to_contain_text("Welcome!")
        expect(log.nth(1)).to_contain_text("Hi Dana")
        expect(log.nth(2).locator(".text")).to_have_text(XSS)  # shown as its characters
        expect(page.locator("#chat-log img")).to_have_count(0)
        # The host's messages are marked by who sent them, whatever the name.
        expect(log.nth(0).locator(".badge")).to_have_text("host")
        expect(log.nth(1).locator(".badge")).to_have_count(0)
    # A viewer cannot pass for the host by name: refused, and the page says why.
    say(bob, "trust me", name="Host")
    expect(bob.locator("#chat-log li")).to_have_count(3)
    expect(bob.locator("body")).to_contain_text("Only the host's name may say 'host'")
    # The host's viewer list shows the names viewers chose.
    expect(host.locator("#viewer-list")).to_contain_text("Alice")
    expect(host.locator("#viewer-list")).to_contain_text("Bob")
    host.screenshot(path=str(screenshots / "host-chat.png"))

    late = new_page()
    watch(late, base, code)
    expect(late.locator("#chat-log li")).to_have_count(3)
    expect(late.locator("#chat-log li").nth(2).locator(".text")).to_have_text(XSS)


def test_passcode_wrong_then_right(
    memory_server: ServerProcess, new_page: NewPage, screenshots: Path
) -> None:
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    host.get_by_label("Passcode", exact=True).fill("blue heron")
    host.get_by_role("button", name="Set passcode").click()
    expect(host.locator("#status")).to_have_text("Passcode set: new viewers must enter it.")

    viewer = new_page()
    watch(viewer, base, code)
    expect(viewer.locator("#passcode-prompt")).to_contain_text("needs a passcode")
    viewer.locator("#viewer-passcode").fill("red heron")
    viewer.get_by_role("button", name="Join").click()
    expect(viewer.locator("#passcode-prompt")).to_contain_text("Wrong passcode")
    viewer.screenshot(path=str(screenshots / "viewer-passcode.png"))
    viewer.locator("#viewer-passcode").fill("blue heron")
    viewer.get_by_role("button", name="Join").click()
    expect_frames_flowing(viewer)


def test_lock_keeps_new_viewers_out_and_remove_closes_one(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    base = memory_server.base_url
    host, inside = new_page(), new_page()
    code = start_sharing(host, base)
    watch(inside, base, code)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)

    host.get_by_role("button", name="Lock room").click()
    expect(host.locator("#lock-room")).to_have_attribute("aria-pressed", "true")
    outside = new_page()
    watch(outside, base, code)
    expect(outside.locator("#viewer-message-title")).to_contain_text(
        "The host has locked this room"
    )
    expect(inside.locator("#status")).to_have_text("Connected.")  # those inside stay

    viewer_id = host.locator("#viewer-list li").first.get_attribute("data-viewer-id")
    host.get_by_role("button", name=re.compile(f"Remove .*{viewer_id}")).click()
    expect(inside.locator("#viewer-message-title")).to_have_text(
        "The host removed you from the room."
    )
    expect(host.locator("#viewer-count")).to_have_text("0")


def test_access_secret_is_asked_once_per_tab(
    start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = start_server(auth_secret="correct horse")
    host = new_page()
    host.goto(server.base_url + "/")
    host.get_by_role("button", name="Start sharing").click()
    secret = host.get_by_label("This server asks for its access secret")
    secret.fill("wrong horse")
    host.get_by_role("button", name="Continue").click()
    expect(secret).to_be_visible()  # asked again: that was not it
    secret.fill("correct horse")
    host.get_by_role("button", name="Continue").click()
    expect(host.locator("#room-code")).to_have_text(re.compile(r"^\S+-\S+-\S+$"))
    viewer = new_page()
    watch(viewer, server.base_url, host.locator("#room-code").inner_text())
    expect(viewer.locator("#status")).to_have_text("Connected.")  # viewers never need it


def test_rate_limit_is_shown_with_when_to_retry(
    start_server: Callable[..., ServerProcess], new_page: NewPage
) -> None:
    server = start_server(rate_rooms="1/minute")
    assert httpx.post(server.base_url + "/api/rooms").status_code == 201
    host = new_page()
    host.goto(server.base_url + "/")
    host.get_by_role("button", name="Start sharing").click()
    expect(host.locator("#status")).to_contain_text("Too many rooms created from your address")
    expect(host.locator("#status")).to_contain_text("Try again in")
