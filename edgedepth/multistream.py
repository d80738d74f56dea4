"""Renamed: one :class:`edgedepth.stream.Stream` now serves one source or several. ``MultiStreamPipeline``,
``MultiStreamStats`` and ``SourceStats`` keep working for one release, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any

from . import stream

_MOVED = {"MultiStreamPipeline": "Stream", "MultiStreamStats": "StreamStats", "SourceStats": "SourceStats"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"edgedepth.multistream.{name} is edgedepth.stream.{_MOVED[name]}", DeprecationWarning, 2
        )
        return getattr(stream, _MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
