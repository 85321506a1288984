"""What the host's encoder is told: where its bitrate starts, which codec each viewer gets."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from ..support.processes import ServerProcess
from .pages import expect_frames_flowing, start_sharing, track_peer_connections, watch

NewPage = Callable[..., Page]

SDP = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:102 H264/90000",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "",
    ]
)

# Resolves with the host's first encoded frame's figures (or null past the deadline).
FIRST_ENCODED_FRAME = """async () => {
  const deadline = performance.now() + 20000;
  while (performance.now() < deadline) {
    const pc = window.peerConnections[0];
    const report = pc ? await pc.getStats() : new Map();
    for (const s of report.values()) {
      if (s.type === "outbound-rtp" && s.kind === "video" && s.framesEncoded > 0) {
        return {targetBitrate: s.targetBitrate, width: s.frameWidth,
                remote: pc.remoteDescription.sdp};
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return null;
}"""


def test_start_bitrate_is_added_to_video_codecs_only(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    page = new_page()
    page.goto(memory_server.base_url + "/")
    edited, again = page.evaluate(
        """async (sdp) => {
          const { withStartBitrate } = await import("/static/js/sdp.js");
          const once = withStartBitrate(sdp, 2000);
          return [once, withStartBitrate(once, 2000)];
        }""",
        SDP,
    )
    lines = edited.split("\r\n")
    assert "a=fmtp:96 x-google-start-bitrate=2000" in lines  # VP8 had no fmtp line
    assert (
        lines.index("a=fmtp:96 x-google-start-bitrate=2000")
        == lines.index("a=rtpmap:96 VP8/90000") + 1
    )
    assert (
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;"
        "x-google-start-bitrate=2000"
    ) in lines
    assert "a=fmtp:97 apt=96" in lines and "a=fmtp:111 minptime=10;useinbandfec=1" in lines
    assert edited.count("x-google-start-bitrate") == 2 and again == edited


def test_a_new_viewer_gets_sharp_full_size_frames_from_the_first_one(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    """Chromium would start at 300 kbit/s and, for motion, drop the first frames and send
    a quarter-size picture; the host starts its estimate at 2 Mbit/s instead."""
    base = memory_server.base_url
    host = new_page()
    track_peer_connections(host)
    code = start_sharing(host, base)
    host.get_by_label("Motion").check()
    viewer = new_page()
    watch(viewer, base, code)
    first = host.evaluate(FIRST_ENCODED_FRAME)
    assert first is not None, "the host never encoded a frame for its viewer"
    assert "x-google-start-bitrate=2000" in first["remote"]
    assert first["targetBitrate"] >= 1_000_000, first["targetBitrate"]
    assert first["width"] >= 960, first["width"]
    expect_frames_flowing(viewer)
    expect(viewer.locator("#status")).to_have_attribute("data-state", "connected")


# A browser that decodes H.264 and nothing else: its answers list no other video codec.
DECODES_ONLY_H264 = """
(() => {
  const apply = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = async function (desc) {
    await apply.call(this, desc);
    if (!desc || desc.type !== "offer") return;
    const keep = ["video/h264", "video/rtx", "video/red", "video/ulpfec"];
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs
      .filter((codec) => keep.includes(codec.mimeType.toLowerCase()));
    for (const transceiver of this.getTransceivers()) {
      if (transceiver.receiver.track.kind === "video") transceiver.setCodecPreferences(codecs);
    }
  };
})();
"""


def viewer_codec(viewer: Page) -> str:
    """The codec the viewer's stats overlay names, once it names one."""
    overlay = viewer.locator("#stats-overlay")
    if overlay.is_hidden():
        viewer.keyboard.press("s")
    codec = overlay.locator("[data-stat=codec]")
    expect(codec).not_to_have_text("-")
    return codec.inner_text()


# A browser whose own order puts H.264 first (as Safari's does).
H264_FIRST_BY_DEFAULT = """
(() => {
  const addTrack = RTCPeerConnection.prototype.addTrack;
  RTCPeerConnection.prototype.addTrack = function (...args) {
    const sender = addTrack.apply(this, args);
    const transceiver = this.getTransceivers().find((t) => t.sender === sender);
    if (sender.track && sender.track.kind === "video") {
      const codecs = RTCRtpSender.getCapabilities("video").codecs;
      const h264 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264");
      transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => !h264.includes(c))]);
    }
    return sender;
  };
})();
"""


def test_a_viewer_that_cannot_decode_the_preferred_codec_gets_one_it_can(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    """The host offers VP8 first whatever its browser's own order; mixed browsers in one
    room each get a codec they decode, through both presets."""
    base = memory_server.base_url
    host = new_page()
    host.add_init_script(H264_FIRST_BY_DEFAULT)
    code = start_sharing(host, base)
    usual, limited = new_page(), new_page()
    limited.add_init_script(DECODES_ONLY_H264)
    for viewer in (usual, limited):
        watch(viewer, base, code)
        expect_frames_flowing(viewer)
    expect(limited.locator("#status")).to_have_attribute("data-state", "connected")
    assert viewer_codec(limited) == "H264"
    assert viewer_codec(usual) == "VP8"

    host.get_by_label("Motion").check()
    for viewer in (usual, limited):
        expect_frames_flowing(viewer)
    expect(limited.locator("[data-stat=codec]")).to_have_text("H264")
    expect(usual.locator("[data-stat=codec]")).to_have_text("VP8")
    # The host's list says each viewer's codec.
    stats = host.locator("#viewer-list .link-stats")
    expect(stats.filter(has_text="H264")).to_have_count(1)
    expect(stats.filter(has_text="VP8")).to_have_count(1)
    expect(host.locator("#viewer-list li[data-state='connected']")).to_have_count(2)
