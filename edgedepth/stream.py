"""The stream behind ``DepthEstimator.stream``: one or more sources through one model.

Each source has its own reader thread (over its ``VideoSource``, whose grabber keeps only the newest frame
of a live source) that preprocesses frames into a one-frame slot. One inference thread, per tick, takes
the frame waiting in every ready slot, runs those of one input size as one batch (when the model takes
batches and ``batch`` is on; else one by one, round-robin) and hands a :class:`StreamItem` to the caller's
loop. Bounded queues join the threads, so a slow loop applies back-pressure: file sources lose no frame
(their reader waits for the slot), live ones drop what they could not deliver, counted per source. Live and
file sources may be mixed. The depth maps are resized to the frame only when the loop reads them, on its
own thread (``DepthResult``).

A source that fails (one that cannot be opened, a file that cannot be read, a live source still down after
``reconnect_timeout_s``) is reported in its statistics (and its ``on_status`` events) and leaves the others
running; the loop ends when every source has ended, and raises ``SourceError`` only when all of them failed.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from .capture import ReadStatus, SourceState, VideoSource
from .errors import InputError, SourceError
from .predictor import Predictor
from .result import DepthResult
from .stabilize import Stabilizer
from .stream_stats import EndReason, SourceStats, StreamStats

POLL_S = 0.05  # how often blocked threads look at the stop flag: Ctrl-C stops the stream well within 2 s


def wall_clock(monotonic_s: float) -> float:
    """A ``time.monotonic()`` instant as seconds since the epoch (message stamps want wall-clock time)."""
    return time.time() - (time.monotonic() - monotonic_s)


def median(values: deque[float]) -> float:
    return float(np.median(values)) if values else float("nan")


@dataclass(frozen=True)
class StreamItem:
    """One frame of the stream: which source it came from, the frame, its depth and when it was captured
    (seconds since the epoch)."""

    index: int
    frame: np.ndarray
    result: DepthResult
    captured_at: float
    legacy_shape: int = field(default=3, repr=False, compare=False)  # what unpacking gave before Stream

    def __iter__(self) -> Iterator[Any]:
        warnings.warn(
            "unpacking a stream item is deprecated: use item.frame, item.result, item.index",
            DeprecationWarning,
            stacklevel=2,
        )
        if self.legacy_shape == 2:
            return iter((self.frame, self.result))
        return iter((self.index, self.frame, self.result))


class _Reader:
    """One source's thread: read, preprocess, wait for the slot (files) or overwrite what waits (live)."""

    def __init__(self, index: int, source: VideoSource, predictor: Predictor, wake: threading.Event) -> None:
        self.index, self.source, self.predictor, self.wake = index, source, predictor, wake
        self.slot: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.end: EndReason = EndReason.RUNNING
        self.error: str | None = None
        self.timeouts = self.overwritten = 0
        self.thread = threading.Thread(target=self._loop, name=f"edgedepth-capture-{index}", daemon=True)
        self.thread.start()

    @property
    def done(self) -> bool:
        return self.end is not EndReason.RUNNING and self.slot.empty()

    def _offer(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.slot.put(item, timeout=POLL_S)
                self.wake.set()
                return
            except queue.Full:
                if self.source.is_live:  # the newest frame wins; the older one counts as dropped
                    try:
                        self.slot.get_nowait()
                        self.overwritten += 1
                    except queue.Empty:
                        pass

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                frame = self.source.read()
                if frame.status is ReadStatus.TIMEOUT:
                    self.timeouts += 1
                    continue
                if frame.status is ReadStatus.OK:
                    self._offer((self.predictor.stage(frame.image), frame.timestamp_s))
                    continue
                if frame.status is ReadStatus.ERROR:
                    raise SourceError(f"{self.source.uri}: {frame.error or 'read failed'}")
                ended = frame.status is ReadStatus.END_OF_STREAM
                self.end = EndReason.END_OF_STREAM if ended else EndReason.CLOSED
                break
        except Exception as exc:  # this source is gone; the others go on
            self.end, self.error = EndReason.ERROR, str(exc)
        if self.end is EndReason.RUNNING:
            self.end = EndReason.CLOSED
        self.wake.set()


class Stream:
    """Iterator of :class:`StreamItem` over one source or several; also a context manager.

    Made by ``DepthEstimator.stream``. ``batch`` runs the ready frames of one input size as one model call
    (False: one call per frame, round-robin); ``max_frames`` counts frames over all sources; ``stabilize``
    (on by default) aligns each source's depth to its previous output (``edgedepth.stabilize``), and a
    :class:`Stabilizer` instance sets the options (each further source gets a copy). Other options go to
    every ``VideoSource``.
    """

    def __init__(
        self,
        predictor: Predictor,
        sources: Any,
        *,
        batch: bool = True,
        max_frames: int | None = None,
        queue_size: int = 2,
        stabilize: bool | Stabilizer = True,
        **source_options: Any,
    ) -> None:
        several = isinstance(sources, list | tuple)
        sources = list(sources) if several else [sources]
        if not sources:
            raise InputError("stream: give at least one source")
        if max_frames is not None and max_frames < 1:
            raise InputError(f"max_frames={max_frames} must be a positive number of frames, or None for all")
        self.predictor, self.batch, self.max_frames = predictor, batch, max_frames
        self._legacy_shape = 3 if several else 2
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.sources = self._open(sources, source_options)  # None where a source could not be opened
        self._stabilizers = [self._stabilizer(stabilize, i) for i in range(len(sources))]
        self._readers = [
            _Reader(i, v, predictor, self._wake) for i, v in enumerate(self.sources) if v is not None
        ]
        self._results: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._delivered = [0] * len(sources)
        self._frames = self._batches = self._batched_frames = 0
        self._infer_ms: deque[float] = deque(maxlen=512)
        self._pre_ms: deque[float] = deque(maxlen=512)
        self._latency_ms: deque[float] = deque(maxlen=512)
        self._t0 = time.perf_counter()
        self._end = EndReason.RUNNING
        self._error: BaseException | None = None
        self.captured_at: float | None = None  # when the item last returned was captured (epoch seconds)
        self._thread = threading.Thread(target=self._infer_loop, name="edgedepth-infer", daemon=True)
        self._thread.start()

    def _open(self, sources: list[Any], options: dict[str, Any]) -> list[VideoSource | None]:
        """Every source opened; one that cannot be is kept as None (its error in its stats) and the others
        go on. None opened: SourceError listing them all."""
        opened: list[VideoSource | None] = []
        self._unopened: dict[int, tuple[str, str]] = {}  # index: (uri, why)
        try:
            for i, s in enumerate(sources):
                try:
                    opened.append(s if isinstance(s, VideoSource) else VideoSource(s, **options))
                except SourceError as exc:
                    opened.append(None)
                    self._unopened[i] = (str(s), str(exc))
        except BaseException:  # bad options, or Ctrl-C while opening: nothing is left open
            for v in opened:
                if v is not None:
                    v.close()
            raise
        if len(self._unopened) == len(opened):
            if len(opened) == 1:
                raise SourceError(self._unopened[0][1])
            raise SourceError(
                "no source could be opened: " + "; ".join(w for _, w in self._unopened.values())
            )
        return opened

    @staticmethod
    def _stabilizer(option: bool | Stabilizer, index: int) -> Stabilizer | None:
        if isinstance(option, Stabilizer):
            return option if index == 0 else copy.deepcopy(option)
        return Stabilizer() if option else None

    @property
    def source(self) -> VideoSource:
        """The first source that opened (the only one of a one-source stream)."""
        return next(v for v in self.sources if v is not None)

    # -- the inference thread ---------------------------------------------------------------------------
    def _tick(self) -> list[tuple[int, Any, float]]:
        """The frame waiting in every ready slot: (source index, staged frame, capture time)."""
        ready = []
        for r in self._readers:
            try:
                staged, captured_s = r.slot.get_nowait()
                ready.append((r.index, staged, captured_s))
            except queue.Empty:
                pass
        return ready

    def _infer_loop(self) -> None:
        try:
            while not self._stop.is_set():
                ready = self._tick()
                if not ready:
                    if all(r.done for r in self._readers):
                        break
                    self._wake.wait(POLL_S)
                    self._wake.clear()
                    continue
                for chunk in self.predictor.plan_batches([staged for _, staged, _ in ready], self.batch):
                    results = self.predictor.run_batch(
                        [ready[i][1] for i in chunk], [self._stabilizers[ready[i][0]] for i in chunk]
                    )
                    self._batches += 1
                    self._batched_frames += len(chunk)
                    for i, result in zip(chunk, results, strict=True):
                        index, staged, captured_s = ready[i]
                        if not self._put((index, staged.bgr, result, captured_s)):
                            return
        except BaseException as exc:  # the model failed: every source is affected, the caller hears it
            self._error = exc
        self._put(None)

    def _put(self, item: Any) -> bool:
        """Hand ``item`` to the caller's side, waiting while its queue is full; False once stopped."""
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    # -- the consumer side ------------------------------------------------------------------------------
    def __next__(self) -> StreamItem:
        if self.max_frames is not None and self._frames >= self.max_frames:
            if self._end is EndReason.RUNNING:
                self._end = EndReason.MAX_FRAMES
            self.close()
        while not self._stop.is_set():
            try:
                item = self._results.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is None:
                self._finish()
                break
            index, bgr, result, captured_s = item
            self._frames += 1
            self._delivered[index] += 1
            self._infer_ms.append(result.timings_ms["infer"])
            self._pre_ms.append(result.timings_ms["preprocess"])
            self._latency_ms.append((time.monotonic() - captured_s) * 1e3)
            self.captured_at = wall_clock(captured_s)
            return StreamItem(index, bgr, result, self.captured_at, self._legacy_shape)
        raise StopIteration

    def _finish(self) -> None:
        """Every source ended, or the model failed: close, and raise what the caller must hear."""
        failed = [s for s in self.stats.sources if s.end is EndReason.ERROR]
        every_source_failed = len(failed) == len(self.sources)
        self._end = (
            EndReason.ERROR if self._error is not None or every_source_failed else EndReason.END_OF_STREAM
        )
        self.close()
        if self._error is not None:
            raise self._error
        if every_source_failed:
            if len(failed) == 1:
                raise SourceError(failed[0].error)
            raise SourceError("every source failed: " + "; ".join(f"{s.error}" for s in failed))

    @property
    def stats(self) -> StreamStats:
        elapsed = time.perf_counter() - self._t0
        per_source = [
            SourceStats(i, uri, 0, 0.0, 0, 0, 0.0, SourceState.FAILED.value, EndReason.ERROR, why)
            for i, (uri, why) in self._unopened.items()
        ]
        for r in self._readers:
            src, delivered = r.source.stats, self._delivered[r.index]
            per_source.append(
                SourceStats(
                    index=r.index,
                    uri=r.source.uri,
                    frames=delivered,
                    fps=delivered / elapsed if elapsed > 0 else 0.0,
                    dropped=src.dropped + r.overwritten,
                    timeouts=r.timeouts,
                    capture_fps=src.capture_fps,
                    state=src.state.value,
                    end=r.end,
                    error=r.error,
                )
            )
        per_source.sort(key=lambda x: x.index)
        return StreamStats(
            frames=self._frames,
            elapsed_s=elapsed,
            fps=self._frames / elapsed if elapsed > 0 else 0.0,
            batches=self._batches,
            mean_batch=self._batched_frames / self._batches if self._batches else 0.0,
            infer_ms_median=median(self._infer_ms),
            preprocess_ms_median=median(self._pre_ms),
            latency_ms_median=median(self._latency_ms),
            end=self._end,
            sources=per_source,
        )

    def close(self) -> None:
        """Stop every thread and source; returns within about a second."""
        if self._stop.is_set():
            return
        if self._end is EndReason.RUNNING:
            self._end = EndReason.CLOSED
        self._stop.set()
        for r in self._readers:
            r.stop.set()
            if r.end is EndReason.RUNNING:
                r.end = EndReason.CLOSED
            r.source.close()
        for t in (self._thread, *(r.thread for r in self._readers)):
            if t is not threading.current_thread():
                t.join(timeout=1.0)

    def __iter__(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
