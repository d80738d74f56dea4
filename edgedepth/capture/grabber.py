"""The grabber thread behind every VideoSource.

One thread owns the capture object and reads from it continuously; nothing else touches the capture once
the thread runs. :class:`LiveGrabber` keeps only the newest frame (an older unread one is counted as
dropped, so latency stays at one frame) and reopens the capture with exponential backoff when reading
fails. :class:`FileGrabber` fills a small bounded queue and waits while it is full, so a consumer slower
than decoding still gets every frame, and can loop the file.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Literal

import numpy as np

from .records import CaptureLike, CaptureStats, Frame, Opener, ReadStatus, release_quietly, reports_end

FPS_WINDOW = 30  # capture timestamps kept for capture_fps
JOIN_TIMEOUT_S = 1.0
Outcome = Literal["frame", "empty", "end", "raised"]


class FrameGrabber:
    """Reads ``capture`` on a daemon thread; ``read(timeout_s)`` hands frames to one consumer.

    Subclasses decide what happens when a new frame finds the queue full (``_make_room``) and when a
    read brings no frame (``_recover``).
    """

    def __init__(self, capture: CaptureLike, opener: Opener, name: str = "edgedepth-capture") -> None:
        self._capture: CaptureLike | None = capture
        self._opener = opener
        self._frames: deque[tuple[np.ndarray, int, float]] = deque()
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._end: tuple[ReadStatus, str | None] | None = None  # set once the thread has stopped
        self._note: str | None = None  # why reads are timing out, while reconnecting
        self._next_index = 0
        self._since_open = 0
        self._seen_corrupt = 0  # the current capture's own corrupt counter, already added in
        self._captured = self._read = self._dropped = self._corrupt = 0
        self._reconnects = self._timeouts = 0
        self._capture_times: deque[float] = deque(maxlen=FPS_WINDOW)
        self.last_size: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---- consumer side -------------------------------------------------------------------------------------
    def read(self, timeout_s: float) -> Frame:
        """The next frame, waiting at most ``timeout_s``; after close() it is END_OF_STREAM at once."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._closed.is_set():
                    return Frame(ReadStatus.END_OF_STREAM, timestamp_s=time.monotonic())
                if self._frames:
                    image, index, captured_s = self._frames.popleft()
                    self._read += 1
                    self._cond.notify_all()  # a file producer may be waiting for room
                    return Frame(ReadStatus.OK, image, index, captured_s)
                if self._end is not None:
                    return Frame(self._end[0], timestamp_s=time.monotonic(), error=self._end[1])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._timeouts += 1
                    return Frame(ReadStatus.TIMEOUT, timestamp_s=time.monotonic(), error=self._note)
                self._cond.wait(remaining)

    def stats(self) -> CaptureStats:
        with self._cond:
            times = self._capture_times
            span = times[-1] - times[0] if len(times) > 1 else 0.0
            return CaptureStats(
                frames_read=self._read,
                frames_captured=self._captured,
                dropped=self._dropped,
                corrupt=self._corrupt,
                reconnects=self._reconnects,
                timeouts=self._timeouts,
                capture_fps=(len(times) - 1) / span if span > 0 else 0.0,
                last_frame_age_ms=(time.monotonic() - times[-1]) * 1000.0 if times else None,
            )

    def close(self, join_timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Stop the thread and wake any waiting read. A capture stuck inside read() is released when it returns."""
        if self._closed.is_set():
            return  # idempotent: a second close does not wait on a stuck capture again
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(join_timeout_s)

    # ---- grabber thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                image, outcome, message = self._read_once()
                if self._closed.is_set():
                    break
                if image is not None:
                    self._push(image)
                elif not self._recover(outcome, message):
                    break
        finally:
            release_quietly(self._capture)
            self._capture = None
            with self._cond:
                if self._end is None:
                    self._end = (ReadStatus.END_OF_STREAM, None)
                self._cond.notify_all()

    def _read_once(self) -> tuple[np.ndarray | None, Outcome, str]:
        capture = self._capture
        if capture is None:
            return None, "raised", "no capture is open"
        try:
            ok, image = capture.read()
        except EOFError as exc:  # the explicit end-of-stream signal of a capture-like object
            return None, "end", str(exc) or "the capture reported end of stream"
        except Exception as exc:  # anything a capture-like object raises becomes ERROR or a reconnect
            return None, "raised", f"read raised {type(exc).__name__}: {exc}"
        self._count_corrupt(capture)
        if ok and isinstance(image, np.ndarray) and image.size > 0:
            return image, "frame", ""
        if reports_end(capture):
            return None, "end", "the capture reported end of stream"
        if not capture.isOpened():
            return None, "empty", "the capture is no longer open"
        return None, "empty", "read returned no frame"

    def _count_corrupt(self, capture: CaptureLike) -> None:
        seen = int(getattr(capture, "corrupt", 0))
        if seen > self._seen_corrupt:
            with self._cond:
                self._corrupt += seen - self._seen_corrupt
            self._seen_corrupt = seen

    def _push(self, image: np.ndarray) -> None:
        captured_s = time.monotonic()
        self._since_open += 1
        with self._cond:
            self._make_room()
            self._frames.append((image, self._next_index, captured_s))
            self._next_index += 1
            self._captured += 1
            self._capture_times.append(captured_s)
            self.last_size = (int(image.shape[1]), int(image.shape[0]))
            self._cond.notify_all()

    def _make_room(self) -> None:
        """Called with the lock held before a new frame is queued."""
        raise NotImplementedError

    def _recover(self, outcome: Outcome, message: str) -> bool:
        """Handle a read without a frame: True to keep reading, False once a final status is set."""
        raise NotImplementedError

    def _finish(self, status: ReadStatus, error: str | None) -> bool:
        with self._cond:
            self._end = (status, error)
            self._cond.notify_all()
        return False

    def _open(self) -> CaptureLike | None:
        """A fresh capture from the opener, or None if it did not open; raises if the opener itself fails."""
        capture = self._opener()
        if capture.isOpened():
            self._capture, self._since_open, self._seen_corrupt = capture, 0, 0
            return capture
        release_quietly(capture)
        return None


class LiveGrabber(FrameGrabber):
    """A camera or stream: only the newest frame is kept; failed reads reconnect with backoff (or end the
    source with ERROR when ``reconnect`` is off, or END_OF_STREAM when the capture said so)."""

    def __init__(
        self,
        capture: CaptureLike,
        opener: Opener,
        *,
        reconnect: bool,
        backoff_s: tuple[float, float],
        name: str = "edgedepth-capture",
    ) -> None:
        self._reconnect = reconnect
        self._backoff_s = backoff_s
        self._next_delay_s = backoff_s[0]
        super().__init__(capture, opener, name)

    def _make_room(self) -> None:
        self._next_delay_s = self._backoff_s[0]  # frames flow again: the next outage starts from scratch
        while self._frames:
            self._frames.popleft()
            self._dropped += 1

    def _recover(self, outcome: Outcome, message: str) -> bool:
        if self._reconnect:
            return self._reconnect_with_backoff(message)
        if outcome == "end":
            return self._finish(ReadStatus.END_OF_STREAM, message)
        return self._finish(ReadStatus.ERROR, f"{message}; reconnect is off")

    def _reconnect_with_backoff(self, why: str) -> bool:
        """Reopen until it works, doubling the wait up to backoff_s[1]; an opener that raises means gone."""
        release_quietly(self._capture)
        self._capture = None
        attempt = 0
        while True:
            attempt += 1
            delay_s = self._next_delay_s
            self._next_delay_s = min(delay_s * 2.0, self._backoff_s[1])
            with self._cond:
                self._note = f"reconnecting after '{why}' (attempt {attempt}, waiting {delay_s:.3g} s)"
            if self._closed.wait(delay_s):
                return False
            try:
                opened = self._open()
            except Exception as exc:
                return self._finish(ReadStatus.ERROR, f"{why}; the source is gone (reopening failed: {exc})")
            if opened is not None:
                with self._cond:
                    self._reconnects += 1
                    self._note = None
                return True


class FileGrabber(FrameGrabber):
    """A file or image sequence: every frame, in order, through a bounded queue; ``loop`` restarts it."""

    def __init__(
        self,
        capture: CaptureLike,
        opener: Opener,
        *,
        loop: bool,
        queue_size: int = 4,
        name: str = "edgedepth-capture",
    ) -> None:
        self._loop = loop
        self._capacity = max(1, queue_size)
        super().__init__(capture, opener, name)

    def _make_room(self) -> None:
        while len(self._frames) >= self._capacity and not self._closed.is_set():
            self._cond.wait()

    def _recover(self, outcome: Outcome, message: str) -> bool:
        if outcome == "raised":
            return self._finish(ReadStatus.ERROR, message)
        if self._loop and self._since_open > 0:
            return self._reopen_file()
        return self._finish(ReadStatus.END_OF_STREAM, None)

    def _reopen_file(self) -> bool:
        release_quietly(self._capture)
        self._capture = None
        try:
            opened = self._open()
        except Exception as exc:
            return self._finish(ReadStatus.ERROR, f"reopening to loop failed: {exc}")
        return opened is not None or self._finish(ReadStatus.ERROR, "reopening to loop failed")
