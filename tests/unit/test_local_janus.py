"""The supervised Janus's configuration (nothing started) and the message when Janus is
missing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from peerscreen.config import Settings
from peerscreen.media.local_janus import LocalJanus


def test_secrets_stay_in_private_files_and_apis_on_loopback() -> None:
    janus = LocalJanus.for_settings(
        Settings(
            janus=True,
            janus_ice_addresses="127.0.0.2",
            janus_rtp_ports="41000-41099",
            stun_urls="stun:stun.example.org:3478",
            turn_urls="turn:turn.example.org:3478?transport=udp",
            turn_secret="s",
            port=8443,
        )
    )
    try:
        command = " ".join(janus.command())
        assert janus.config.api_secret not in command
        assert janus.config.admin_secret not in command
        files = {path.name: path for path in janus.folder.iterdir()}
        for path in files.values():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        main = files["janus.jcfg"].read_text()
        assert f'api_secret = "{janus.config.api_secret}"' in main
        assert 'ice_enforce_list = "127.0.0.2"' in main
        assert 'rtp_port_range = "41000-41099"' in main
        assert 'stun_server = "stun.example.org"' in main and "stun_port = 3478" in main
        assert 'turn_rest_api = "http://127.0.0.1:8443/api/media/turn"' in main
        transport = files["janus.transport.websockets.jcfg"].read_text()
        assert 'ws_ip = "127.0.0.1"' in transport and 'admin_ws_ip = "127.0.0.1"' in transport
        plugin = files["janus.plugin.videoroom.jcfg"].read_text()
        assert f'admin_key = "{janus.config.admin_secret}"' in plugin
        # The server hands its own code the same secrets.
        settings = janus.settings_for(Settings())
        assert settings.janus_urls == janus.url
        assert settings.janus_api_secret is not None
        assert settings.janus_api_secret.get_secret_value() == janus.config.api_secret
    finally:
        janus.stop()
    assert not janus.folder.exists()


def test_serve_janus_without_janus_says_how_to_install_it() -> None:
    bin_dir = os.path.dirname(sys.executable)
    done = subprocess.run(
        [sys.executable, "-m", "peerscreen", "serve", "--janus", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": bin_dir},  # no /usr/bin: no janus
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "apt install janus" in done.stderr
