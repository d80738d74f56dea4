"""VideoSource: cameras, video files, image folders, RGB-D folders, network streams and GStreamer pipelines
behind one API. Every source, built in or wrapped with ``VideoSource.from_capture``, runs through a
grabber thread (``grabber.py``): live sources hand out only the newest frame, file sources every frame in
order.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..errors import InputError, SourceError
from .grabber import JOIN_TIMEOUT_S, FileGrabber, FrameGrabber, LiveGrabber
from .kinds import (
    ACCEPTED,
    LIVE_KINDS,
    OPENERS,
    STREAM_BLOCKING_S,
    SourceKind,
    classify_source,
    diagnose_stream,
    opencv_has,
)
from .records import (
    CaptureLike,
    CaptureStats,
    Frame,
    Opener,
    ReadStatus,
    SourceState,
    StatusEvent,
    as_opener,
    describe_capture,
    release_quietly,
)


@dataclass(frozen=True)
class SourceOptions:
    """How a source is read. ``timeout_s`` bounds each read (TIMEOUT after it). Live sources: ``reconnect``
    reopens a source whose reads fail, waiting ``backoff_s`` (first, longest) between attempts; one that
    stays down (stalled, disconnected or reconnecting) for ``reconnect_timeout_s`` fails with ERROR; a
    stall (no frame while the capture's read hangs) is reported after ``stall_timeout_s``; ``on_status``
    receives every StatusEvent (from the capture thread: keep it short). File sources: ``loop`` restarts
    them at their end."""

    timeout_s: float = 1.0
    reconnect: bool = True
    backoff_s: tuple[float, float] = (0.25, 1.0)
    reconnect_timeout_s: float = 10.0
    stall_timeout_s: float = 1.5  # with the watchdog's period, a stall is reported within 2 s
    loop: bool = False
    on_status: Callable[[StatusEvent], object] | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_s", "reconnect_timeout_s", "stall_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"{name}={value!r} must be a positive number of seconds")
        if len(self.backoff_s) != 2 or not 0 < self.backoff_s[0] <= self.backoff_s[1]:
            raise InputError(
                f"backoff_s={self.backoff_s!r} must be (initial, max) seconds with 0 < initial <= max"
            )


class VideoSource:
    """Frames from any source through one API: ``read()``, iteration, ``stats`` and ``close()``.

    Options are those of :class:`SourceOptions` (``timeout_s``, ``reconnect``, ``backoff_s``,
    ``reconnect_timeout_s``, ``stall_timeout_s``, ``loop``, ``on_status``); ``api_preference`` is a
    cv2.CAP_* backend. Raises SourceError if the source cannot be opened.
    """

    def __init__(
        self, uri: int | str | os.PathLike[str], *, api_preference: int | None = None, **options: Any
    ) -> None:
        kind = classify_source(uri)
        text = str(uri) if isinstance(uri, int) else os.fspath(uri).strip()
        opener = OPENERS[kind](text, api_preference)
        self._start(opener, kind, kind in LIVE_KINDS, text, SourceOptions(**options))

    @classmethod
    def from_capture(
        cls,
        capture: CaptureLike | Opener,
        live: bool = True,
        uri: str = "<custom>",
        *,
        kind: SourceKind | None = None,
        **options: Any,
    ) -> VideoSource:
        """Wrap a cv2.VideoCapture-like object, or a zero-arg callable making one (needed to reconnect)."""
        source = cls.__new__(cls)
        kind = kind or (SourceKind.CAMERA if live else SourceKind.FILE)
        source._start(as_opener(capture), kind, live, uri, SourceOptions(**options))
        return source

    def _start(self, opener: Opener, kind: SourceKind, live: bool, uri: str, options: SourceOptions) -> None:
        self._kind, self._live, self._uri, self._timeout_s = kind, live, uri, float(options.timeout_s)
        self._last_error: str | None = None
        try:
            capture = opener()
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                f"cannot open {kind.value} source '{uri}': {exc}; accepted: {ACCEPTED}"
            ) from exc
        if not capture.isOpened():
            release_quietly(capture)
            if kind is SourceKind.STREAM:  # a well-formed URL: say what failed, not which forms exist
                raise SourceError(f"cannot open stream '{uri}': {diagnose_stream(uri)}")
            hint = ""
            if kind is SourceKind.GSTREAMER and not opencv_has("GStreamer"):
                hint = " (this OpenCV build has no GStreamer support)"
            raise SourceError(f"cannot open {kind.value} source '{uri}'{hint}; accepted: {ACCEPTED}")
        self._fps_hint, self._frame_size = describe_capture(capture)
        name = f"edgedepth-capture[{uri}]"
        self._grabber: FrameGrabber = (
            LiveGrabber(
                capture,
                opener,
                reconnect=options.reconnect,
                backoff_s=(float(options.backoff_s[0]), float(options.backoff_s[1])),
                reconnect_timeout_s=float(options.reconnect_timeout_s),
                stall_timeout_s=float(options.stall_timeout_s),
                name=name,
                on_status=options.on_status,
                # FFmpeg's timeouts bound a stream's blocking calls; close() waits them out, no longer
                join_timeout_s=STREAM_BLOCKING_S + 0.5 if kind is SourceKind.STREAM else JOIN_TIMEOUT_S,
            )
            if live
            else FileGrabber(capture, opener, loop=options.loop, name=name, on_status=options.on_status)
        )
        weakref.finalize(self, self._grabber.close, 0.0)  # a forgotten source stops its thread when collected

    def read(self, timeout_s: float | None = None) -> Frame:
        """The next frame (live: the newest one not yet returned), or TIMEOUT / END_OF_STREAM / ERROR."""
        frame = self._grabber.read(self._timeout_s if timeout_s is None else timeout_s)
        if frame.status is ReadStatus.ERROR:
            self._last_error = frame.error
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """OK frames until END_OF_STREAM, ERROR (then see ``last_error``) or CLOSED; timeouts are skipped."""
        while True:
            frame = self.read()
            if frame.status is ReadStatus.OK:
                yield frame
            elif frame.status is not ReadStatus.TIMEOUT:
                return

    def close(self) -> None:
        """Stop the grabber and wake any read waiting in another thread. The capture thread is joined: within
        about 1 s, a network stream within FFmpeg's open/read timeout (a stalled server: at most 5.5 s)."""
        self._grabber.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoSource({self._uri!r}, kind={self._kind.name})"

    @property
    def stats(self) -> CaptureStats:
        return self._grabber.stats()

    @property
    def state(self) -> SourceState:
        return self._grabber.stats().state

    @property
    def kind(self) -> SourceKind:
        return self._kind

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def is_live(self) -> bool:
        return self._live

    @property
    def fps_hint(self) -> float | None:
        """The container's frame rate when it states one, else None."""
        return self._fps_hint

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) from the container, else from the newest captured frame, else None."""
        return self._frame_size or self._grabber.last_size

    @property
    def last_error(self) -> str | None:
        """The message of the last ERROR read, so a loop that ended can say why."""
        return self._last_error
