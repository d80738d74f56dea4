"""The streaming pipeline (``edgedepth.pipeline``) and one-frame staging (``edgedepth.staging``): capture,
inference and delivery overlap, every file frame arrives, a failing source is reported, close is prompt."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import DepthEstimator
from edgedepth.capture import VideoSource
from edgedepth.errors import InputError, SourceError
from edgedepth.stream import EndReason, Stream, StreamStats


def test_stream_and_predict_go_through_the_same_staging(tiny_onnx: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3)).astype(np.uint8)
    with (
        DepthEstimator(tiny_onnx) as est,
        est.stream(VideoSource.from_capture(OneFrame(image), live=False)) as s,
    ):
        (item,) = list(s)
        single = est.predict(image)
    frame, streamed = item.frame, item.result
    assert item.index == 0 and item.captured_at > 0
    assert np.array_equal(frame, image) and np.array_equal(streamed.inverse_depth, single.inverse_depth)
    assert set(single.timings_ms) == {"preprocess", "infer", "postprocess", "resize"}  # the maps were read
    assert set(streamed.timings_ms) == {*single.timings_ms, "stabilize"}  # stream(stabilize=True) by default


def test_max_frames_must_be_positive(tiny_onnx: Path) -> None:
    with DepthEstimator(tiny_onnx) as est, pytest.raises(InputError, match="max_frames=0"):
        est.stream(
            VideoSource.from_capture(OneFrame(np.zeros((8, 8, 3), np.uint8)), live=False), max_frames=0
        )


class OneFrame:
    """A file-like capture of one frame."""

    def __init__(self, image: np.ndarray) -> None:
        self.image, self.done = image, False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.done:
            return False, None
        self.done = True
        return True, self.image

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        pass


def write_video(path: Path, n: int, size: tuple[int, int] = (64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), (i * 9) % 256, np.uint8))
    writer.release()
    return path


def test_stream_a_written_video_end_to_end(tiny_onnx: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 37)
    with DepthEstimator(tiny_onnx) as est, est.stream(str(video)) as frames:
        count = sum(1 for item in frames if item.result.inverse_depth.shape == item.frame.shape[:2])
        assert count == 37 == frames.stats.frames and frames.stats.dropped == 0


def test_stream_a_real_video_end_to_end(tiny_onnx: Path, video_dir: Path) -> None:
    path = video_dir / "tree.avi"
    capture, decodable = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        decodable += 1
    with DepthEstimator(tiny_onnx) as est, est.stream(str(path)) as frames:
        assert sum(1 for _ in frames) == decodable > 0


class FailingCamera:
    """A capture-like live source that delivers a few frames, then fails for good."""

    def __init__(self) -> None:
        self.n = 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.n += 1
        time.sleep(0.005)
        return (self.n <= 5, np.zeros((32, 32, 3), np.uint8) if self.n <= 5 else None)

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        pass


def test_a_source_that_fails_is_reported(tiny_onnx: Path) -> None:
    source = VideoSource.from_capture(FailingCamera(), live=True, reconnect=False)
    with DepthEstimator(tiny_onnx) as est, pytest.raises(SourceError):
        for _ in est.stream(source):
            pass


def test_closing_a_live_stream_is_prompt(tiny_onnx: Path) -> None:
    class EndlessCamera(FailingCamera):
        def read(self) -> tuple[bool, np.ndarray]:
            time.sleep(0.002)
            return True, np.zeros((32, 32, 3), np.uint8)

    source = VideoSource.from_capture(EndlessCamera(), live=True)
    with DepthEstimator(tiny_onnx) as est:
        frames = est.stream(source)
        for i, _ in enumerate(frames):
            if i == 10:
                break
        frames.close()  # joins both threads (each within a second); a hang would fail the suite's timeout
        assert not any(t.name.startswith("edgedepth-") and t.is_alive() for t in threading.enumerate())


def test_the_stream_says_how_it_ended(tiny_onnx: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 6)
    with DepthEstimator(tiny_onnx) as est:
        with est.stream(str(video)) as frames:
            assert sum(1 for _ in frames) == 6
        assert frames.stats.end is EndReason.END_OF_STREAM and frames.stats.ended_by == "end of stream"
        assert [s.end for s in frames.stats.sources] == [EndReason.END_OF_STREAM]
        with est.stream(str(video), max_frames=2) as frames:
            assert sum(1 for _ in frames) == 2
        assert frames.stats.end is EndReason.MAX_FRAMES and frames.stats.ended_by == "max_frames"
        frames = est.stream(str(video))
        next(frames)
        frames.close()
        assert frames.stats.end is EndReason.CLOSED and list(frames) == []
        assert frames.stats.sources[0].end is EndReason.CLOSED and frames.stats.sources[0].error is None


def test_the_old_stream_names_and_tuples_keep_working_with_a_warning(tiny_onnx: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 3)
    with DepthEstimator(tiny_onnx) as est:
        with est.stream(str(video)) as frames, pytest.warns(DeprecationWarning, match="item.frame"):
            pairs = [(frame, result) for frame, result in frames]  # one source: (frame, result), as before
        assert len(pairs) == 3 and pairs[0][1].inverse_depth.shape == pairs[0][0].shape[:2]
        with est.stream([str(video)]) as frames, pytest.warns(DeprecationWarning):
            assert [index for index, _, _ in frames] == [0, 0, 0]  # a list: (index, frame, result)
    with pytest.warns(DeprecationWarning, match="edgedepth.stream.Stream"):
        from edgedepth.pipeline import StreamPipeline
    with pytest.warns(DeprecationWarning, match="edgedepth.stream.StreamStats"):
        from edgedepth.multistream import MultiStreamStats
    assert StreamPipeline is Stream and MultiStreamStats is StreamStats
