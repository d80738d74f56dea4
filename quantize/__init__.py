"""Reduced-precision artifacts: NNCF INT8, FP16 and TensorRT engines. Installed as ``edgedepth_quantize``.

    from edgedepth_quantize import GateConfig, PTQSettings, quantize_int8
    report = quantize_int8("model-fp32.onnx", "model-int8.onnx", ["photos/", "clip.mp4"],
                           GateConfig(rgbd="val_rgbd/"))   # AccuracyGateError: nothing written

NNCF is imported only when quantizing, so ``import edgedepth_quantize`` stays light.
"""

from __future__ import annotations

from .calibration import CalibrationData, gather_calibration
from .fp16 import convert_fp16, export_fp16
from .gate import GateConfig, GateReport, evaluate, publish
from .ptq import PTQSettings, quantize_int8

__all__ = [
    "CalibrationData",
    "GateConfig",
    "GateReport",
    "PTQSettings",
    "convert_fp16",
    "evaluate",
    "export_fp16",
    "gather_calibration",
    "publish",
    "quantize_int8",
]
