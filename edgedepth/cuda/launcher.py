"""Run the fused preprocessing kernel through pycuda: pinned upload, kernel, output in a device buffer.

pycuda ships no type information; its objects are typed as ``Any`` here (mypy sees it as an untyped
import), and everything this module computes itself is typed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifact import Interpolation, ModelSpec
from ..errors import BackendUnavailableError, InputError
from ..preprocess import ResizePlan, plan_resize
from . import KERNEL_SOURCE, KERNELS, kernel_params

BLOCK = (16, 16, 1)


class CudaPreprocessor:
    """Preprocess BGR frames on the GPU into a device buffer (e.g. a TensorRT input binding).

    Frames up to ``max_src_hw`` reuse page-locked host buffers and one device buffer, so the upload is
    asynchronous on ``stream``. A batch stages each frame in its own host ``slot`` (the CPU fills slot i+1
    while slot i is still uploading); the device buffer is reused safely because the uploads and kernels of
    one stream run in order. Needs an active CUDA context (the TensorRT backend owns it).
    """

    def __init__(
        self, spec: ModelSpec, max_src_hw: tuple[int, int], precision: str = "fp32", slots: int = 1
    ) -> None:
        if spec.interpolation is not Interpolation.LINEAR:
            raise InputError(
                f"CUDA preprocessing is bilinear; {spec.name} asks for {spec.interpolation.value} interpolation"
            )
        if precision not in KERNELS:
            raise InputError(f"precision={precision!r} is not valid; choose one of {', '.join(KERNELS)}")
        try:
            import pycuda.driver as cuda
            from pycuda.compiler import SourceModule
        except ImportError as exc:
            raise BackendUnavailableError(
                f"pycuda is not available ({exc}); pip install edgedepth[tensorrt]"
            ) from None
        self.spec = spec
        self._cuda: Any = cuda
        module: Any = SourceModule(KERNEL_SOURCE.read_text(), no_extern_c=True)
        self._kernel: Any = module.get_function(KERNELS[precision])
        h, w = max_src_hw
        self._capacity = h * w * 3
        self.max_src_hw, self.slots = (h, w), slots
        self._pinned: Any = cuda.pagelocked_empty((slots, self._capacity), np.uint8)
        self._device_src: Any = cuda.mem_alloc(self._capacity)

    def __call__(
        self,
        bgr: np.ndarray,
        out_ptr: int,
        out_hw: tuple[int, int] | None = None,
        stream: Any = None,
        slot: int = 0,
    ) -> ResizePlan:
        """Upload ``bgr`` and write the model input into device memory at ``out_ptr``; returns the plan."""
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise InputError(f"CUDA preprocessing expects HxWx3 uint8 BGR, got {bgr.dtype} {bgr.shape}")
        if bgr.size > self._capacity:
            raise InputError(
                f"frame {bgr.shape[:2]} exceeds the preprocessor's capacity ({self._capacity // 3} pixels)"
            )
        plan = plan_resize(bgr.shape[:2], self.spec, out_hw)
        staged = self._pinned[slot, : bgr.size]
        np.copyto(staged.reshape(bgr.shape), bgr)
        self._cuda.memcpy_htod_async(self._device_src, staged, stream)
        oh, ow = plan.out_hw
        grid = ((ow + BLOCK[0] - 1) // BLOCK[0], (oh + BLOCK[1] - 1) // BLOCK[1], 1)
        self._kernel(
            self._device_src,
            np.uintp(out_ptr),
            kernel_params(plan, self.spec),
            block=BLOCK,
            grid=grid,
            stream=stream,
        )
        return plan
