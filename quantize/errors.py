"""The quantizer's own errors (on top of the runtime's ``edgedepth.errors``)."""

from __future__ import annotations

from edgedepth.errors import EdgeDepthError


class CalibrationError(EdgeDepthError):
    """Calibration data is missing, too small or unusable."""


class AccuracyGateError(EdgeDepthError):
    """A reduced-precision model lost more accuracy than the gate allows; no artifact was written."""


class EngineBuildError(EdgeDepthError):
    """TensorRT could not parse the ONNX model or build an engine from it."""
