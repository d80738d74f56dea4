"""VideoSource: real video decoding, image folders, and the live grabber driven by synthetic capture objects."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth.capture import (
    ReadStatus,
    SourceKind,
    SourceState,
    StatusEvent,
    VideoSource,
    classify_source,
)
from edgedepth.errors import SourceError

W, H = 64, 48
STEP = 6  # a frame's index is written as its grey level index * STEP, far apart enough to survive MJPEG


def _grey(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


def _decoded_index(image: np.ndarray) -> int:
    return round(float(image.mean()) / STEP)


def _plain_decode_count(path: Path) -> int:
    """How many frames a plain cv2.VideoCapture loop decodes (the reference count)."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def written_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("video") / "counter.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG .avi files")
    count = 40
    for i in range(count):
        writer.write(_grey(i * STEP))
    writer.release()
    return path, count


# ---- files -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["box.mp4", "tree.avi"])  # tree.avi's header claims 444 frames; 68 decode
def test_real_video_yields_every_decodable_frame(video_dir: Path, name: str) -> None:
    path = video_dir / name
    expected = _plain_decode_count(path)
    with VideoSource(path, timeout_s=5.0) as source:
        assert source.kind is SourceKind.FILE and not source.is_live
        indices = [frame.index for frame in source]
        assert source.read().status is ReadStatus.END_OF_STREAM
        stats = source.stats
        assert source.fps_hint is not None and source.frame_size is not None
    assert indices == list(range(expected))
    assert stats.frames_read == stats.frames_captured == expected and stats.dropped == 0


def test_written_video_in_order_for_a_slow_consumer(written_video: tuple[Path, int]) -> None:
    path, count = written_video
    with VideoSource(str(path), timeout_s=5.0) as source:
        assert source.fps_hint == pytest.approx(25.0) and source.frame_size == (W, H)
        frames = []
        while (frame := source.read()).ok:
            assert (
                frame.image is not None and frame.image.dtype == np.uint8 and frame.image.shape == (H, W, 3)
            )
            frames.append(frame)
            if len(frames) < 8:
                time.sleep(0.02)  # slower than decoding: the bounded queue fills, nothing is lost
        assert frame.status is ReadStatus.END_OF_STREAM and frame.error is None
        assert source.stats.dropped == 0
    assert [f.index for f in frames] == list(range(count))
    assert [_decoded_index(f.image) for f in frames if f.image is not None] == list(range(count))
    assert all(a.timestamp_s <= b.timestamp_s for a, b in itertools.pairwise(frames))


def test_loop_restarts_a_file_and_keeps_indices_increasing(written_video: tuple[Path, int]) -> None:
    path, count = written_video
    with VideoSource(path, loop=True, timeout_s=5.0) as source:
        frames = [source.read() for _ in range(count + 5)]
    assert all(f.ok for f in frames)
    assert [f.index for f in frames] == list(range(count + 5))
    assert [_decoded_index(f.image) for f in frames[count:] if f.image is not None] == list(range(5))


def test_image_folder_and_glob_in_sorted_order_skipping_corrupt(tmp_path: Path) -> None:
    for i in reversed(range(6)):  # written in reverse so directory order is not the answer
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), _grey(i * STEP))
    (tmp_path / "frame_002b.png").write_bytes(b"not a png at all")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    for uri in (tmp_path, str(tmp_path / "frame_*.png")):
        with VideoSource(uri) as source:
            assert source.kind is SourceKind.IMAGES and not source.is_live
            values = [_decoded_index(f.image) for f in source if f.image is not None]
            assert values == list(range(6))
            assert source.stats.corrupt == 1 and source.frame_size == (W, H)


def test_an_rgbd_folder_streams_its_colour_images_in_order(tmp_path: Path) -> None:
    for i in reversed(range(4)):
        frame = tmp_path / f"f{i:02d}"
        frame.mkdir()
        cv2.imwrite(str(frame / "rgb.png"), _grey(i * STEP))
        cv2.imwrite(str(frame / "depth.png"), np.full((H, W), 9000, np.uint16))  # never read as a frame
    (tmp_path / "README.txt").write_text("not a frame")
    assert classify_source(tmp_path) is SourceKind.RGBD
    with VideoSource(tmp_path) as source:
        assert [_decoded_index(f.image) for f in source if f.image is not None] == list(range(4))


# ---- live logic, driven by capture-like objects ------------------------------------------------------------
class CounterCamera:
    """A synthetic camera at about 500 fps; each frame carries its sequence number in pixel (0, 0)."""

    def __init__(self, fail_after: int | None = None, tag: int = 0, period_s: float = 0.002) -> None:
        self.count, self.fail_after, self.tag, self.period_s = 0, fail_after, tag, period_s
        self.opened = True

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.period_s)
        if self.fail_after is not None and self.count >= self.fail_after:
            return False, None
        image = np.zeros((4, 4, 3), np.uint8)
        image[0, 0] = (self.count & 255, (self.count >> 8) & 255, self.tag)
        self.count += 1
        return True, image

    def isOpened(self) -> bool:
        return self.opened

    def release(self) -> None:
        self.opened = False


class StalledCamera:
    """A capture whose read blocks until the test lets it go."""

    def __init__(self) -> None:
        self.release_read = threading.Event()

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.release_read.wait(10.0)
        return False, None

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        self.release_read.set()


def _counter(image: np.ndarray | None) -> int:
    assert image is not None
    return int(image[0, 0, 0]) + (int(image[0, 0, 1]) << 8)


def test_slow_consumer_of_a_live_camera_gets_newest_frames_and_counts_drops() -> None:
    with VideoSource.from_capture(CounterCamera(), live=True, timeout_s=2.0) as source:
        assert source.is_live and source.kind is SourceKind.CAMERA
        frames = []
        for _ in range(12):
            frame = source.read()
            assert frame.ok, frame
            frames.append(frame)
            time.sleep(0.02)
        stats = source.stats
    indices = [f.index for f in frames]
    assert all(a < b for a, b in itertools.pairwise(indices))  # never the same frame twice
    assert indices == [_counter(f.image) for f in frames]
    assert stats.frames_read == 12 and stats.dropped > 0
    assert stats.frames_captured - stats.frames_read - stats.dropped in (0, 1)  # one may be waiting
    assert stats.capture_fps > 0 and stats.last_frame_age_ms is not None


def test_stalled_source_times_out_and_close_unblocks_a_waiting_read() -> None:
    camera = StalledCamera()
    source = VideoSource.from_capture(camera, timeout_s=0.3)
    try:
        start = time.monotonic()
        frame = source.read()
        assert frame.status is ReadStatus.TIMEOUT and frame.index == -1 and frame.image is None
        assert time.monotonic() - start >= 0.25  # it waited for its timeout (an upper bound would flake)
        assert source.stats.timeouts == 1

        closer = threading.Timer(0.2, source.close)
        closer.start()
        start = time.monotonic()
        frame = source.read(timeout_s=30.0)
        # CLOSED (not a normal end, not a TIMEOUT after 30 s): close() woke the waiting read.
        assert frame.status is ReadStatus.CLOSED and time.monotonic() - start < 25.0
        assert source.state is SourceState.CLOSED
        closer.join()
        source.close()  # idempotent
    finally:
        camera.release_read.set()
        source.close()


def test_a_stall_is_reported_by_the_watchdog_and_a_source_down_too_long_fails() -> None:
    """A read that hangs: STALLED after stall_timeout_s, then ERROR after reconnect_timeout_s, naming why."""
    camera = StalledCamera()
    events: list[StatusEvent] = []
    source = VideoSource.from_capture(
        camera, timeout_s=0.2, stall_timeout_s=0.3, reconnect_timeout_s=1.0, on_status=events.append
    )
    try:
        deadline = time.monotonic() + 20.0
        while (frame := source.read()).status is ReadStatus.TIMEOUT and time.monotonic() < deadline:
            pass
        assert frame.status is ReadStatus.ERROR and frame.error is not None
        assert (
            "down for" in frame.error
            and "reconnect_timeout_s=1" in frame.error
            and "no frame for" in frame.error
        )
        states = [e.state for e in events]
        assert states[:1] == [SourceState.STALLED] and states[-1] is SourceState.FAILED
        assert events[-1].time_s - events[0].time_s >= 0.5  # the watchdog waited out the timeout
    finally:
        camera.release_read.set()
        source.close()


def test_reconnection_is_reported_as_it_happens() -> None:
    opener, _ = _camera_factory(fail_after=5)
    events: list[StatusEvent] = []
    with VideoSource.from_capture(
        opener, backoff_s=(0.01, 0.04), timeout_s=2.0, on_status=events.append
    ) as source:
        deadline = time.monotonic() + 10.0
        while source.stats.reconnects < 2 and time.monotonic() < deadline:
            source.read()
    states = [e.state for e in events]
    first = states.index(SourceState.DISCONNECTED)
    assert states[first : first + 3] == [
        SourceState.DISCONNECTED,
        SourceState.RECONNECTING,
        SourceState.RESUMED,
    ]
    assert states[-1] is SourceState.CLOSED
    assert all(a.time_s <= b.time_s for a, b in itertools.pairwise(events))


def _camera_factory(fail_after: int) -> tuple[Callable[[], CounterCamera], list[CounterCamera]]:
    made: list[CounterCamera] = []

    def open_camera() -> CounterCamera:
        made.append(CounterCamera(fail_after=fail_after, tag=len(made)))
        return made[-1]

    return open_camera, made


def test_failing_reads_reconnect_with_backoff_and_frames_resume() -> None:
    opener, made = _camera_factory(fail_after=5)
    with VideoSource.from_capture(opener, backoff_s=(0.01, 0.04), timeout_s=2.0) as source:
        tags: set[int] = set()
        deadline = time.monotonic() + 10.0
        while len(tags) < 3 and time.monotonic() < deadline:
            frame = source.read()
            if frame.ok and frame.image is not None:
                tags.add(int(frame.image[0, 0, 2]))
        stats = source.stats
    assert len(tags) >= 3, f"frames from only {len(tags)} connections"
    assert stats.reconnects >= 2 and len(made) >= 3
    assert all(not camera.opened for camera in made)  # every replaced capture was released


def test_reconnect_off_or_gone_source_returns_error_with_reason() -> None:
    opener, _ = _camera_factory(fail_after=3)
    with VideoSource.from_capture(opener, reconnect=False, timeout_s=2.0) as source:
        statuses = [source.read() for _ in range(4)]
    final = statuses[-1]
    assert final.status is ReadStatus.ERROR and final.error is not None and "reconnect is off" in final.error
    assert source.last_error == final.error

    calls = []

    def open_once() -> CounterCamera:
        if calls:
            raise SourceError("camera device /dev/video9 does not exist")
        calls.append(1)
        return CounterCamera(fail_after=2)

    with VideoSource.from_capture(open_once, backoff_s=(0.01, 0.02), timeout_s=2.0) as source:
        while (frame := source.read()).ok:
            pass
        assert list(source) == []  # iteration stops at ERROR
    assert frame.status is ReadStatus.ERROR and frame.error is not None
    assert "gone" in frame.error and "/dev/video9" in frame.error


class ScriptedCapture:
    """Returns a few frames, then ends the way the test asks: no frame, EOFError, or an exception."""

    def __init__(self, ending: str) -> None:
        self.ending, self.left = ending, 3

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left:
            self.left -= 1
            return True, _grey(self.left)
        if self.ending == "eof":
            raise EOFError("server closed the stream")
        if self.ending == "raise":
            raise RuntimeError("decoder exploded")
        return False, None

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        pass


@pytest.mark.parametrize(
    ("live", "ending", "expected"),
    [
        (True, "eof", ReadStatus.END_OF_STREAM),  # the capture said so explicitly
        (True, "none", ReadStatus.ERROR),  # a live read that fails is an error, not an end
        (True, "raise", ReadStatus.ERROR),
        (False, "none", ReadStatus.END_OF_STREAM),  # a file that runs out has ended
        (False, "raise", ReadStatus.ERROR),
    ],
)
def test_end_of_stream_and_error_are_distinct(live: bool, ending: str, expected: ReadStatus) -> None:
    source = VideoSource.from_capture(ScriptedCapture(ending), live=live, reconnect=False, timeout_s=2.0)
    with source:
        frames = list(source)
        final = source.read()
    assert final.status is expected
    assert (final.error is not None) == (expected is ReadStatus.ERROR or live)  # a live end says why
    if not live:
        assert len(frames) == 3  # a file hands out every frame before it ends
    assert source.read().status is ReadStatus.CLOSED  # after close: closed, not a normal end


def test_a_capture_object_cannot_be_reopened() -> None:
    with VideoSource.from_capture(CounterCamera(fail_after=1), backoff_s=(0.01, 0.02)) as source:
        statuses = [source.read().status for _ in range(3)]
        assert ReadStatus.ERROR in statuses
        assert source.last_error is not None and "zero-arg callable" in source.last_error
