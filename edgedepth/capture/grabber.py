"""The grabber thread behind every VideoSource.

One thread owns the capture object and reads from it continuously; nothing else touches the capture once
the thread runs. :class:`LiveGrabber` keeps only the newest frame (an older unread one is counted as
dropped, so latency stays at one frame) and reopens the capture with exponential backoff when reading
fails. :class:`FileGrabber` fills a small bounded queue and waits while it is full, so a consumer slower
than decoding still gets every frame, and can loop the file.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import numpy as np

from .records import (
    CaptureLike,
    CaptureStats,
    Frame,
    Opener,
    ReadStatus,
    SourceState,
    StatusEvent,
    release_quietly,
    reports_end,
)

FPS_WINDOW = 30  # capture timestamps kept for capture_fps
EVENTS_KEPT = 64  # status events kept in the stats
WATCH_PERIOD_S = 0.1  # how often the watchdog looks at frame arrival
JOIN_TIMEOUT_S = 1.0
Outcome = Literal["frame", "empty", "end", "raised"]


class FrameGrabber:
    """Reads ``capture`` on a daemon thread; ``read(timeout_s)`` hands frames to one consumer.

    Subclasses decide what happens when a new frame finds the queue full (``_make_room``) and when a
    read brings no frame (``_recover``).
    """

    def __init__(
        self,
        capture: CaptureLike,
        opener: Opener,
        name: str = "edgedepth-capture",
        on_status: Callable[[StatusEvent], object] | None = None,
        join_timeout_s: float = JOIN_TIMEOUT_S,
    ) -> None:
        self._capture: CaptureLike | None = capture
        self._join_timeout_s = join_timeout_s
        self._on_status = on_status
        self._state = SourceState.RUNNING
        self._events: deque[StatusEvent] = deque(maxlen=EVENTS_KEPT)
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
        """The next frame, waiting at most ``timeout_s``; after close() it is CLOSED at once."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._closed.is_set():
                    return Frame(
                        ReadStatus.CLOSED, timestamp_s=time.monotonic(), error="the source was closed"
                    )
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
                state=self._state,
                events=tuple(self._events),
            )

    def _set_state(self, state: SourceState, detail: str = "") -> None:
        """Record a state change and tell ``on_status`` (called from the capture or watchdog thread)."""
        event = StatusEvent(state, time.monotonic(), detail)
        with self._cond:
            self._events.append(event)
            self._state = SourceState.RUNNING if state is SourceState.RESUMED else state
            self._cond.notify_all()
        if self._on_status is not None:
            with contextlib.suppress(Exception):  # a callback's bug must not kill the capture thread
                self._on_status(event)

    def close(self, join_timeout_s: float | None = None) -> None:
        """Stop the thread and wake any waiting read; wait for the thread at most ``join_timeout_s`` (default:
        the longest a read or open of this capture can block, so that no thread outlives the call)."""
        if self._closed.is_set():
            return  # idempotent: a second close does not wait on a stuck capture again
        self._closed.set()
        self._set_state(SourceState.CLOSED, "closed by the caller")
        if self._thread is not threading.current_thread():
            self._thread.join(self._join_timeout_s if join_timeout_s is None else join_timeout_s)

    # ---- grabber thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closed.is_set() and self._end is None:
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
            if self._end is None:
                self._finish(ReadStatus.END_OF_STREAM, None)
            with self._cond:
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
            if self._end is not None:
                return False
            self._end = (status, error)
        if not self._closed.is_set():
            self._set_state(
                SourceState.FAILED if status is ReadStatus.ERROR else SourceState.ENDED, error or ""
            )
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
    """A camera or stream: only the newest frame is kept; a source that fails is reported and reopened.

    - Reads that fail: DISCONNECTED, then RECONNECTING attempts with backoff (``backoff_s``: first and
      longest wait), RESUMED at the first frame after.
    - A read that does not return (a stalled peer): a watchdog reports STALLED after ``stall_timeout_s``
      without a frame, long before FFmpeg's own timeout.
    - Down (stalled, disconnected or reconnecting) for ``reconnect_timeout_s``: the source FAILS, and the
      consumer's read returns ERROR naming the last problem. ``reconnect=False`` fails at the first error.
    """

    def __init__(
        self,
        capture: CaptureLike,
        opener: Opener,
        *,
        reconnect: bool,
        backoff_s: tuple[float, float],
        reconnect_timeout_s: float = 10.0,
        stall_timeout_s: float = 1.5,
        name: str = "edgedepth-capture",
        on_status: Callable[[StatusEvent], object] | None = None,
        join_timeout_s: float = JOIN_TIMEOUT_S,
    ) -> None:
        self._reconnect = reconnect
        self._backoff_s = backoff_s
        self._next_delay_s = backoff_s[0]
        self._reconnect_timeout_s, self._stall_timeout_s = reconnect_timeout_s, stall_timeout_s
        self._last_frame_s = time.monotonic()
        self._down_since: float | None = None
        super().__init__(capture, opener, name, on_status, join_timeout_s)
        self._watchdog = threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True)
        self._watchdog.start()

    def close(self, join_timeout_s: float | None = None) -> None:
        super().close(join_timeout_s)
        if self._watchdog is not threading.current_thread():
            self._watchdog.join(JOIN_TIMEOUT_S)  # it looks at the closed flag every WATCH_PERIOD_S

    def _make_room(self) -> None:
        self._next_delay_s = self._backoff_s[0]  # frames flow again: the next outage starts from scratch
        while self._frames:
            self._frames.popleft()
            self._dropped += 1

    def _push(self, image: np.ndarray) -> None:
        self._last_frame_s = time.monotonic()
        if self._down_since is not None:
            down_s = self._last_frame_s - self._down_since
            self._down_since = None
            self._set_state(SourceState.RESUMED, f"frames again after {down_s:.1f} s")
        super()._push(image)

    def _went_down(self, state: SourceState, detail: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._set_state(state, detail)

    def _watch(self) -> None:
        """Report a stall, and fail a source that stays down past reconnect_timeout_s."""
        while not self._closed.wait(WATCH_PERIOD_S) and self._end is None:
            now = time.monotonic()
            if self._state is SourceState.RUNNING and now - self._last_frame_s > self._stall_timeout_s:
                self._went_down(SourceState.STALLED, f"no frame for {now - self._last_frame_s:.1f} s")
            down = self._down_since
            if down is not None and now - down > self._reconnect_timeout_s:
                last = self._events[-1].detail if self._events else ""
                self._finish(
                    ReadStatus.ERROR,
                    f"the source has been down for {now - down:.1f} s (reconnect_timeout_s="
                    f"{self._reconnect_timeout_s:g}); last: {last}",
                )

    def _recover(self, outcome: Outcome, message: str) -> bool:
        self._went_down(SourceState.DISCONNECTED, message)
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
        while self._end is None:
            attempt += 1
            delay_s = self._next_delay_s
            self._next_delay_s = min(delay_s * 2.0, self._backoff_s[1])
            note = f"reconnecting after '{why}' (attempt {attempt}, waiting {delay_s:.3g} s)"
            with self._cond:
                self._note = note
            self._set_state(SourceState.RECONNECTING, note)
            if self._closed.wait(delay_s) or self._end is not None:
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
        return False


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
        on_status: Callable[[StatusEvent], object] | None = None,
    ) -> None:
        self._loop = loop
        self._capacity = max(1, queue_size)
        super().__init__(capture, opener, name, on_status)

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
