"""Preprocessing alone: the CPU reference (``edgedepth.preprocess``) and, with a GPU, the fused CUDA kernel.

Both take a BGR frame to the model input at each size, as the estimator does (letterbox to a square
input). The CPU path is timed with perf_counter, the CUDA path with CUDA events on its stream: from before
the page-locked copy and upload to the end of the kernel, i.e. what a TensorRT pipeline waits for.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgedepth.artifact import ModelSpec
from edgedepth.preprocess import preprocess

from .harness import PerfCounterTimer, latency_stats

REAL_SIZE_HW = (720, 1280)


def benchmark_frames(video_frame: np.ndarray) -> dict[str, np.ndarray]:
    """The video's own frame and the same picture at 1280x720, a common camera size."""
    h, w = REAL_SIZE_HW
    return {
        f"video {video_frame.shape[1]}x{video_frame.shape[0]}": video_frame,
        f"{w}x{h}": cv2.resize(video_frame, (w, h), interpolation=cv2.INTER_LINEAR),
    }


def cpu_rows(
    spec: ModelSpec, frames: dict[str, np.ndarray], sizes: list[tuple[int, int]], runs: int, warmup: int
) -> list[dict[str, Any]]:
    """One row per (frame, size): latency of ``preprocess`` on the CPU."""
    timer, rows = PerfCounterTimer(), []
    for label, frame in frames.items():
        for hw in sizes:
            call = lambda frame=frame, hw=hw: preprocess(frame, spec, hw)  # noqa: E731
            for _ in range(warmup):
                call()
            latency = latency_stats([timer.time_call(call) for _ in range(runs)])
            rows.append(_row("cpu", label, frame, hw, latency, timer.name))
    return rows


def cuda_rows(
    spec: ModelSpec, frames: dict[str, np.ndarray], sizes: list[tuple[int, int]], runs: int, warmup: int
) -> tuple[list[dict[str, Any]], str]:
    """Rows for the CUDA kernel, or none and the reason it cannot run here."""
    try:
        import pycuda.driver as cuda

        from edgedepth.cuda.launcher import CudaPreprocessor
    except Exception as exc:  # pycuda missing or broken
        return [], f"pycuda is not available ({type(exc).__name__}: {exc}); pip install edgedepth[tensorrt]"
    try:
        cuda.init()
        context = cuda.Device(0).retain_primary_context()
        context.push()
    except Exception as exc:
        return [], f"no usable CUDA device ({type(exc).__name__}: {exc})"
    try:
        return _time_cuda(cuda, CudaPreprocessor, spec, frames, sizes, runs, warmup), "cuda_events"
    except Exception as exc:  # kernel compilation (nvcc) or launch failures
        return [], f"the CUDA kernel failed ({type(exc).__name__}: {exc})"
    finally:
        context.pop()
        context.detach()


def _time_cuda(
    cuda: Any,
    preprocessor_type: Any,
    spec: ModelSpec,
    frames: dict[str, np.ndarray],
    sizes: list[tuple[int, int]],
    runs: int,
    warmup: int,
) -> list[dict[str, Any]]:
    largest = max((f.shape[:2] for f in frames.values()), key=lambda hw: hw[0] * hw[1])
    pre = preprocessor_type(spec, max_src_hw=largest)
    stream = cuda.Stream()
    start, end = cuda.Event(), cuda.Event()
    rows = []
    for label, frame in frames.items():
        for hw in sizes:
            out = cuda.mem_alloc(3 * hw[0] * hw[1] * 4)
            for _ in range(warmup):
                pre(frame, int(out), hw, stream)
            stream.synchronize()
            samples = []
            for _ in range(runs):
                start.record(stream)
                pre(frame, int(out), hw, stream)
                end.record(stream)
                end.synchronize()
                samples.append(float(start.time_till(end)))
            out.free()
            rows.append(_row("cuda", label, frame, hw, latency_stats(samples), "cuda_events"))
    return rows


def _row(
    device: str, label: str, frame: np.ndarray, hw: tuple[int, int], latency: dict[str, Any], timer: str
) -> dict[str, Any]:
    return {
        "device": device,
        "source": label,
        "source_hw": list(frame.shape[:2]),
        "input_hw": list(hw),
        "latency_ms": latency,
        "fps": 1e3 / latency["p50"],
        "timer": timer,
    }
