"""``peerscreen watch`` and ``peerscreen share``: the client library from a terminal.

Exit status (docs/client.md): 0 finished (the duration ran out, Ctrl-C, or the room
ended), 1 could not watch or share (server unreachable, no offer, no network path),
2 bad arguments, 3 refused by the server (no such room, ended, full, locked, passcode,
AUTH_SECRET), 4 removed from the room by the host.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .links import default_server, parse_room, server_url

if TYPE_CHECKING:  # the rest needs the client extra (aiortc): imported when run
    from .api import ApiError
    from .host import ViewerLink
    from .record import Sink
    from .sources import Source
    from .viewer import ViewerStatus

FINISHED, FAILED, USAGE, REFUSED, REMOVED = 0, 1, 2, 3, 4
REFUSALS = {
    "room_not_found",
    "room_ended",
    "room_full",
    "room_locked",
    "passcode_required",
    "passcode_wrong",
    "unauthorized",
    "invalid_request",
    "forbidden",
}


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``watch`` and ``share`` to the ``peerscreen`` command."""
    watch = commands.add_parser(
        "watch",
        help="watch a room from the terminal, and record it",
        description=(
            "Join a room as a viewer and record the host's screen and sound to a file, "
            "or save frames as pictures. Needs the client extra: "
            "pip install 'peerscreen[client]'. Exit status: 0 finished (duration, Ctrl-C, "
            "room ended), 1 could not watch, 2 bad arguments, 3 refused by the server, "
            "4 removed by the host."
        ),
    )
    watch.add_argument("room", metavar="LINK_OR_CODE", help="the room's link, or its code")
    _common(watch)
    watch.add_argument(
        "--record",
        metavar="FILE",
        help="save video and sound to FILE: .webm (VP8, Opus), .mkv, .mp4 or .mov (H.264, AAC)",
    )
    watch.add_argument(
        "--frames", metavar="DIR", help="save a PNG picture every --frame-interval seconds"
    )
    watch.add_argument(
        "--frame-interval", type=float, default=1.0, metavar="S", help="default: 1 second"
    )
    watch.add_argument(
        "--duration", type=float, metavar="S", help="leave after S seconds of picture"
    )
    watch.add_argument("--name", help="the name the host sees")
    watch.add_argument(
        "--offer-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="give up when the host sends no offer within S seconds (default: 30)",
    )

    share = commands.add_parser(
        "share",
        help="share a screen, window, video file or test pattern from the terminal",
        description=(
            "Create a room, print its link and QR code, and share to every viewer who "
            "opens it (one connection per viewer) until Ctrl-C, which ends the room. "
            "Needs the client extra: pip install 'peerscreen[client]'."
        ),
    )
    what = share.add_mutually_exclusive_group()
    what.add_argument("--screen", action="store_true", help="the X11 screen (the default)")
    what.add_argument("--window", metavar="ID", help="one X11 window, by id (see xwininfo)")
    what.add_argument("--file", metavar="VIDEO", help="a video file, with its sound")
    what.add_argument(
        "--test-pattern", action="store_true", help="a moving test pattern and a tone"
    )
    _common(share)
    share.add_argument("--display", help="the X display to capture (default: $DISPLAY)")
    share.add_argument("--fps", type=int, default=30, help="frames a second (default: 30)")
    share.add_argument("--size", default="1280x720", help="test pattern size (default: 1280x720)")
    share.add_argument("--loop", action="store_true", help="play --file again and again")
    share.add_argument(
        "--auth-secret",
        default=os.environ.get("AUTH_SECRET") or os.environ.get("PEERSCREEN_AUTH_SECRET"),
        help="the server's AUTH_SECRET, when creating rooms needs it [env: AUTH_SECRET]",
    )
    share.add_argument("--no-qr", action="store_true", help="print the link only")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        help="the server, when giving a code rather than a link "
        "[env: PEERSCREEN_SERVER; default: http://127.0.0.1:8080]",
    )
    parser.add_argument("--passcode", help="the room's passcode")
    parser.add_argument(
        "--relay", action="store_true", help="connect only through the server's TURN relay"
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        metavar="ADDRESS",
        help="gather host candidates on this address only (repeatable). aiortc skips "
        "loopback: on a machine with no network, --ice-address 127.0.0.1",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    """Run ``watch`` or ``share``; the exit status."""
    try:
        from .rtc import use_host_addresses
    except ImportError as exc:
        print(
            f"peerscreen {args.command}: needs the client extra ({exc.name} is missing): "
            "pip install 'peerscreen[client]'",
            file=sys.stderr,
        )
        return FAILED
    if args.ice_address:
        use_host_addresses(args.ice_address)
    work = watch(args) if args.command == "watch" else share(args)
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:  # a second Ctrl-C while finishing
        return FINISHED


async def _until_interrupted(*waits: asyncio.Future[Any]) -> bool:
    """Wait for any of ``waits`` or Ctrl-C / SIGTERM; True when interrupted."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def interrupted() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted)
    try:
        await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return stop.done()


def chat_line(message: dict[str, Any]) -> str:
    """A chat message for the terminal. The server has already removed control
    characters from text and names, so nothing in it can steer the terminal."""
    return f"[chat] {message.get('name', '?')}: {message.get('text', '')}"


def _refusal(error: ApiError) -> int:
    return REFUSED if error.code in REFUSALS else FAILED


async def watch(args: argparse.Namespace) -> int:
    from .api import ApiError, ServerApi
    from .record import FrameFiles, Recording, Sink
    from .terminal import StatusLine
    from .viewer import Viewer

    status = StatusLine()
    try:
        room = parse_room(args.room, args.server)
    except ValueError as exc:
        print(f"peerscreen watch: {exc}", file=sys.stderr)
        return USAGE
    sink: Sink
    try:
        if args.record and args.frames:
            raise ValueError("Give --record or --frames, not both.")
        if args.record:
            sink = Recording(args.record)
        elif args.frames:
            sink = FrameFiles(args.frames, args.frame_interval)
        else:
            sink = Sink()
    except (ValueError, OSError) as exc:
        print(f"peerscreen watch: {exc}", file=sys.stderr)
        return USAGE

    def on_status(state: ViewerStatus) -> None:
        if not args.quiet or state.final:
            status.say(state.message)

    def on_picture_back(gap: float, new_connection: bool) -> None:
        if not args.quiet:
            source = " (the host's new connection)" if new_connection else ""
            status.say(f"Picture again after {gap:.1f} s without{source}.")

    sink.on_picture_back = on_picture_back
    broken: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    def on_error(exc: Exception) -> None:
        if not broken.done():
            broken.set_result(exc)

    sink.on_error = on_error

    async with ServerApi(room.server) as api:
        viewer = Viewer(
            api,
            room,
            on_chat=lambda message: status.say(chat_line(message)),
            passcode=args.passcode,
            name=args.name,
            force_relay=args.relay,
            offer_timeout=args.offer_timeout,
            on_track=sink.add_track,
            on_status=on_status,
        )
        if not args.quiet:
            status.say(f"Joining {room.link}")
        try:
            await viewer.join()
        except ApiError as exc:
            hint = " Give it with --passcode." if exc.code.startswith("passcode_") else ""
            print(f"peerscreen watch: {exc.message}{hint}", file=sys.stderr)
            return _refusal(exc)
        except Exception as exc:
            print(f"peerscreen watch: could not connect to the room: {exc}", file=sys.stderr)
            return FAILED

        async def show_progress() -> None:
            while True:
                progress = sink.sample()
                if not args.quiet:
                    status.progress(progress.line())
                if (
                    args.duration is not None
                    and progress.first_frame_after is not None
                    and progress.frames
                    and _pictured(sink) >= args.duration
                ):
                    return
                await asyncio.sleep(0.5)

        async def first_picture() -> None:
            await sink.first_picture.wait()
            setup = await viewer.report_first_picture()
            if not args.quiet:
                status.say(f"First picture after {setup:.2f} s ({viewer.path} connection).")

        ticker = asyncio.create_task(show_progress())
        reporter = asyncio.create_task(first_picture())
        interrupted = await _until_interrupted(viewer.finished, ticker, broken)
        ticker.cancel()
        reporter.cancel()
        final = viewer.status
        if not final.final:
            await viewer.leave()
        await sink.close()
        status.done()
        _summary(sink, args)
        if broken.done():
            print(f"peerscreen watch: could not save: {broken.result()}", file=sys.stderr)
            return FAILED
        if interrupted or not final.final:
            return FINISHED
        if final.state == "removed":
            return REMOVED
        return FINISHED if final.state == "ended" else FAILED


def _pictured(sink: Sink) -> float:
    """Seconds since the first picture arrived."""
    first = sink.progress.first_frame_after
    return 0.0 if first is None else time.monotonic() - sink.progress.started - first


def _summary(sink: Sink, args: argparse.Namespace) -> None:
    from .record import FrameFiles, Recording

    progress = sink.progress
    if isinstance(sink, Recording):
        if sink.progress.frames:
            print(
                f"Saved {progress.frames} frames at {progress.width}x{progress.height} "
                f"to {Path(args.record)} ({progress.bytes_written} bytes)",
                file=sys.stderr,
            )
        else:
            print("No picture arrived: nothing was recorded.", file=sys.stderr)
    elif isinstance(sink, FrameFiles):
        print(f"Saved {len(sink.written)} pictures in {sink.folder}", file=sys.stderr)


def _open_source(args: argparse.Namespace) -> Source:
    from .sources import screen, test_pattern, video_file, window

    if args.test_pattern:
        return test_pattern(args.size, args.fps)
    if args.file:
        return video_file(args.file, loop=args.loop)
    if args.window:
        return window(args.window, args.display, args.fps)
    return screen(args.display, args.fps)


async def share(args: argparse.Namespace) -> int:
    from .api import ApiError, ServerApi
    from .host import Host
    from .sources import SourceError
    from .terminal import StatusLine, qr_text

    status = StatusLine()
    try:
        server = server_url(args.server) if args.server else default_server()
        source = _open_source(args)
    except (ValueError, SourceError) as exc:
        print(f"peerscreen share: {exc}", file=sys.stderr)
        return USAGE if isinstance(exc, ValueError) else FAILED

    known: dict[str, str] = {}
    named: dict[str, str] = {}

    def on_viewers(viewers: list[ViewerLink]) -> None:
        # Each change on a line of its own (a log shows them all); the count in place.
        now = {v.viewer_id: v.state for v in viewers}
        named.update({v.viewer_id: v.name for v in viewers})
        for viewer_id, state in now.items():
            if known.get(viewer_id) != state:
                status.say(f"{named[viewer_id]}: {state}")
        for viewer_id in known.keys() - now.keys():
            status.say(f"{named[viewer_id]}: left")
        known.clear()
        known.update(now)
        if not args.quiet:
            connected = sum(1 for state in now.values() if state == "connected")
            status.progress(f"{len(now)} viewers, {connected} connected")

    async with ServerApi(server) as api:
        host = Host(
            api,
            source.tracks,
            on_chat=lambda message: status.say(chat_line(message)),
            auth_secret=args.auth_secret,
            passcode=args.passcode,
            force_relay=args.relay,
            on_viewers=on_viewers,
        )
        try:
            await host.start()
        except ApiError as exc:
            source.stop()
            print(f"peerscreen share: {exc.message}", file=sys.stderr)
            return _refusal(exc)
        print(f"Sharing {source.description}", file=sys.stderr)
        print(f"Room link: {host.url}", flush=True)
        if not args.no_qr:
            print(qr_text(host.url), flush=True)
        print("Press Ctrl-C to end the room.", file=sys.stderr, flush=True)
        ended_by_source = asyncio.ensure_future(_source_ended(source))
        interrupted = await _until_interrupted(host.ended, ended_by_source)
        ended_by_source.cancel()
        status.done()
        if host.ended.done():
            reason = host.ended.result()
            print(f"The room ended ({reason}).", file=sys.stderr)
            await host.close()
            return FINISHED if reason in ("host-ended", "host-left") else FAILED
        await host.end()
        why = "Ctrl-C" if interrupted else "the source ended"
        print(f"Ended the room ({why}); viewers were told.", file=sys.stderr)
        return FINISHED


async def _source_ended(source: Source) -> None:
    """Resolves when the source has nothing more to give (a file played to its end)."""
    ended = asyncio.Event()

    def check() -> None:
        if all(track.readyState != "live" for track in source.tracks):
            ended.set()

    for track in source.tracks:
        track.on("ended", check)
    check()
    await ended.wait()
