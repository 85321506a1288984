"""``peerscreen serve``: run the server under uvicorn.

Every setting is a flag, built from :class:`~peerscreen.config.Settings`, so the flags,
the environment variables and their help never drift apart.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import __version__
from .client.commands import add_commands as add_client_commands

if TYPE_CHECKING:
    from .config import Settings

CLIENT_COMMANDS = ("watch", "share")


def _env_names(name: str) -> str:
    from .config import Settings

    field = Settings.model_fields[name]
    alias = field.validation_alias
    names = [f"PEERSCREEN_{name.upper()}"]
    if alias is not None and hasattr(alias, "choices"):
        names = [c for c in alias.choices if isinstance(c, str) and c.isupper()]
    return " or ".join(names)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    from pydantic import SecretStr

    from .config import Settings

    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        kind: Any = str
        if annotation in (int, float):
            kind = annotation
        default = field.default
        if isinstance(default, SecretStr):
            default = "***"
        shown = "unset" if default is None else default
        help_text = f"{field.description} [env: {_env_names(name)}; default: {shown}]"
        if annotation is bool:
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
            continue
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            default=None,
            metavar=name.upper() if kind is str else kind.__name__.upper(),
            help=help_text,
        )


def build_parser(with_server: bool = True) -> argparse.ArgumentParser:
    """The ``peerscreen`` command; ``with_server=False`` leaves ``serve`` out, and with it
    the server's settings, which the client commands need not load."""
    parser = argparse.ArgumentParser(
        prog="peerscreen", description="Self-hosted peer-to-peer screen sharing."
    )
    parser.add_argument("--version", action="version", version=f"peerscreen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    if not with_server:
        add_client_commands(commands)
        return parser
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the peerscreen server. Flags override environment variables.",
    )
    _add_setting_flags(serve)
    add_client_commands(commands)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    from .config import Settings

    given = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    return Settings(**given)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in CLIENT_COMMANDS:
        # A third of the client's start-up went to loading the server's settings.
        from .client.commands import run as run_client

        return run_client(build_parser(with_server=False).parse_args(words))
    from pydantic import ValidationError

    from .logs import configure as configure_logging

    args = build_parser().parse_args(words)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"peerscreen: {where}: {error['msg']}", file=sys.stderr)
        return 2

    level = settings.log_level.lower()
    configure_logging(level)
    if settings.redis_url:
        import asyncio

        from .store.redis import unsupported_redis

        problem = asyncio.run(unsupported_redis(settings.redis_url))
        if problem is not None:
            print(f"peerscreen: redis_url: {problem}", file=sys.stderr)
            return 2
    turn = None
    if settings.turn:
        from .turn import LocalTurn, TurnNotInstalled

        try:
            turn = LocalTurn(settings)
        except TurnNotInstalled as exc:
            print(f"peerscreen: {exc}", file=sys.stderr)
            return 2
        turn.start()
        settings = turn.settings_for(settings)
        print(f"peerscreen: relay (coturn) on port {turn.port}", flush=True)
    janus = None
    if settings.janus:
        from .media.local_janus import JanusNotInstalled, LocalJanus

        try:
            janus = LocalJanus.for_settings(settings)
        except JanusNotInstalled as exc:
            if turn is not None:
                turn.stop()
            print(f"peerscreen: {exc}", file=sys.stderr)
            return 2
        janus.start()
        settings = janus.settings_for(settings)
        print(f"peerscreen: media server (Janus) API on {janus.url}", flush=True)
    print(
        f"peerscreen {__version__}: {settings.scheme}://{settings.host}:{settings.port}/ "
        f"({settings.store_kind} store)",
        flush=True,
    )
    try:
        run(settings, level)
    finally:
        if turn is not None:
            turn.stop()
        if janus is not None:
            janus.stop()
    return 0


def run(settings: Settings, level: str) -> None:
    import uvicorn

    from .app import create_app
    from .http_server import DrainingServer, protocols, raise_file_limit
    from .ratelimit import parse_networks

    files = raise_file_limit()
    logging.getLogger("peerscreen").info("open-file limit: %d", files)
    app = create_app(settings)
    http_protocol, ws_protocol = protocols(settings, parse_networks(settings.trusted_proxies), app)
    config = uvicorn.Config(
        app,
        http=http_protocol,
        host=settings.host,
        port=settings.port,
        log_level=level,
        log_config=None,  # logging is set up by configure_logging: redacted, one format
        # Query strings carry no tokens, but request lines still say nothing worth
        # logging per call at info level; errors are logged by the app.
        access_log=level == "debug",
        # peerscreen's own WebSocket protocol (websocket.py): no per-message deflate
        # (compressing 200-byte messages costs more CPU than it saves, and zlib state
        # tens of kilobytes a socket), no protocol pings (the server pings at the
        # application level, a message the page can see and answer).
        ws=ws_protocol,
        # Forwarded headers are trusted only from configured proxies, by the app itself.
        proxy_headers=False,
        interface="asgi3",  # PeerscreenApp returns coroutines rather than being one
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
        # Long-polls return at once when stopping (see DrainingServer); this is the
        # backstop for any other request still running.
        timeout_graceful_shutdown=5,
    )
    DrainingServer(config, on_stop=app.begin_shutdown).run()


if __name__ == "__main__":
    raise SystemExit(main())
