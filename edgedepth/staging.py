"""Renamed: the frame stager is :class:`edgedepth.predictor.Predictor` and ``DepthResult`` lives in
``edgedepth.result``. These names keep working for one release, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any

from . import predictor, result

_MOVED = {"DepthResult": result, "Refine": result, "StagedFrame": predictor, "DEPTH_EPS": predictor}


def __getattr__(name: str) -> Any:
    if name == "FrameStager":
        warnings.warn("edgedepth.staging.FrameStager is edgedepth.predictor.Predictor", DeprecationWarning, 2)
        return predictor.Predictor
    if name in _MOVED:
        module = _MOVED[name]
        warnings.warn(
            f"edgedepth.staging.{name} moved to {module.__name__}", DeprecationWarning, stacklevel=2
        )
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
