"""Frames in: VideoSource (cameras, files, folders, streams, GStreamer). Outputs are their peers in
``edgedepth.output``. This package imports nothing of the runtime above its errors and frame-folder layout.

- ``kinds``: which kind of source a uri names, and how each kind opens (the Jetson CSI pipeline too);
- ``records``: what a read returns (Frame, ReadStatus), a source's counters, what a capture must provide;
- ``grabber``: the thread that reads a source, live or file;
- ``source``: VideoSource.
"""

from __future__ import annotations

from .kinds import (
    ACCEPTED,
    GLOB_CHARS,
    IMAGE_SUFFIXES,
    LIVE_KINDS,
    ImageSequenceCapture,
    SourceKind,
    classify_source,
    jetson_csi_pipeline,
    list_images,
    read_video_frames,
)
from .records import CaptureLike, CaptureStats, Frame, ReadStatus, SourceState, StatusEvent
from .source import SourceOptions, VideoSource

__all__ = [
    "ACCEPTED",
    "GLOB_CHARS",
    "IMAGE_SUFFIXES",
    "LIVE_KINDS",
    "CaptureLike",
    "CaptureStats",
    "Frame",
    "ImageSequenceCapture",
    "ReadStatus",
    "SourceKind",
    "SourceOptions",
    "SourceState",
    "StatusEvent",
    "VideoSource",
    "classify_source",
    "jetson_csi_pipeline",
    "list_images",
    "read_video_frames",
]


def __getattr__(name: str) -> object:
    """VideoOutput and WINDOW moved to ``edgedepth.output``; the old names work for one release, with a
    DeprecationWarning."""
    if name not in ("VideoOutput", "WINDOW"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(
        f"edgedepth.capture.{name} moved to edgedepth.output.{name}", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module("edgedepth.output"), name)  # by name: no upward import edge
