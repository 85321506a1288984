"""The supervised coturn's command line and configuration file (nothing started)."""

from __future__ import annotations

import shutil
import stat

import pytest

from peerscreen.config import Settings
from peerscreen.turn import LocalTurn

pytestmark = pytest.mark.skipif(
    shutil.which("turnserver") is None, reason="coturn is installed by scripts/test"
)


def test_the_secret_is_in_a_private_file_not_on_the_command_line() -> None:
    turn = LocalTurn(Settings(turn=True))
    try:
        command = " ".join(turn.command())
        assert turn.secret not in command
        assert "static-auth-secret" not in command
        assert f"-c {turn.config_file}" in command
        mode = turn.config_file.stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE(turn.config_dir.stat().st_mode) == 0o700
        assert turn.config_file.read_text() == f"static-auth-secret={turn.secret}\n"
    finally:
        turn.stop()
    assert not turn.config_dir.exists()


def test_private_peers_are_refused_unless_allowed() -> None:
    public = LocalTurn(Settings(turn=True))
    local = LocalTurn(Settings(turn=True, turn_allow_private_peers=True))
    try:
        refused = public.command()
        for span in ("127.0.0.0-127.255.255.255", "10.0.0.0-10.255.255.255", "::1"):
            assert f"--denied-peer-ip={span}" in refused
        assert "--allow-loopback-peers" not in refused
        allowed = local.command()
        assert "--allow-loopback-peers" in allowed
        assert not [arg for arg in allowed if arg.startswith("--denied-peer-ip")]
    finally:
        public.stop()
        local.stop()
