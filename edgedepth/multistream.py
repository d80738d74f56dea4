"""Several cameras through one model: ``DepthEstimator.stream([src0, src1, ...])``.

Each source has its own reader thread (over its ``VideoSource``, whose grabber keeps only the newest frame
of a live source) that preprocesses frames into a one-frame slot. One inference thread, per tick, takes
the frame waiting in every ready slot, runs those of one input size as one batch (when the model takes
batches and ``batch`` is on; else one by one, round-robin) and hands ``(source_index, frame, result)`` to
the caller. File sources lose no frame (their reader waits for the slot); live ones drop what they could not
deliver, counted per source. Live and file sources may be mixed.

A source that fails (one that cannot be opened, a file that cannot be read, a live source still down after
``reconnect_timeout_s``) is reported in its statistics (and its ``on_status`` events) and leaves the others
running; the loop ends when every source has ended, and raises ``SourceError`` only when all of them failed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .capture import ReadStatus, SourceState, VideoSource
from .errors import InputError, SourceError
from .pipeline import POLL_S, ThreadedStream, median, wall_clock
from .predictor import Predictor
from .result import DepthResult
from .stabilize import Stabilizer


@dataclass(frozen=True)
class SourceStats:
    """One source of a multi-stream: frames delivered and their rate, drops, state and how it ended."""

    index: int
    uri: str
    frames: int
    fps: float
    dropped: int
    timeouts: int
    state: str  # the source's SourceState value
    ended_by: str  # "" while running; "end of stream", "closed" or "error: ..."


@dataclass(frozen=True)
class MultiStreamStats:
    frames: int  # over all sources
    elapsed_s: float
    fps: float  # total frames delivered per second
    batches: int
    mean_batch: float  # frames per model call
    infer_ms_median: float  # per model call (a whole batch)
    sources: list[SourceStats]


class _Reader:
    """One source's thread: read, preprocess, wait for the slot (files) or overwrite what waits (live)."""

    def __init__(self, index: int, source: VideoSource, stager: Predictor, wake: threading.Event) -> None:
        self.index, self.source, self.stager, self.wake = index, source, stager, wake
        self.slot: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.ended_by = ""
        self.frames = self.timeouts = self.overwritten = 0
        self.thread = threading.Thread(target=self._loop, name=f"edgedepth-capture-{index}", daemon=True)
        self.thread.start()

    @property
    def done(self) -> bool:
        return bool(self.ended_by) and self.slot.empty()

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
                    self._offer((self.stager.stage(frame.image), frame.timestamp_s))
                    continue
                if frame.status is ReadStatus.ERROR:
                    raise SourceError(f"{self.source.uri}: {frame.error or 'read failed'}")
                self.ended_by = "end of stream" if frame.status is ReadStatus.END_OF_STREAM else "closed"
                break
        except Exception as exc:  # this source is gone; the others go on
            self.ended_by = f"error: {exc}"
        self.ended_by = self.ended_by or "closed"
        self.wake.set()


class MultiStreamPipeline(ThreadedStream):
    """Iterator of ``(source_index, frame, DepthResult)`` over several sources; also a context manager.

    Made by ``DepthEstimator.stream`` when given a list of sources. ``batch`` runs the ready frames of one
    input size as one model call (False: one call per frame, round-robin); ``max_frames`` counts frames over
    all sources; ``stabilize`` keeps one stabiliser per source. Other options go to every ``VideoSource``.
    """

    def __init__(
        self,
        stager: Predictor,
        sources: Sequence[Any],
        *,
        batch: bool = True,
        max_frames: int | None = None,
        queue_size: int = 2,
        stabilize: bool = True,
        **source_options: Any,
    ) -> None:
        if not sources:
            raise InputError("stream: give at least one source")
        if max_frames is not None and max_frames < 1:
            raise InputError(f"max_frames={max_frames} must be a positive number of frames, or None for all")
        self.stager, self.batch, self.max_frames = stager, batch, max_frames
        self._wake = threading.Event()
        self._stop = threading.Event()
        # A source that cannot be opened is reported (None here, "error: ..." in its stats) and the others go on.
        opened: list[VideoSource | None] = []
        failures: dict[int, str] = {}
        try:
            for i, s in enumerate(sources):
                try:
                    opened.append(s if isinstance(s, VideoSource) else VideoSource(s, **source_options))
                except SourceError as exc:
                    opened.append(None)
                    failures[i] = str(exc)
        except BaseException:  # bad options, or Ctrl-C while opening: nothing is left open
            for v in opened:
                if v is not None:
                    v.close()
            raise
        if len(failures) == len(opened):
            raise SourceError("no source could be opened: " + "; ".join(failures.values()))
        self.sources = opened  # None where a source could not be opened
        self._stabilizers = [Stabilizer() if stabilize else None for _ in opened]
        self._unopened = {i: (str(sources[i]), error) for i, error in failures.items()}  # index: (uri, why)
        self._readers = [_Reader(i, v, stager, self._wake) for i, v in enumerate(opened) if v is not None]
        self._results: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._delivered = [0] * len(opened)
        self._frames = self._batches = self._batched_frames = 0
        self._infer_ms: deque[float] = deque(maxlen=512)
        self._t0 = time.perf_counter()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._infer_loop, name="edgedepth-infer", daemon=True)
        self._thread.start()

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
                for chunk in self.stager.plan_batches([staged for _, staged, _ in ready], self.batch):
                    t0 = time.perf_counter()
                    results = self.stager.run_batch(
                        [ready[i][1] for i in chunk], [self._stabilizers[ready[i][0]] for i in chunk]
                    )
                    self._infer_ms.append((time.perf_counter() - t0) * 1e3)
                    self._batches += 1
                    self._batched_frames += len(chunk)
                    for i, result in zip(chunk, results, strict=True):
                        index, staged, captured_s = ready[i]
                        if not self._put(self._results, (index, staged.bgr, result, captured_s)):
                            return
        except BaseException as exc:  # the model failed: every source is affected, the caller hears it
            self._error = exc
        self._put(self._results, None)

    # -- the consumer side ------------------------------------------------------------------------------
    def __next__(self) -> tuple[int, np.ndarray, DepthResult]:
        if self.max_frames is not None and self._frames >= self.max_frames:
            self.close()
        while not self._stop.is_set():
            try:
                item = self._results.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is None:
                self.close()
                if self._error is not None:
                    raise self._error
                failed = [x.ended_by for x in self.stats.sources if x.ended_by.startswith("error")]
                if len(failed) == len(self.sources):
                    raise SourceError("every source failed: " + "; ".join(f[7:] for f in failed))
                break
            index, bgr, result, captured_s = item
            self._frames += 1
            self._delivered[index] += 1
            self.captured_at = wall_clock(captured_s)
            return index, bgr, result
        raise StopIteration

    @property
    def stats(self) -> MultiStreamStats:
        elapsed = time.perf_counter() - self._t0
        per_source = [
            SourceStats(i, uri, 0, 0.0, 0, 0, SourceState.FAILED.value, f"error: {why}")
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
                    state=src.state.value,
                    ended_by=r.ended_by,
                )
            )
        per_source.sort(key=lambda x: x.index)
        return MultiStreamStats(
            frames=self._frames,
            elapsed_s=elapsed,
            fps=self._frames / elapsed if elapsed > 0 else 0.0,
            batches=self._batches,
            mean_batch=self._batched_frames / self._batches if self._batches else 0.0,
            infer_ms_median=median(self._infer_ms),
            sources=per_source,
        )

    def close(self) -> None:
        """Stop every thread and source; returns within about a second."""
        if self._stop.is_set():
            return
        self._stop.set()
        for r in self._readers:
            r.stop.set()
            if not r.ended_by:
                r.ended_by = "closed"
            r.source.close()
        self._join([self._thread, *(r.thread for r in self._readers)])
