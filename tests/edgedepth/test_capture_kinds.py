"""What a uri names and how it opens (``edgedepth.capture.kinds``): classification without opening, the
Jetson CSI pipeline, bad sources, and streams that cannot be reached."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth.capture import SourceKind, VideoSource, classify_source, jetson_csi_pipeline, read_video_frames
from edgedepth.errors import SourceError


# ---- classification and bad inputs -------------------------------------------------------------------------
def test_classify_source_without_opening(tmp_path: Path) -> None:
    video = tmp_path / "clips" / "clip.avi"  # an existing file: classified, never opened
    video.parent.mkdir()
    video.write_bytes(b"not decoded")
    cases = {
        0: SourceKind.CAMERA,
        "1": SourceKind.CAMERA,
        "/dev/video0": SourceKind.CAMERA,
        "rtsp://10.0.0.2:554/stream?x=1": SourceKind.STREAM,
        "RTSPS://cam/live": SourceKind.STREAM,
        "http://host/video.mjpg": SourceKind.STREAM,
        "https://host/a.mp4": SourceKind.STREAM,
        "tcp://127.0.0.1:5000": SourceKind.STREAM,
        "videotestsrc ! videoconvert ! appsink": SourceKind.GSTREAMER,
        jetson_csi_pipeline(): SourceKind.GSTREAMER,
        str(tmp_path): SourceKind.IMAGES,
        tmp_path: SourceKind.IMAGES,
        str(tmp_path / "*.png"): SourceKind.IMAGES,
        str(tmp_path / "img_[0-9].jpg"): SourceKind.IMAGES,
        str(video): SourceKind.FILE,
        "missing/clip.mp4": SourceKind.FILE,
    }
    for uri, kind in cases.items():
        assert classify_source(uri) is kind, uri
    for bad in ("ftp://x", "", True, 1.5, -1):
        with pytest.raises(SourceError):
            classify_source(bad)  # type: ignore[arg-type]


def test_jetson_csi_pipeline_elements() -> None:
    pipeline = jetson_csi_pipeline(sensor_id=1, width=1920, height=1080, fps=60, flip=2, out_width=960)
    for element in (
        "nvarguscamerasrc sensor-id=1",
        "video/x-raw(memory:NVMM), width=1920, height=1080, framerate=60/1",
        "nvvidconv flip-method=2",
        "video/x-raw, width=960, height=1080, format=BGRx",
        "videoconvert ! video/x-raw, format=BGR",
        "appsink drop=1 max-buffers=1",
    ):
        assert element in pipeline
    assert pipeline.count(" ! ") == 6


def test_bad_sources_raise_source_error_naming_the_uri(tmp_path: Path) -> None:
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("plain text")
    empty = tmp_path / "empty"
    empty.mkdir()
    for uri in (
        str(tmp_path / "missing.mp4"),
        str(empty),
        str(tmp_path / "*.jpg"),
        "ftp://x",
        str(not_a_video),
    ):
        with pytest.raises(SourceError) as info:
            VideoSource(uri, timeout_s=0.5)
        assert uri in str(info.value)
    with pytest.raises(SourceError, match="accepted"):
        VideoSource("ftp://x")


# ---- unreachable streams -------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_stream_says_what_failed_without_ffmpeg_noise() -> None:
    """Refused, or a server that answers without a stream: our error says which; OpenCV and FFmpeg print
    nothing of their own (checked in a fresh interpreter, where FFmpeg's log level is first set)."""
    import socket
    import subprocess
    import sys

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    silent_port = server.getsockname()[1]
    script = (
        "import sys\nfrom edgedepth.capture import VideoSource\n"
        "for url in sys.argv[1:]:\n"
        "    try:\n        VideoSource(url)\n    except Exception as exc:\n        print(type(exc).__name__, exc)\n"
    )
    urls = [f"http://127.0.0.1:{_free_port()}/a.mjpg", f"tcp://127.0.0.1:{silent_port}"]
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, *urls], capture_output=True, text=True, timeout=120
        )
    finally:
        server.close()
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("SourceError") for line in lines), done.stdout
    assert "connection refused" in lines[0] and "accepted" not in lines[0]
    assert "answers, but no stream" in lines[1]
    assert done.stderr.strip() == "", done.stderr


def test_read_video_frames_stops_at_the_limit_and_resizes(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    frames = read_video_frames(path)
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    assert abs(int(frames[3].mean()) - 120) <= 3  # in order
    resized = read_video_frames(path, limit=2, hw=(24, 32))
    assert [f.shape for f in resized] == [(24, 32, 3)] * 2
    assert read_video_frames(tmp_path / "missing.avi") == []
