"""VideoSource: cameras, video files, image folders, RGB-D folders, network streams and GStreamer pipelines
behind one API. Every source, built in or wrapped with ``VideoSource.from_capture``, runs through a
grabber thread (``grabber.py``): live sources hand out only the newest frame, file sources every frame in
order.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from types import TracebackType

from ..errors import InputError, SourceError
from .grabber import FileGrabber, FrameGrabber, LiveGrabber
from .kinds import ACCEPTED, LIVE_KINDS, OPENERS, SourceKind, classify_source, diagnose_stream, opencv_has
from .records import (
    CaptureLike,
    CaptureStats,
    Frame,
    Opener,
    ReadStatus,
    as_opener,
    describe_capture,
    release_quietly,
)


class VideoSource:
    """Frames from any source through one API: ``read()``, iteration, ``stats`` and ``close()``.

    ``timeout_s`` bounds each read (TIMEOUT after it); ``reconnect`` and ``backoff_s`` (initial, max seconds)
    govern reopening a live source whose reads fail; ``loop`` restarts file sources at their end (live sources
    ignore it); ``api_preference`` is a cv2.CAP_* backend. Raises SourceError if the source cannot be opened.
    """

    def __init__(
        self,
        uri: int | str | os.PathLike[str],
        *,
        timeout_s: float = 1.0,
        reconnect: bool = True,
        backoff_s: tuple[float, float] = (0.5, 8.0),
        loop: bool = False,
        api_preference: int | None = None,
    ) -> None:
        kind = classify_source(uri)
        text = str(uri) if isinstance(uri, int) else os.fspath(uri).strip()
        opener = OPENERS[kind](text, api_preference)
        self._start(opener, kind, kind in LIVE_KINDS, text, timeout_s, reconnect, backoff_s, loop)

    @classmethod
    def from_capture(
        cls,
        capture: CaptureLike | Opener,
        live: bool = True,
        uri: str = "<custom>",
        *,
        kind: SourceKind | None = None,
        timeout_s: float = 1.0,
        reconnect: bool = True,
        backoff_s: tuple[float, float] = (0.5, 8.0),
        loop: bool = False,
    ) -> VideoSource:
        """Wrap a cv2.VideoCapture-like object, or a zero-arg callable making one (needed to reconnect)."""
        source = cls.__new__(cls)
        kind = kind or (SourceKind.CAMERA if live else SourceKind.FILE)
        source._start(as_opener(capture), kind, live, uri, timeout_s, reconnect, backoff_s, loop)
        return source

    def _start(
        self,
        opener: Opener,
        kind: SourceKind,
        live: bool,
        uri: str,
        timeout_s: float,
        reconnect: bool,
        backoff_s: tuple[float, float],
        loop: bool,
    ) -> None:
        if not timeout_s > 0:
            raise InputError(f"timeout_s={timeout_s!r} must be a positive number of seconds")
        if len(backoff_s) != 2 or not 0 < backoff_s[0] <= backoff_s[1]:
            raise InputError(
                f"backoff_s={backoff_s!r} must be (initial, max) seconds with 0 < initial <= max"
            )
        self._kind, self._live, self._uri, self._timeout_s = kind, live, uri, float(timeout_s)
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
        backoff = (float(backoff_s[0]), float(backoff_s[1]))
        self._grabber: FrameGrabber = (
            LiveGrabber(capture, opener, reconnect=reconnect, backoff_s=backoff, name=name)
            if live
            else FileGrabber(capture, opener, loop=loop, name=name)
        )
        weakref.finalize(self, self._grabber.close, 0.0)  # a forgotten source stops its thread when collected

    def read(self, timeout_s: float | None = None) -> Frame:
        """The next frame (live: the newest one not yet returned), or TIMEOUT / END_OF_STREAM / ERROR."""
        frame = self._grabber.read(self._timeout_s if timeout_s is None else timeout_s)
        if frame.status is ReadStatus.ERROR:
            self._last_error = frame.error
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """OK frames until END_OF_STREAM or ERROR (then see ``last_error``); timeouts are skipped."""
        while True:
            frame = self.read()
            if frame.status is ReadStatus.OK:
                yield frame
            elif frame.status is not ReadStatus.TIMEOUT:
                return

    def close(self) -> None:
        """Stop the grabber (joined within about 1 s) and wake any read waiting in another thread."""
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
