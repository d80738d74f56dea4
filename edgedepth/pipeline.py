"""The streaming pipeline behind ``DepthEstimator.stream``.

Three stages overlap: a capture thread reads and preprocesses frames, an inference thread runs the model
and maps the output back to the frame, and the caller's loop consumes ``(frame, result)``. Bounded queues
join them, so a slow consumer applies back-pressure: file sources then lose no frame, while live sources
keep only their newest frame and count the rest as dropped (``VideoSource`` does that). A source that
fails is reported by raising ``SourceError`` from the loop, never silently skipped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from .capture import ReadStatus, VideoSource
from .errors import InputError, SourceError
from .predictor import Predictor
from .result import DepthResult
from .stabilize import Stabilizer

POLL_S = 0.05  # how often blocked threads look at the stop flag: Ctrl-C stops the pipeline well within 2 s


def wall_clock(monotonic_s: float) -> float:
    """A ``time.monotonic()`` instant as seconds since the epoch (message stamps want wall-clock time)."""
    return time.time() - (time.monotonic() - monotonic_s)


def median(values: deque[float]) -> float:
    return float(np.median(values)) if values else float("nan")


@dataclass(frozen=True)
class StreamStats:
    frames: int
    elapsed_s: float
    fps: float  # end to end, frames delivered to the caller per second
    infer_ms_median: float
    preprocess_ms_median: float
    latency_ms_median: float  # capture to delivery
    dropped: int  # frames the live source overwrote before they were read
    timeouts: int
    capture_fps: float
    ended_by: str  # "" while running; then "end of stream", "closed", "max_frames" or "error: ..."
    source_state: str  # the source's SourceState value: running, stalled, reconnecting, ...


class _End:
    """Queue sentinel: the capture side finished (``error`` set when it failed; ``reason`` says how it
    ended, and becomes the stream's ``ended_by`` when the consumer reaches it)."""

    def __init__(self, error: BaseException | None = None, reason: str = "") -> None:
        self.error = error
        self.reason = reason


class ThreadedStream:
    """What both streams share: a stop flag, bounded queues that give way to it, joining the threads, and
    the iterator and context-manager protocols around ``__next__`` and ``close``."""

    _stop: threading.Event
    captured_at: float | None = None  # when the frame last returned was captured (seconds since the epoch)

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Put ``item``, waiting while ``q`` is full; False when the stream stopped first."""
        while not self._stop.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    @staticmethod
    def _join(threads: list[threading.Thread]) -> None:
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout=1.0)

    def close(self) -> None:
        raise NotImplementedError

    def __iter__(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamPipeline(ThreadedStream):
    """Iterator of ``(frame, DepthResult)``; also a context manager. ``max_frames`` stops early.

    Made by ``DepthEstimator.stream``; ``stager`` is the estimator's (see ``edgedepth.predictor``).
    ``stabilize`` (on by default) aligns each frame's depth to the previous output (``edgedepth.stabilize``);
    a :class:`Stabilizer` instance sets its options.
    """

    def __init__(
        self,
        stager: Predictor,
        source: Any,
        *,
        max_frames: int | None = None,
        queue_size: int = 2,
        stabilize: bool | Stabilizer = True,
        **source_options: Any,
    ) -> None:
        self.stager = stager
        self.stabilizer = (
            stabilize if isinstance(stabilize, Stabilizer) else Stabilizer() if stabilize else None
        )
        self.source = source if isinstance(source, VideoSource) else VideoSource(source, **source_options)
        if max_frames is not None and max_frames < 1:
            raise InputError(f"max_frames={max_frames} must be a positive number of frames, or None for all")
        self.max_frames = max_frames
        self._stop = threading.Event()
        self._prepared: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._results: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._frames = 0
        self._timeouts = 0
        self._ended_by = ""
        self._t0 = time.perf_counter()
        self._infer_ms: deque[float] = deque(maxlen=512)
        self._pre_ms: deque[float] = deque(maxlen=512)
        self._latency_ms: deque[float] = deque(maxlen=512)
        self._threads = [
            threading.Thread(target=self._capture_loop, name="edgedepth-capture", daemon=True),
            threading.Thread(target=self._infer_loop, name="edgedepth-infer", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- worker threads ---------------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        reason = "closed"
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame.status is ReadStatus.TIMEOUT:
                    self._timeouts += 1
                    continue
                if frame.status in (ReadStatus.END_OF_STREAM, ReadStatus.CLOSED):
                    reason = "end of stream" if frame.status is ReadStatus.END_OF_STREAM else "closed"
                    break
                if frame.status is ReadStatus.ERROR:
                    raise SourceError(f"{self.source.uri}: {frame.error or 'read failed'}")
                if not self._put(self._prepared, (self.stager.stage(frame.image), frame.timestamp_s)):
                    return
            self._put(self._prepared, _End(reason=reason))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(self._prepared, _End(exc))

    def _infer_loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._prepared.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                self._put(self._results, item)
                return
            staged, captured_s = item
            try:
                result = self.stager.run(staged, refine=self.stabilizer)  # at the model's resolution
            except BaseException as exc:
                self._put(self._results, _End(exc))
                return
            self._put(self._results, (staged.bgr, result, captured_s))

    # -- the consumer side ------------------------------------------------------------------------------
    def __next__(self) -> tuple[np.ndarray, DepthResult]:
        if self.max_frames is not None and self._frames >= self.max_frames:
            self._ended_by = self._ended_by or "max_frames"
            self.close()
        while not self._stop.is_set():
            try:
                item = self._results.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                self._ended_by = f"error: {item.error}" if item.error is not None else item.reason
                self.close()
                if item.error is not None:
                    raise item.error
                break
            bgr, result, captured_s = item
            self._frames += 1
            self._infer_ms.append(result.timings_ms["infer"])
            self._pre_ms.append(result.timings_ms["preprocess"])
            self._latency_ms.append((time.monotonic() - captured_s) * 1e3)
            self.captured_at = wall_clock(captured_s)
            return bgr, result
        raise StopIteration

    @property
    def stats(self) -> StreamStats:
        elapsed = time.perf_counter() - self._t0
        src = self.source.stats

        return StreamStats(
            frames=self._frames,
            elapsed_s=elapsed,
            fps=self._frames / elapsed if elapsed > 0 else 0.0,
            infer_ms_median=median(self._infer_ms),
            preprocess_ms_median=median(self._pre_ms),
            latency_ms_median=median(self._latency_ms),
            dropped=src.dropped,
            timeouts=self._timeouts,
            capture_fps=src.capture_fps,
            ended_by=self._ended_by,
            source_state=src.state.value,
        )

    def close(self) -> None:
        """Stop both threads and the source; returns within about a second."""
        if self._stop.is_set():
            return
        self._ended_by = self._ended_by or "closed"
        self._stop.set()
        self.source.close()
        self._join(self._threads)
