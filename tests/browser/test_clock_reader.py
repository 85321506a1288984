"""The glass-to-glass benchmark's clock source and reader (benchmarks/pages/clock.js),
checked on synthetic frames: a reader that read wrong would report a good figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page

from ..support.processes import ServerProcess
from .pages import expect_frames_flowing, start_sharing, watch

CLOCK = (Path(__file__).resolve().parents[2] / "benchmarks" / "pages" / "clock.js").read_text()
NewPage = Callable[..., Page]


def clock_page(new_page: NewPage) -> Page:
    page = new_page()
    page.add_init_script(CLOCK)
    page.goto("about:blank")
    page.evaluate(CLOCK)
    return page


def test_times_painted_are_read_back_exactly_at_full_and_half_size(new_page: NewPage) -> None:
    page = clock_page(new_page)
    results = page.evaluate(
        """() => {
      const { paint, read } = window.peerscreenClock;
      const full = document.createElement("canvas"); full.width = 1280; full.height = 720;
      const ctx = full.getContext("2d", { willReadFrequently: true });
      const half = document.createElement("canvas"); half.width = 640; half.height = 360;
      const small = half.getContext("2d", { willReadFrequently: true });
      const out = [];
      for (const [time, frame] of [[1795640012345, 7], [Date.now(), 255], [1577836800001, 0]]) {
        ctx.fillStyle = "#888"; ctx.fillRect(0, 0, 1280, 720);
        paint(ctx, time, frame);
        small.drawImage(full, 0, 0, 640, 360);  // scaled down: blurred edges
        out.push([time, frame, read(ctx), read(small, 0.5)]);
      }
      return out;
    }"""
    )
    for time, frame, full, half in results:
        assert full == {"time": time, "frame": frame}
        assert half == {"time": time, "frame": frame}


def test_frames_without_a_valid_clock_are_rejected_not_misread(new_page: NewPage) -> None:
    page = clock_page(new_page)
    results = page.evaluate(
        """() => {
      const { paint, read, BLOCK } = window.peerscreenClock;
      const canvas = document.createElement("canvas"); canvas.width = 1280; canvas.height = 720;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      const out = {};
      // Noise.
      const noise = ctx.createImageData(1280, 720);
      for (let i = 0; i < noise.data.length; i++) noise.data[i] = (Math.random() * 256) | 0;
      ctx.putImageData(noise, 0, 0);
      out.noise = read(ctx);
      // A plain page.
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, 1280, 720);
      out.blank = read(ctx);
      // A clock whose check row was overwritten (a half-decoded frame).
      paint(ctx, Date.now(), 1);
      ctx.fillStyle = "#000"; ctx.fillRect(0, BLOCK, 10 * BLOCK, BLOCK);
      out.damaged = read(ctx);
      // Two bits' columns swapped, both rows alike: each bit still looks valid.
      paint(ctx, Date.now(), 1);
      let [a, b] = [null, null];
      for (let bit = 0; bit < 40 && b === null; bit++) {
        const dark = ctx.getImageData(bit * BLOCK + 8, 8, 1, 1).data[0] < 128;
        if (a === null) a = { bit, dark };
        else if (dark !== a.dark) b = bit;
      }
      const column = ctx.getImageData(a.bit * BLOCK, 0, BLOCK, 2 * BLOCK);
      ctx.putImageData(ctx.getImageData(b * BLOCK, 0, BLOCK, 2 * BLOCK), a.bit * BLOCK, 0);
      ctx.putImageData(column, b * BLOCK, 0);
      out.columnsSwapped = read(ctx);
      // Grey blocks: a blur too strong to tell.
      paint(ctx, Date.now(), 1);
      ctx.filter = "blur(12px)"; ctx.drawImage(canvas, 0, 0); ctx.filter = "none";
      out.blurred = read(ctx);
      return out;
    }"""
    )
    assert results == {
        "noise": None,
        "blank": None,
        "damaged": None,
        "columnsSwapped": None,
        "blurred": None,
    }


def test_text_sharpness_is_perfect_for_the_source_and_lower_once_blurred(
    new_page: NewPage,
) -> None:
    page = clock_page(new_page)
    result = page.evaluate(
        """() => {
      const { drawText, sharpness } = window.peerscreenClock;
      const canvas = document.createElement("canvas"); canvas.width = 1280; canvas.height = 720;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      drawText(ctx, 42);
      const same = sharpness(ctx, 42);
      // Scrolled text compared with what was painted for its own frame, then for another.
      drawText(ctx, 43, true);
      const scrolled = sharpness(ctx, 43, true);
      const scrolledElsewhere = sharpness(ctx, 44, true);
      // The source counts on past 255; the reader has the 8 bits painted in the frame.
      drawText(ctx, 300, true);
      const scrolledLater = sharpness(ctx, 300 & 0xff, true);
      drawText(ctx, 42);
      ctx.filter = "blur(1px)"; ctx.drawImage(canvas, 0, 0); ctx.filter = "none";
      const blurred = sharpness(ctx, 42);
      // Only the light-on-dark half blurred.
      drawText(ctx, 42);
      ctx.save(); ctx.beginPath(); ctx.rect(16, 260, 640, 212); ctx.clip();
      ctx.filter = "blur(1px)"; ctx.drawImage(canvas, 0, 0); ctx.restore();
      const darkBlurred = sharpness(ctx, 42);
      return { same, scrolled, scrolledElsewhere, scrolledLater, blurred, darkBlurred };
    }"""
    )
    same = result["same"]
    assert same["ssim"] == same["darkOnLight"] == same["lightOnDark"] == 1.0
    assert same["psnr"] is None or same["psnr"] > 99  # Infinity
    assert result["scrolled"]["ssim"] == result["scrolledLater"]["ssim"] == 1.0
    assert result["scrolledElsewhere"]["ssim"] < 0.9  # the reference moves with the frame
    assert 0.3 < result["blurred"]["ssim"] < 0.95
    assert result["blurred"]["psnr"] < 30
    dark = result["darkBlurred"]
    assert dark["darkOnLight"] == 1.0 and 0.3 < dark["lightOnDark"] < 0.95


CLOCK_AS_SCREEN = """
navigator.mediaDevices.getDisplayMedia = async () => window.peerscreenClock.source({ fps: 30 });
"""


def test_through_a_real_room_the_reader_sees_a_plausible_latency(
    memory_server: ServerProcess, new_page: NewPage
) -> None:
    """The clock stream shared from the host page in place of the screen, read in the
    viewer's video after VP8 and the network."""
    host = new_page()
    host.add_init_script(CLOCK)
    host.add_init_script(CLOCK_AS_SCREEN)
    code = start_sharing(host, memory_server.base_url)
    viewer = new_page()
    viewer.add_init_script(CLOCK)
    watch(viewer, memory_server.base_url, code)
    expect_frames_flowing(viewer)
    viewer.evaluate("window.peerscreenClock.watch(document.getElementById('remote-video'))")
    viewer.wait_for_function("window.clockReadings.length >= 60")
    readings = viewer.evaluate("window.clockReadings")
    rejected = viewer.evaluate("window.clockRejected")
    latencies = [r["latency"] for r in readings]
    assert all(0 <= latency < 2000 for latency in latencies), latencies
    assert rejected <= len(readings) // 4, (rejected, len(readings))
    frames = [r["frame"] for r in readings]
    assert len(set(frames)) > len(frames) // 2, "the frame numbers do not advance"
