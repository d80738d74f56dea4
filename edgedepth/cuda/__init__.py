"""Fused CUDA preprocessing: the kernel source and the parameters it takes.

``preprocess.cu`` does resize, letterbox, BGR->RGB, normalisation and the NCHW layout in one pass. Its
parameters come from the same ``ResizePlan`` and ``normalize_constants`` as the CPU reference, so the two
cannot drift. ``launcher.CudaPreprocessor`` runs it through pycuda (imported only there).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from ..artifact import ColorOrder, ModelSpec
from ..preprocess import ResizePlan, normalize_constants

KERNEL_SOURCE = Path(__file__).resolve().with_name("preprocess.cu")
KERNELS = {"fp32": "preprocess_bgr_to_nchw_f32", "fp16": "preprocess_bgr_to_nchw_f16"}

# The layout of the kernel's ``struct PreprocessParams`` (4-byte fields, no padding).
PARAMS_DTYPE = np.dtype(
    [
        *[
            (name, np.int32)
            for name in (
                "src_h",
                "src_w",
                "src_stride",
                "out_h",
                "out_w",
                "scaled_h",
                "scaled_w",
                "pad_top",
                "pad_left",
            )
        ],
        ("scale_y", np.float32),
        ("scale_x", np.float32),
        ("mul", np.float32, 3),
        ("add", np.float32, 3),
        ("src_channel", np.int32, 3),
    ]
)


def kernel_params(plan: ResizePlan, spec: ModelSpec, src_stride: int | None = None) -> np.void:
    """Pack the kernel's parameters for one frame from the CPU reference's plan and constants."""
    src_h, src_w = plan.src_hw
    scale, offset = normalize_constants(spec)  # per BGR channel
    src_channel = [2, 1, 0] if spec.color_order is ColorOrder.RGB else [0, 1, 2]
    p = np.zeros((), dtype=PARAMS_DTYPE)
    p["src_h"], p["src_w"] = src_h, src_w
    p["src_stride"] = src_stride if src_stride is not None else 3 * src_w
    p["out_h"], p["out_w"] = plan.out_hw
    p["scaled_h"], p["scaled_w"] = plan.scaled_hw
    p["pad_top"], p["pad_left"] = plan.pad_top, plan.pad_left
    p["scale_y"] = src_h / plan.scaled_hw[0]
    p["scale_x"] = src_w / plan.scaled_hw[1]
    p["mul"] = scale[src_channel]
    p["add"] = offset[src_channel]
    p["src_channel"] = src_channel
    return cast(np.void, p[()])
