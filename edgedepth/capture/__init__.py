"""Frames in and out: VideoSource (cameras, files, folders, streams, GStreamer) and VideoOutput (files,
windows).

- ``kinds``: which kind of source a uri names, and how each kind opens (the Jetson CSI pipeline too);
- ``records``: what a read returns (Frame, ReadStatus), a source's counters, what a capture must provide;
- ``grabber``: the thread that reads a source, live or file;
- ``source``: VideoSource; ``output``: VideoOutput.
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
)
from .output import WINDOW, VideoOutput
from .records import CaptureLike, CaptureStats, Frame, ReadStatus, SourceState, StatusEvent
from .source import SourceOptions, VideoSource

__all__ = [
    "ACCEPTED",
    "GLOB_CHARS",
    "IMAGE_SUFFIXES",
    "LIVE_KINDS",
    "WINDOW",
    "CaptureLike",
    "CaptureStats",
    "Frame",
    "ImageSequenceCapture",
    "ReadStatus",
    "SourceKind",
    "SourceOptions",
    "SourceState",
    "StatusEvent",
    "VideoOutput",
    "VideoSource",
    "classify_source",
    "jetson_csi_pipeline",
    "list_images",
]
