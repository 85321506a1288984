"""The Python client (peerscreen.client, peerscreen watch / share) against a real
server: aiortc on both sides, every byte over loopback."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from av.video.frame import VideoFrame

from peerscreen.client import (
    Host,
    ServerApi,
    SignalingSocket,
    host_addresses,
    parse_room,
)
from peerscreen.client import test_pattern as pattern_source

from ..support.clients import host_room
from ..support.commands import ClientCommand, room_link, run_share, run_watch
from ..support.processes import ServerProcess, TurnServer

HOST_TIMES_OUT_FAST = {"heartbeat_interval": 0.3, "heartbeat_timeout": 1.0, "grace_period": 1.5}


@pytest.fixture(autouse=True)
def loopback_ice() -> Any:
    """aiortc in this process gathers on 127.0.0.1, the only network these tests use."""
    with host_addresses(["127.0.0.1"]):
        yield


async def frames_received(track: Any, count: int, timeout: float = 20.0) -> list[str]:
    """Digests of ``count`` decoded pictures from a remote track."""
    digests: list[str] = []
    async with asyncio.timeout(timeout):
        while len(digests) < count:
            frame = await track.recv()
            assert isinstance(frame, VideoFrame)
            digests.append(hashlib.sha256(b"".join(bytes(p) for p in frame.planes)).hexdigest())
    return digests


async def test_the_classic_polling_flow_with_aiortc_on_both_sides(
    memory_server: ServerProcess,
) -> None:
    """A host and a viewer that speak only the classic endpoints connect, media flows,
    and /api/diagnostics says what is true at each step."""
    async with httpx.AsyncClient(base_url=memory_server.base_url, timeout=40) as http:

        async def diagnostics() -> dict[str, Any]:
            response = await http.get(
                "/api/diagnostics", params={"roomId": room_id}, headers=host_auth
            )
            assert response.status_code == 200, response.text
            info: dict[str, Any] = response.json()
            return info

        room = (await http.post("/api/rooms")).json()
        room_id = room["roomId"]
        host_auth = {"Authorization": f"Bearer {room['hostToken']}"}
        info = await diagnostics()
        assert (info["ended"], info["hostPresence"], info["viewerCount"]) == (
            False,
            "connected",
            0,
        )

        source = MediaPlayer("testsrc2=size=320x240:rate=15", format="lavfi")
        host_pc, viewer_pc = RTCPeerConnection(), RTCPeerConnection()
        assert source.video is not None
        host_pc.addTrack(source.video)
        await host_pc.setLocalDescription(await host_pc.createOffer())
        offer = {"type": "offer", "sdp": host_pc.localDescription.sdp}
        posted = await http.post(
            "/api/offer", headers=host_auth, json={"roomId": room_id, "desc": offer}
        )
        assert posted.status_code == 200, posted.text

        joined = (await http.post(f"/api/rooms/{room_id}/viewers", json={})).json()
        viewer_auth = {"Authorization": f"Bearer {joined['viewerToken']}"}
        info = await diagnostics()
        assert info["viewerCount"] == 1
        assert [v["presence"] for v in info["viewers"]] == ["connected"]

        got = await http.get(
            "/api/offer", params={"roomId": room_id, "wait": 5}, headers=viewer_auth
        )
        assert got.json()["desc"] == offer
        tracks: asyncio.Queue[Any] = asyncio.Queue()
        viewer_pc.on("track", tracks.put_nowait)
        await viewer_pc.setRemoteDescription(RTCSessionDescription(**got.json()["desc"]))
        await viewer_pc.setLocalDescription(await viewer_pc.createAnswer())
        answer = {"type": "answer", "sdp": viewer_pc.localDescription.sdp}
        posted = await http.post(
            "/api/answer", headers=viewer_auth, json={"roomId": room_id, "desc": answer}
        )
        assert posted.status_code == 200, posted.text
        # aiortc's descriptions carry every candidate: each side sends only the marker.
        for auth, role in ((host_auth, "host"), (viewer_auth, "viewer")):
            marker = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
            posted = await http.post(
                "/api/candidate",
                headers=auth,
                json={"roomId": room_id, "role": role, "candidate": marker},
            )
            assert posted.status_code == 200, posted.text

        got = await http.get(
            "/api/answer", params={"roomId": room_id, "wait": 5}, headers=host_auth
        )
        assert (got.json()["desc"], got.json()["viewerId"]) == (answer, joined["viewerId"])
        await host_pc.setRemoteDescription(RTCSessionDescription(**got.json()["desc"]))
        for auth in (host_auth, viewer_auth):
            got = await http.get(
                "/api/candidate", params={"roomId": room_id, "wait": 5}, headers=auth
            )
            assert [c["candidate"] for c in got.json()["candidates"]] == [""]

        track = await asyncio.wait_for(tracks.get(), 10)
        digests = await frames_received(track, 15)
        assert len(set(digests)) >= 10, "the pictures do not move"
        assert host_pc.connectionState == viewer_pc.connectionState == "connected"
        info = await diagnostics()
        assert (info["hostPresent"], [v["presence"] for v in info["viewers"]]) == (
            True,
            ["connected"],
        )

        gone = await http.delete(
            f"/api/rooms/{room_id}/viewers/{joined['viewerId']}", headers=viewer_auth
        )
        assert gone.status_code in (200, 204), gone.text
        info = await diagnostics()
        assert (info["viewerCount"], info["viewers"]) == (0, [])

        assert (await http.delete(f"/api/rooms/{room_id}", headers=host_auth)).status_code == 200
        info = await diagnostics()
        assert (info["ended"], info["hostPresence"], info["hostPresent"]) == (True, "left", False)
        for pc in (host_pc, viewer_pc):
            await pc.close()
        source.video.stop()


async def test_a_dropped_socket_comes_back_without_losing_or_repeating_a_message(
    memory_server: ServerProcess,
) -> None:
    async with ServerApi(memory_server.base_url) as api:
        host_credentials, _ = await api.create_room()
        viewer_credentials = await api.join(host_credentials.room.room_id)
        host = SignalingSocket(host_credentials)
        viewer = SignalingSocket(viewer_credentials)
        await host.start()
        await viewer.start()
        to = viewer_credentials.participant_id

        async def send_candidates(first: int, last: int) -> None:
            for n in range(first, last + 1):
                await host.send("candidate", to=to, candidate=candidate_numbered(n))

        await send_candidates(1, 5)
        # The path breaks without a close frame, as when a network goes away.
        assert viewer._socket is not None
        viewer._socket.transport.abort()
        await send_candidates(6, 10)
        # The viewer sends while it is away; it goes out once the socket is back.
        from_viewer = asyncio.create_task(
            viewer.send("candidate", candidate=candidate_numbered(99))
        )
        received: list[int] = []
        async with asyncio.timeout(20):
            async for message in viewer.messages():
                if message["type"] == "candidate":
                    received.append(int(message["candidate"]["sdpMid"]))
                if len(received) == 10:
                    break
        assert received == list(range(1, 11))
        assert viewer.reconnects >= 1
        await asyncio.wait_for(from_viewer, 10)
        async with asyncio.timeout(10):
            async for message in host.messages():
                if message["type"] == "candidate":
                    assert message["candidate"]["sdpMid"] == "99"
                    break
        await viewer.close()
        await host.close()


def candidate_numbered(n: int) -> dict[str, Any]:
    return {
        "candidate": f"candidate:{n} 1 udp 2122260223 127.0.0.1 {50000 + n} typ host",
        "sdpMid": str(n),
        "sdpMLineIndex": 0,
    }


@pytest.fixture
async def shared_room(memory_server: ServerProcess) -> AsyncIterator[Host]:
    """A test pattern shared by the library, in this process."""
    async with ServerApi(memory_server.base_url) as api:
        host = Host(api, pattern_source("320x240", 15).tracks)
        await host.start()
        yield host
        await host.end()


async def wait_for_exit(command: ClientCommand, timeout: float = 60.0) -> int:
    return await asyncio.to_thread(command.wait, timeout)


async def test_watch_says_why_it_cannot_join_with_an_exit_status(
    memory_server: ServerProcess, artifacts: Path
) -> None:
    base = memory_server.base_url
    cases = [
        (f"{base}/r/zzzz-zzzzz-zzzz", 3, "Room not found"),
        ("not a room", 2, "Not a room link or code"),
        (f"{base}/r/2222-22222", 2, "Not a room link or code"),
    ]
    for link, status, text in cases:
        command = run_watch(artifacts / "logs", link)
        assert await wait_for_exit(command) == status, command.output()
        assert text in command.output()


async def test_watch_follows_the_room_to_its_end_and_exits_0(
    shared_room: Host, artifacts: Path, tmp_path: Path
) -> None:
    frames = tmp_path / "frames"
    watch = run_watch(
        artifacts / "logs", shared_room.url, "--frames", str(frames), "--frame-interval", "0.2"
    )
    await asyncio.to_thread(watch.wait_for, "Connected.")
    await until(lambda: len(list(frames.glob("*.png"))) >= 3, "three pictures saved")
    # Chat shows in the terminal, and nothing in it can drive the terminal.
    await shared_room.chat("\x1b[2JStarting now", name="Speaker")
    await asyncio.to_thread(watch.wait_for, r"\[chat\] Speaker: \[2JStarting now")
    assert "\x1b" not in watch.output()
    await shared_room.end()
    assert await wait_for_exit(watch) == 0, watch.output()
    assert "The host ended the room." in watch.output()
    assert "Saved " in watch.output()
    first = sorted(frames.glob("*.png"))[0].read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")


async def test_watch_exits_4_when_the_host_removes_it(shared_room: Host, artifacts: Path) -> None:
    watch = run_watch(artifacts / "logs", shared_room.url, "--name", "Nosy")
    await asyncio.to_thread(watch.wait_for, "Connected.")
    viewer = next(iter(shared_room.viewers.values()))
    assert viewer.name == "Nosy"
    assert shared_room.credentials is not None
    await shared_room.api.call(
        "DELETE",
        f"/api/rooms/{shared_room.credentials.room.room_id}/viewers/{viewer.viewer_id}",
        token=shared_room.credentials.token,
    )
    assert await wait_for_exit(watch) == 4, watch.output()
    assert "The host removed you from the room." in watch.output()


async def test_watch_tells_a_host_that_timed_out_from_one_that_ended(
    start_server: Callable[..., ServerProcess], artifacts: Path
) -> None:
    server = start_server(**HOST_TIMES_OUT_FAST)
    host = await host_room(server.base_url)
    watch = run_watch(
        artifacts / "logs", f"{server.base_url}/r/{host.room_id}", "--offer-timeout", "20"
    )
    await asyncio.to_thread(watch.wait_for, "Waiting for the host")
    await host.close()  # gone without ending the room
    assert await wait_for_exit(watch) == 0, watch.output()
    assert "The host left: gone longer than the grace period." in watch.output()


async def test_passcode_and_auth_secret(
    start_server: Callable[..., ServerProcess], artifacts: Path, tmp_path: Path
) -> None:
    server = start_server(auth_secret="let-me-share")
    logs = artifacts / "logs"
    refused = ClientCommand(logs, "share", "--server", server.base_url, "--test-pattern")
    refused.env.pop("AUTH_SECRET", None)
    refused.start()
    assert await wait_for_exit(refused) == 3, refused.output()
    assert "AUTH_SECRET" in refused.output() or "token" in refused.output().lower()

    share = run_share(
        logs, server.base_url, "--test-pattern", "--size", "320x240",
        "--passcode", "blue heron", "--no-qr", env={"AUTH_SECRET": "let-me-share"},
    )  # fmt: skip
    try:
        link = await asyncio.to_thread(room_link, share)
        without = run_watch(artifacts / "logs", link)
        assert await wait_for_exit(without) == 3, without.output()
        assert "passcode" in without.output()
        wrong = run_watch(artifacts / "logs", link, "--passcode", "red heron")
        assert await wait_for_exit(wrong) == 3, wrong.output()
        assert "Wrong passcode" in wrong.output()
        recording = tmp_path / "in.mp4"
        right = run_watch(
            artifacts / "logs",
            link,
            "--passcode",
            "blue heron",
            "--record",
            str(recording),
            "--duration",
            "1",
        )
        assert await wait_for_exit(right) == 0, right.output()
        assert recording.stat().st_size > 0
    finally:
        share.stop()


async def test_share_and_watch_through_the_turn_relay_only(
    start_server: Callable[..., ServerProcess],
    turn_server: TurnServer,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    server = start_server(
        turn_urls=turn_server.url, turn_secret=turn_server.secret, relay_only=True
    )
    share = run_share(
        artifacts / "logs", server.base_url, "--test-pattern", "--size", "320x240", "--no-qr"
    )
    try:
        link = await asyncio.to_thread(room_link, share)
        recording = tmp_path / "relayed.webm"
        watch = run_watch(artifacts / "logs", link, "--record", str(recording), "--duration", "1")
        assert await wait_for_exit(watch) == 0, watch.output()
        assert "Saved " in watch.output()
        # Both sides could only offer relay candidates: coturn carried the media, and
        # the viewer said so, to the person and to the server's metrics.
        assert "(relay connection)" in watch.output()
        metrics = (await asyncio.to_thread(httpx.get, f"{server.base_url}/metrics")).text
        assert 'peerscreen_connection_setup_seconds_count{path="relay"} 1.0' in metrics
    finally:
        share.stop()


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_links_and_codes_people_paste() -> None:
    assert parse_room("https://screens.example.org/r/k7dm-x9paq-3hrt").link == (
        "https://screens.example.org/r/k7dm-x9paq-3hrt"
    )
    assert parse_room(" <screens.example.org:8443/r/K7DM-X9PAQ-3HRT/?x=1#top> ").server == (
        "http://screens.example.org:8443"
    )
    room = parse_room("K7DM X9PAQ 3HRT", server="peer.example:9000")
    assert (room.server, room.room_id) == ("http://peer.example:9000", "k7dm-x9paq-3hrt")
    assert room.websocket_url == "ws://peer.example:9000/api/rooms/k7dm-x9paq-3hrt/ws"
    assert parse_room("https://a.example/r/k7dm-x9paq-3hrt").websocket_url.startswith("wss://")
    for bad in (
        "",
        "k7dm-x9paq",
        "https://a.example/s/k7dm-x9paq-3hrt",
        "ftp://x/r/k7dm-x9paq-3hrt",
    ):
        with pytest.raises(ValueError, match="Not a room link or code"):
            parse_room(bad)


def make_clip(path: Path, seconds: float) -> None:
    """A short video file with sound: FFmpeg's test pattern and a tone."""
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=15)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        with av.open(f"testsrc2=size=320x240:rate=15:duration={seconds}", format="lavfi") as src:
            for picture in src.decode(video=0):
                picture.pts = None
                out.mux(video.encode(picture))
        out.mux(video.encode(None))
        tone = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
        with av.open(tone, format="lavfi") as src:
            for sound in src.decode(audio=0):
                sound.pts = None
                out.mux(audio.encode(sound))
        out.mux(audio.encode(None))


async def test_share_a_video_file_ends_the_room_when_it_has_played(
    memory_server: ServerProcess, artifacts: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip, 4)
    share = run_share(artifacts / "logs", memory_server.base_url, "--file", str(clip), "--no-qr")
    try:
        link = await asyncio.to_thread(room_link, share)
        assert "Sharing clip.mp4" in share.output()
        recording = tmp_path / "watched.webm"
        watch = run_watch(artifacts / "logs", link, "--record", str(recording))
        assert await wait_for_exit(watch) == 0, watch.output()
        assert await wait_for_exit(share) == 0, share.output()
    finally:
        share.stop()
    assert "The host ended the room." in watch.output()
    assert "Ended the room (the source ended); viewers were told." in share.output()
    with av.open(str(recording)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        pictures = [f for f in container.decode(video=0)]
    assert len(pictures) >= 15 and pictures[0].width == 320


async def test_watch_saves_what_it_has_on_ctrl_c(
    shared_room: Host, artifacts: Path, tmp_path: Path
) -> None:
    recording = tmp_path / "until-stopped.webm"
    watch = run_watch(artifacts / "logs", shared_room.url, "--record", str(recording))
    await asyncio.to_thread(watch.wait_for, "First picture after")
    await until(lambda: recording.stat().st_size > 20_000, "a few pictures in the file")
    watch.interrupt()
    assert await wait_for_exit(watch) == 0, watch.output()
    with av.open(str(recording)) as container:
        assert len(list(container.decode(video=0))) >= 5
    # It left: the host no longer counts it.
    await until(lambda: not shared_room.viewers, "the viewer gone from the host's list")


async def test_watch_says_what_is_wrong_before_joining(
    shared_room: Host, artifacts: Path, tmp_path: Path
) -> None:
    cases = [
        (("--record", str(tmp_path / "no" / "such" / "folder.webm")), 2, "No such file"),
        (("--record", str(tmp_path / "talk.avi")), 2, "use a .webm, .mkv, .mp4 or .mov file"),
        (("--record", "a.webm", "--frames", str(tmp_path)), 2, "not both"),
    ]
    for extra, status, text in cases:
        command = run_watch(artifacts / "logs", shared_room.url, *extra)
        assert await wait_for_exit(command) == status, command.output()
        assert text in command.output()
    assert not shared_room.viewers, "a refused command joined anyway"
    # A server that does not answer.
    unreachable = run_watch(artifacts / "logs", "http://127.0.0.1:9/r/k7dm-x9paq-3hrt")
    assert await wait_for_exit(unreachable) == 1, unreachable.output()
    assert "Could not reach the server at http://127.0.0.1:9" in unreachable.output()
