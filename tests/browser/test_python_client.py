"""The Python client against real Chromium: ``peerscreen watch`` records a browser host,
``peerscreen share`` serves browser viewers."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from playwright.sync_api import Page, expect

from ..support.commands import ClientCommand, room_link, run_share, run_watch
from ..support.processes import ServerProcess, stop_process, wait_until
from .pages import expect_frames_flowing, say, start_sharing, track_peer_connections

NewPage = Callable[..., Page]


def decoded_frames(path: Path) -> list[tuple[float, int, int, str]]:
    """(time, width, height, digest of the picture) of every frame in a video file."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest = hashlib.sha256(b"".join(bytes(p) for p in frame.planes)).hexdigest()
            frames.append((float(frame.time or 0.0), frame.width, frame.height, digest))
    return frames


FRAMES_SENT = """async () => {
  let sent = 0;
  for (const pc of window.peerConnections) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") sent += s.framesSent || 0;
    });
  }
  return sent;
}"""


def frames_sent(page: Page) -> int:
    """Video frames the page has sent, over all its peer connections."""
    sent: int = page.evaluate(FRAMES_SENT)
    return sent


def test_watch_records_what_a_browser_host_shares(
    memory_server: ServerProcess, new_page: NewPage, artifacts: Path, tmp_path: Path
) -> None:
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    host.wait_for_function("document.getElementById('preview').videoWidth > 0")
    width, height = host.evaluate(
        "() => { const v = document.getElementById('preview');"
        " return [v.videoWidth, v.videoHeight]; }"
    )
    recording = tmp_path / "host.webm"
    # A pasted link, as people do: with its scheme, a trailing slash.
    watch = run_watch(
        artifacts / "logs", f"{base}/r/{code}/", "--record", str(recording),
        "--duration", "3", "--name", "Recorder",
    )  # fmt: skip
    try:
        expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
        expect(host.locator("#viewer-list")).to_contain_text("Recorder")
        assert watch.wait(60) == 0, watch.output()
    finally:
        watch.stop()
    # It left when done: the host sees nobody.
    expect(host.locator("#viewer-count")).to_have_text("0")
    assert "Connected." in watch.output()
    assert "Saved " in watch.output()

    frames = decoded_frames(recording)
    assert frames, watch.output()
    assert frames[-1][0] - frames[0][0] >= 2.0, frames[-1]
    assert {(w, h) for _, w, h, _ in frames} == {(width, height)}
    changed = sum(1 for a, b in itertools.pairwise(frames) if a[3] != b[3])
    assert changed >= 0.9 * (len(frames) - 1), f"{changed} of {len(frames)} frames differ"
    with av.open(str(recording)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]


def test_share_test_pattern_to_two_browser_viewers_then_ctrl_c_ends_the_room(
    memory_server: ServerProcess, new_page: NewPage, artifacts: Path, screenshots: Path
) -> None:
    share = run_share(
        artifacts / "logs", memory_server.base_url, "--test-pattern", "--size", "640x360",
        "--fps", "15",
    )  # fmt: skip
    try:
        link = room_link(share)
        # The QR code is printed too, in block characters.
        share.wait_for("\u2580|\u2584|\u2588")
        viewers = [new_page(), new_page()]
        for viewer in viewers:
            viewer.goto(link)
        for viewer in viewers:
            expect_frames_flowing(viewer)
            assert viewer.evaluate("document.getElementById('remote-video').videoWidth") == 640
        viewers[0].screenshot(path=str(screenshots / "viewer-of-python-share.png"))
        share.wait_for(r"connected.*\n(.|\n)*connected")
        # A viewer's chat reaches the terminal host, with the name left blank.
        say(viewers[0], "Can you zoom in?")
        share.wait_for(r"\[chat\] Viewer \w{4}: Can you zoom in\?")

        share.interrupt()
        assert share.wait(30) == 0, share.output()
        for viewer in viewers:
            expect(viewer.locator("#viewer-message-title")).to_have_text("Host ended sharing.")
        assert "Ended the room (Ctrl-C); viewers were told." in share.output()
    finally:
        share.stop()


@pytest.fixture
def x_display(tmp_path: Path) -> Iterator[str]:
    """A virtual X display (Xvfb) of this test's own. Its screen is blank: x11grab
    captures at the rate asked whether or not anything changes."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is missing: scripts/test installs it (Debian package xvfb)")
    number = 90 + os.getpid() % 100
    display = f":{number}"
    server = subprocess.Popen(
        [xvfb, display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: Path(f"/tmp/.X11-unix/X{number}").exists(), 10, f"Xvfb on {display}")
    yield display
    stop_process(server)


def test_share_screen_under_xvfb_reaches_a_browser_viewer(
    memory_server: ServerProcess,
    new_page: NewPage,
    artifacts: Path,
    browser: object,
    x_display: str,
) -> None:
    share = run_share(
        artifacts / "logs", memory_server.base_url, "--screen", "--fps", "10", "--no-qr",
        env={"DISPLAY": x_display},
    )  # fmt: skip
    try:
        link = room_link(share)
        assert f"screen {x_display}" in share.output()
        viewer = new_page()
        viewer.goto(link)
        expect_frames_flowing(viewer, frames=5)
        assert viewer.evaluate("document.getElementById('remote-video').videoWidth") == 800
        share.interrupt()
        assert share.wait(30) == 0, share.output()
    finally:
        share.stop()


def test_the_page_says_when_it_has_no_more_candidates(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    """A browser host ends its candidates with the protocol's marker (a candidate with no
    text), which a peer that is not a browser needs to tell a failed path early."""
    base = memory_server.base_url
    host = new_page()
    code = start_sharing(host, base)
    with httpx.Client(base_url=base, timeout=40) as http:
        joined = http.post(f"/api/rooms/{code}/viewers", json={}).json()
        auth = {"Authorization": f"Bearer {joined['viewerToken']}"}
        seen: list[dict[str, Any]] = []
        after = 0

        def marker_arrived() -> bool:
            nonlocal after
            answer = http.get(
                f"/api/rooms/{code}/messages", params={"after": after, "wait": 2}, headers=auth
            ).json()
            seen.extend(answer["messages"])
            after = answer["lastSeq"]
            return any(m["type"] == "candidate" and m["candidate"]["candidate"] == "" for m in seen)

        wait_until(marker_arrived, 20, "the host's end-of-candidates")
        kinds = [
            (m["type"], m["candidate"]["candidate"] == "" if m["type"] == "candidate" else False)
            for m in seen
            if m["type"] in ("offer", "candidate")
        ]
        # The offer first, then candidates, the marker last of them.
        assert kinds[0] == ("offer", False)
        assert kinds[-1] == ("candidate", True)
        assert ("candidate", False) in kinds


def test_watch_follows_a_browser_host_through_pause_reload_and_stop(
    memory_server: ServerProcess, new_page: NewPage, artifacts: Path, tmp_path: Path
) -> None:
    """The recording goes on across the host's pause and page reload (a new peer
    connection, new tracks), and the command ends when the host stops sharing."""
    base = memory_server.base_url
    host = new_page()
    track_peer_connections(host)
    code = start_sharing(host, base)
    recording = tmp_path / "followed.mkv"
    watch = run_watch(artifacts / "logs", code, "--server", base, "--record", str(recording))
    try:
        watch.wait_for("First picture after")
        wait_until(lambda: frames_sent(host) >= 20, 20, "a second of pictures sent")
        host.get_by_role("button", name="Pause").click()
        watch.wait_for("The host paused sharing.")
        host.get_by_role("button", name="Resume").click()
        watch.wait_for(r"paused sharing\.\n(.|\n)*Connected\.")

        host.reload()
        watch.wait_for("The host's page went away")
        host.get_by_role("button", name="Resume sharing").click()
        expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(1)
        # Pictures from the host's new connection come in.
        watch.wait_for(r"went away(.|\n)*Picture again after .* \(the host's new connection\)")
        wait_until(lambda: frames_sent(host) >= 20, 20, "a second of pictures sent again")
        host.get_by_role("button", name="Stop sharing").click()
        assert watch.wait(30) == 0, watch.output()
    finally:
        watch.stop()
    assert "The host ended the room." in watch.output()
    frames = decoded_frames(recording)
    times = [t for t, _, _, _ in frames]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    reload_gap = max(gaps)
    after_reload = len(times) - 1 - gaps.index(reload_gap)
    assert reload_gap >= 0.3, "no gap where the host reloaded"
    assert after_reload >= 5, f"only {after_reload} frames after the reload"


def test_share_one_window_under_xvfb_reaches_a_browser_viewer(
    memory_server: ServerProcess, new_page: NewPage, artifacts: Path, x_display: str
) -> None:
    """--window captures that window alone, at its size, not the screen."""
    xev = shutil.which("xev")
    if xev is None:
        pytest.fail("xev is missing: scripts/test installs it (Debian package x11-utils)")
    opened = subprocess.Popen(
        [xev, "-display", x_display, "-geometry", "320x200+40+30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    share: ClientCommand | None = None
    try:
        assert opened.stdout is not None
        first = opened.stdout.readline()  # "Outer window is 0x200001, inner window is ..."
        window_id = first.split("Outer window is ")[1].split(",")[0]
        share = run_share(
            artifacts / "logs", memory_server.base_url, "--window", window_id,
            "--fps", "10", "--no-qr", env={"DISPLAY": x_display},
        )  # fmt: skip
        link = room_link(share)
        assert f"window {window_id}" in share.output()
        viewer = new_page()
        viewer.goto(link)
        expect_frames_flowing(viewer, frames=5)
        assert viewer.evaluate(
            "() => { const v = document.getElementById('remote-video');"
            " return [v.videoWidth, v.videoHeight]; }"
        ) == [320, 200]
        share.interrupt()
        assert share.wait(30) == 0, share.output()
    finally:
        if share is not None:
            share.stop()
        stop_process(opened)  # type: ignore[arg-type]


def test_share_refuses_a_window_id_that_is_not_one(
    artifacts: Path, memory_server: ServerProcess, x_display: str
) -> None:
    share = run_share(
        artifacts / "logs",
        memory_server.base_url,
        "--window",
        "the terminal",
        env={"DISPLAY": x_display},
    )
    assert share.wait(30) == 1
    assert "Not a window id: 'the terminal'" in share.output()
