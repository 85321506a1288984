"""The first-frame benchmark's trace reader (benchmarks/encoder_start.py), on synthetic
traces: a broken reader must not report a good figure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from encoder_start import encoder_start

HOST, VIEWER = 1, 2
CADENCE = {"src_file": "third_party/webrtc/video/frame_cadence_adapter.cc"}
T0 = 1_000_000  # the viewer's "connected", in trace microseconds


def mark(name: str, pid: int, ms: float) -> dict[str, Any]:
    return {"name": name, "pid": pid, "ts": T0 + ms * 1000, "ph": "R"}


def task(name: str, pid: int, ms: float, dur_ms: float, **args: Any) -> dict[str, Any]:
    return {
        "name": name,
        "pid": pid,
        "ts": T0 + ms * 1000,
        "dur": dur_ms * 1000,
        "ph": "X",
        "args": args,
    }


def capture(ms: float, frame: int) -> dict[str, Any]:
    return task("WebRtcVideoSource::OnFrameCaptured", HOST, ms, 0, ts=frame)


def trace() -> list[dict[str, Any]]:
    """The usual shape: the first frame after connecting sets the encoder up and is not
    encoded; the next one, 50 ms later, is."""
    return [
        mark("viewer-answer", VIEWER, -60),
        # Another connection's encode, before this viewer answered: not this one's.
        task("VideoEncoder::Encode", HOST, -80, 5),
        mark("host-connected", HOST, -10),
        mark("viewer-connected", VIEWER, 0),
        capture(9.5, 100),
        capture(9.6, 100),  # the same frame reaching a second connection
        task("ThreadPool_RunTask", HOST, 10, 40, **CADENCE),
        capture(59.8, 101),
        task("ThreadPool_RunTask", HOST, 60, 25, **CADENCE),
        task("VideoEncoder::Encode", HOST, 60.2, 24),
        task("ThreadPool_RunTask", HOST, 90, 2, **CADENCE),  # too short for a set-up
        task("VCMGenericDecoder::Decode", VIEWER, 95, 7),
        task("VCMGenericDecoder::Decode", VIEWER, 130, 3),
    ]


def test_reads_set_up_wasted_frames_first_encode_and_decode() -> None:
    reading = encoder_start(trace())
    assert reading == {
        "host connected": -10.0,
        "encoder set-up ms": 40.0,
        "encoder set-up starts": 10.0,
        "frames captured, not encoded": 1.0,
        "first encode starts": 60.2,
        "first encode ms": 24.0,
        "first decode starts": 95.0,
        "first decode ms": 7.0,
    }


def test_a_task_with_an_encode_in_it_is_not_a_set_up() -> None:
    events = [
        e for e in trace() if not (e["name"] == "ThreadPool_RunTask" and e["ts"] == T0 + 10_000)
    ]
    reading = encoder_start(events)
    assert reading is not None
    assert reading["encoder set-up ms"] == 0.0
    assert "encoder set-up starts" not in reading
    assert reading["frames captured, not encoded"] == 0.0  # counted from the set-up only


def test_without_the_marks_or_an_encode_there_is_no_reading() -> None:
    assert encoder_start([e for e in trace() if e["name"] != "viewer-connected"]) is None
    assert encoder_start([e for e in trace() if e["name"] != "host-connected"]) is None
    assert encoder_start([e for e in trace() if e["name"] != "VideoEncoder::Encode"]) is None
