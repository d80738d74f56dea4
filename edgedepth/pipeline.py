"""Renamed: one :class:`edgedepth.stream.Stream` now serves one source or several. ``StreamPipeline`` and
``StreamStats`` keep working for one release, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any

from . import stream

_MOVED = {
    "StreamPipeline": "Stream",
    "StreamStats": "StreamStats",
    "POLL_S": "POLL_S",
    "wall_clock": "wall_clock",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(f"edgedepth.pipeline.{name} is edgedepth.stream.{_MOVED[name]}", DeprecationWarning, 2)
        return getattr(stream, _MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
