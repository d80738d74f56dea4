"""edgedepth: fast monocular depth estimation on edge devices.

The runtime needs numpy, OpenCV and one inference backend; it never imports torch. Heavy modules load
lazily, so ``import edgedepth`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .artifact import ModelSpec
from .embedded import DEFAULT_MODEL, default_model_path
from .errors import (
    BackendUnavailableError,
    EdgeDepthError,
    InputError,
    ModelLoadError,
    SourceError,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "BackendUnavailableError",
    "DepthEstimator",
    "DepthResult",
    "EdgeDepthError",
    "InputError",
    "ModelLoadError",
    "ModelSpec",
    "SourceError",
    "VideoSource",
    "__version__",
    "default_model_path",
]

_LAZY = {"DepthEstimator": "estimator", "DepthResult": "result", "VideoSource": "capture"}

if TYPE_CHECKING:  # the type checker sees the lazily imported names as what they are
    from .capture import VideoSource
    from .estimator import DepthEstimator
    from .result import DepthResult


def __getattr__(name: str) -> object:
    """Import the facade and capture modules on first use, keeping ``import edgedepth`` light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
