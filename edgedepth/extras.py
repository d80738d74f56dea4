"""The optional extras: which modules each one brings, and one clear message when one is missing.

Commands of the training, quantization and benchmark trees check their extra before importing anything
heavy, so a plain ``pip install edgedepth`` answers ``edgedepth-train`` with the install command instead
of a ModuleNotFoundError traceback.
"""

from __future__ import annotations

import importlib.util

from .errors import EdgeDepthError

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "yaml", "onnx", "safetensors", "efficientnet_lite_pytorch"),
    "quantize": ("onnx", "nncf", "yaml"),
    "benchmarks": ("onnx",),
    "ros2": ("mcap", "mcap_ros2", "cyclonedds"),
}


class MissingExtraError(EdgeDepthError):
    """A command needs an optional extra that is not installed."""


def missing_modules(extra: str) -> list[str]:
    missing = []
    for name in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or blocked package
            found = False
        if not found:
            missing.append(name)
    return missing


def require_extra(extra: str, what: str) -> None:
    """Raise MissingExtraError naming the install command when ``extra``'s modules are not all there."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(
            f"{what} needs the [{extra}] extra: pip install edgedepth[{extra}] (missing: {', '.join(missing)})"
        )
