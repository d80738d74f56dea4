"""Real stream faults: ffmpeg serves a real video over TCP on 127.0.0.1, and the tests stall it (SIGSTOP), kill
it and restart it. A stall and a disconnection are detected within 2 s, a restarted server resumes within 3 s
of serving again, a server that stays down raises SourceError from the stream, no frame comes twice, and no
thread is left behind."""

from __future__ import annotations

import itertools
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgedepth import DepthEstimator
from edgedepth.capture import SourceState, StatusEvent, VideoSource
from edgedepth.capture.kinds import STREAM_BLOCKING_S
from edgedepth.errors import SourceError

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)"
)


class Server:
    """``ffmpeg -re`` serving a video as MPEG-TS to one TCP client, looping, on 127.0.0.1 only."""

    def __init__(self, video: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.video, self.proc = video, None
        self.url = f"tcp://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start serving; the time it started."""
        command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.video),
                   "-an", "-vf", "scale=320:240", "-r", "25", "-c:v", "mpeg2video", "-q:v", "6",
                   "-f", "mpegts", f"{self.url}?listen=1"]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.monotonic()

    def signal(self, sig: int) -> float:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return time.monotonic()

    def kill(self) -> float:
        at = self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=10)
        return at

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def server(video_dir: Path) -> Iterator[Server]:
    srv = Server(video_dir / "vtest.avi")
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


def connect(url: str, **options: object) -> VideoSource:
    """A source on the server, retried while ffmpeg starts listening."""
    deadline = time.monotonic() + 15.0
    while True:
        try:
            return VideoSource(url, **options)  # type: ignore[arg-type]
        except SourceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def frames_until(source: VideoSource, done: object, limit_s: float = 20.0) -> list[int]:
    """Read until ``done()``; the indices of the frames read."""
    indices, deadline = [], time.monotonic() + limit_s
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        frame = source.read(timeout_s=0.1)
        if frame.ok:
            indices.append(frame.index)
    return indices


def first(events: list[StatusEvent], state: SourceState, after: float) -> StatusEvent | None:
    return next((e for e in events if e.state is state and e.time_s >= after), None)


def test_a_stalled_server_is_detected_within_2_s_and_resumes(server: Server) -> None:
    baseline = threading.active_count()
    events: list[StatusEvent] = []
    source = connect(server.url, on_status=events.append)
    try:
        seen = frames_until(source, lambda: source.stats.frames_read >= 20)
        stopped = server.signal(signal.SIGSTOP)
        seen += frames_until(source, lambda: first(events, SourceState.STALLED, stopped) is not None)
        stalled = first(events, SourceState.STALLED, stopped)
        assert stalled is not None and stalled.time_s - stopped <= 2.0, events
        resumed_at = server.signal(signal.SIGCONT)
        seen += frames_until(source, lambda: first(events, SourceState.RESUMED, resumed_at) is not None)
        seen += frames_until(source, lambda: source.stats.frames_read >= len(seen) + 10)
        assert first(events, SourceState.RESUMED, resumed_at) is not None
    finally:
        source.close()
    assert all(a < b for a, b in itertools.pairwise(seen))  # no frame twice
    assert _threads_settle(baseline)


def test_closing_a_stalled_stream_leaves_no_capture_thread(server: Server) -> None:
    """The capture thread is blocked inside FFmpeg's read of a stalled server when close() is called: close()
    waits for FFmpeg's read timeout (3 s) rather than leaving the thread behind for up to 15 s."""
    events: list[StatusEvent] = []
    source = connect(server.url, on_status=events.append)
    try:
        frames_until(source, lambda: source.stats.frames_read >= 10)
        stopped = server.signal(signal.SIGSTOP)
        frames_until(source, lambda: first(events, SourceState.STALLED, stopped) is not None)
        assert first(events, SourceState.STALLED, stopped) is not None, events
    finally:
        t0 = time.monotonic()
        source.close()
        took = time.monotonic() - t0
    capture_threads = [
        t.name for t in threading.enumerate() if t.name.startswith(f"edgedepth-capture[{server.url}")
    ]
    assert capture_threads == [] and took <= STREAM_BLOCKING_S + 1.0, (capture_threads, took)


def test_a_killed_server_is_detected_and_a_restarted_one_resumes_within_3_s(server: Server) -> None:
    baseline = threading.active_count()
    events: list[StatusEvent] = []
    t0 = time.monotonic()
    source = connect(server.url, on_status=events.append)
    first_open_s = time.monotonic() - t0  # how long the server takes to serve a new client
    try:
        seen = frames_until(source, lambda: source.stats.frames_read >= 20)
        killed = server.kill()
        seen += frames_until(source, lambda: first(events, SourceState.DISCONNECTED, killed) is not None)
        down = first(events, SourceState.DISCONNECTED, killed)
        assert down is not None and down.time_s - killed <= 2.0, events
        restarted = server.start()
        seen += frames_until(source, lambda: first(events, SourceState.RESUMED, restarted) is not None)
        resumed = first(events, SourceState.RESUMED, restarted)
        assert resumed is not None, events
        assert resumed.time_s - restarted <= 3.0 + first_open_s, (resumed.time_s - restarted, first_open_s)
        seen += frames_until(source, lambda: source.stats.frames_read >= len(seen) + 10)
        assert source.stats.reconnects >= 1
    finally:
        source.close()
    assert all(a < b for a, b in itertools.pairwise(seen))
    assert _threads_settle(baseline)


def test_a_server_that_stays_down_raises_source_error_from_the_stream(
    server: Server, tiny_onnx: Path
) -> None:
    est = DepthEstimator(tiny_onnx)  # before the baseline: a backend may keep a pool thread of its own
    baseline = threading.active_count()
    source = connect(server.url, reconnect_timeout_s=3.0)
    with pytest.raises(SourceError) as info, est.stream(source) as frames:
        for i, _ in enumerate(frames):
            if i == 10:
                server.kill()
    est.close()
    message = str(info.value)
    assert server.url in message and "down for" in message and "reconnect_timeout_s=3" in message
    assert _threads_settle(baseline)


def _threads_settle(baseline: int, limit_s: float = 10.0) -> bool:
    """The capture, watchdog and pipeline threads end (a stuck read may take FFmpeg's timeout to return)."""
    deadline = time.monotonic() + limit_s
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    return threading.active_count() <= baseline
