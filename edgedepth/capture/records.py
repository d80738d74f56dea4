"""The records a source hands out and what a capture object must provide.

``CaptureLike`` is the part of cv2.VideoCapture a source needs; ``Frame`` is one read's result;
``CaptureStats`` a snapshot of a source's counters. The helpers turn capture objects into openers and read
what they know about themselves.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import cv2
import numpy as np

from ..errors import InputError, SourceError


class CaptureLike(Protocol):
    """The part of cv2.VideoCapture a source needs; ``get(prop)`` and a ``corrupt`` counter are optional."""

    def read(self) -> tuple[bool, Any]: ...

    def isOpened(self) -> bool: ...

    def release(self) -> None: ...


Opener = Callable[[], CaptureLike]


class ReadStatus(Enum):
    """What a read produced: a frame, nothing yet, a finished source or a failed one."""

    OK = "ok"
    TIMEOUT = "timeout"
    END_OF_STREAM = "end_of_stream"
    ERROR = "error"
    CLOSED = "closed"  # the source was closed (by the caller), not a normal end


class SourceState(Enum):
    """What a source is doing; a live source moves between the first four and reports each change."""

    RUNNING = "running"  # frames arrive
    STALLED = "stalled"  # live: no frame for stall_timeout_s (the capture's read has not returned)
    DISCONNECTED = "disconnected"  # live: reading failed
    RECONNECTING = "reconnecting"  # live: reopening, with backoff
    RESUMED = "resumed"  # live: frames arrive again after an outage (an event; the state is RUNNING)
    ENDED = "ended"  # the file or stream ended normally
    FAILED = "failed"  # the source is gone (see the event's detail)
    CLOSED = "closed"


@dataclass(frozen=True)
class StatusEvent:
    """One change of a source's state, with ``time.monotonic()`` when it happened and why."""

    state: SourceState
    time_s: float
    detail: str = ""


@dataclass(frozen=True, eq=False)
class Frame:
    """One result of ``VideoSource.read()``: a BGR uint8 image with its capture index and time, or a status.

    ``index`` counts frames in capture order (-1 when there is no image); ``timestamp_s`` is time.monotonic()
    when the frame was captured (or when the read returned, without an image).
    """

    status: ReadStatus
    image: np.ndarray | None = None
    index: int = -1
    timestamp_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is ReadStatus.OK

    @property
    def age_ms(self) -> float:
        """Milliseconds since capture: how stale the frame is by the time it is used."""
        return (time.monotonic() - self.timestamp_s) * 1000.0


@dataclass(frozen=True)
class CaptureStats:
    """A consistent snapshot of a source's counters, taken under one lock."""

    frames_read: int  # OK frames returned to the caller
    frames_captured: int  # frames the grabber got from the capture
    dropped: int  # live only: frames overwritten before anyone read them
    corrupt: int  # images that failed to decode and were skipped
    reconnects: int  # successful reopenings of a live source
    timeouts: int  # reads that returned TIMEOUT
    capture_fps: float  # over the last FPS_WINDOW captures; 0.0 before two
    last_frame_age_ms: float | None  # since the newest capture; None before the first
    state: SourceState = SourceState.RUNNING
    events: tuple[StatusEvent, ...] = ()  # the latest state changes, oldest first


def reports_end(capture: CaptureLike) -> bool:
    """True when a capture with a known frame count says it is past the last frame (an explicit end)."""
    get = getattr(capture, "get", None)
    if get is None:
        return False
    try:
        total, position = float(get(cv2.CAP_PROP_FRAME_COUNT)), float(get(cv2.CAP_PROP_POS_FRAMES))
    except Exception:  # a capture-like object may not know the property
        return False
    return total > 0 and position >= total


def release_quietly(capture: CaptureLike | None) -> None:
    """Release a capture, ignoring errors: it is being thrown away."""
    if capture is not None:
        with contextlib.suppress(Exception):
            capture.release()


def as_opener(capture: CaptureLike | Opener) -> Opener:
    """An object is used once (it cannot be reopened); a zero-arg callable is called for every (re)open."""
    if hasattr(capture, "read"):
        handed: list[CaptureLike] = [capture]  # type: ignore[list-item]

        def reuse_once() -> CaptureLike:
            if not handed:
                raise SourceError(
                    "a capture object cannot be reopened; pass a zero-arg callable to from_capture to reconnect"
                )
            return handed.pop()

        return reuse_once
    if callable(capture):
        return capture
    raise InputError(f"from_capture needs a capture-like object or a zero-arg callable, got {capture!r}")


def describe_capture(capture: CaptureLike) -> tuple[float | None, tuple[int, int] | None]:
    """The container's FPS and frame size when the capture knows them."""
    get = getattr(capture, "get", None)
    if get is None:
        return None, None
    try:
        fps, width, height = (
            float(get(p)) for p in (cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
        )
    except Exception:  # a capture-like object may not know these properties
        return None, None
    fps_hint = fps if math.isfinite(fps) and 0 < fps < 10_000 else None
    return fps_hint, ((int(width), int(height)) if width > 0 and height > 0 else None)
