"""Reduced-precision artifacts: NNCF INT8, FP16 and TensorRT engines. Installed as ``edgedepth_quantize``.

    from edgedepth_quantize import GateConfig, PTQSettings, quantize_int8
    report = quantize_int8("model-fp32.onnx", "model-int8.onnx", ["photos/", "clip.mp4"],
                           GateConfig(rgbd="val_rgbd/"))   # AccuracyGateError: nothing written

Submodules load on first use (NNCF only when quantizing), so ``import edgedepth_quantize`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule; imported on first use, so that e.g. the engine builder does not pull in onnx or NNCF.
_EXPORTS = {
    "AccuracyGateError": "errors",
    "CalibrationError": "errors",
    "EngineBuildError": "errors",
    "CalibrationData": "calibration",
    "gather_calibration": "calibration",
    "convert_fp16": "fp16",
    "export_fp16": "fp16",
    "export_fp16_weights": "fp16",
    "store_weights_fp16": "fp16",
    "GateConfig": "gate",
    "GateReport": "gate",
    "evaluate": "gate",
    "publish": "gate",
    "PTQSettings": "ptq",
    "quantize_int8": "ptq",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def main(argv: list[str] | None = None) -> int:
    """The ``edgedepth-quantize`` command: checks the [quantize] extra first, then runs ``cli.main``."""
    import sys

    from edgedepth.extras import MissingExtraError, require_extra

    try:
        require_extra("quantize", "edgedepth-quantize")
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .cli import main as run

    return run(argv)
