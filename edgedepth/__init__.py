"""edgedepth: fast monocular depth estimation on edge devices.

The runtime needs numpy, OpenCV and one inference backend; it never imports torch. Heavy modules load
lazily, so ``import edgedepth`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from .artifact import ModelSpec, Precision
from .errors import (
    AccuracyGateError,
    BackendUnavailableError,
    CalibrationError,
    EdgeDepthError,
    InputError,
    ModelLoadError,
    SourceError,
)

__version__ = "0.1.0"

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "efficientdepth-s"

__all__ = [
    "DEFAULT_MODEL",
    "AccuracyGateError",
    "BackendUnavailableError",
    "CalibrationError",
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

_LAZY = {"DepthEstimator": "estimator", "DepthResult": "estimator", "VideoSource": "capture"}


def __getattr__(name: str) -> object:
    """Import the facade and capture modules on first use, keeping ``import edgedepth`` light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_model_path(precision: str | Precision = "fp32") -> Path:
    """Path of the embedded default model file for ``precision`` (fp32 or int8)."""
    from .artifact import parse_enum

    try:
        prec = parse_enum(Precision, precision, "precision")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    path = MODELS_DIR / f"{DEFAULT_MODEL}-{prec.value}.onnx"
    if not path.is_file():
        shipped = sorted(p.name for p in MODELS_DIR.glob("*.onnx"))
        raise ModelLoadError(
            f"no embedded {prec.value} model at {path}; shipped models: {', '.join(shipped) or 'none'}"
        )
    return path
