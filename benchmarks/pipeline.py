"""The pipeline around the model: preprocessing alone, and the stream end to end against model-only FPS.

Preprocessing: the CPU reference (``edgedepth.preprocess``) and, with a GPU, the fused CUDA kernel, each
taking a BGR frame to the model input at each size as the estimator does (letterbox to a square input).
The CPU path is timed with perf_counter, the CUDA path with CUDA events on its stream: from before the
page-locked copy and upload to the end of the kernel, i.e. what a TensorRT pipeline waits for.

Stream: ``DepthEstimator.stream`` over a video file (decode, preprocess, inference and postprocess in
their threads), timed by the pipeline from its start to the last frame delivered. Model-only: the same
estimator's backend alone on the video's first frame preprocessed exactly as the stream does it (the
frame's aspect kept at the long side asked for). The two alternate round by round so drift in the
machine's speed affects both alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedepth.artifact import ModelSpec, Precision
from edgedepth.errors import SourceError
from edgedepth.estimator import DepthEstimator
from edgedepth.preprocess import preprocess

from .latency import PerfCounterTimer, Timer, fps_from, latency_stats

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


def first_frame(video: str | Path) -> np.ndarray:
    """The first decoded frame of a video file (BGR); SourceError when it cannot be read."""
    capture = cv2.VideoCapture(str(video))
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise SourceError(f"--video {video}: OpenCV cannot read a frame from it")
    return frame


def model_only_latencies(
    infer: Callable[[], Any], runs: int, warmup: int, timer: Timer | None = None
) -> list[float]:
    """Latencies in ms of ``runs`` calls after ``warmup`` untimed ones."""
    timer = timer or PerfCounterTimer()
    for _ in range(warmup):
        infer()
    return [timer.time_call(infer) for _ in range(runs)]


@dataclass(frozen=True)
class StreamPass:
    frames: int
    fps: float
    dropped: int
    latency_ms_median: float


def stream_once(est: DepthEstimator, video: str | Path, max_frames: int | None = None) -> StreamPass:
    """One pass of ``est.stream`` over ``video`` (at most ``max_frames``), the loop colourising every
    result to the frame's size as the video and web outputs do."""
    with est.stream(str(video), max_frames=max_frames) as frames:
        n = sum(1 for item in frames if item.result.colorize(at_model_resolution=True) is not None)
        stats = frames.stats
    return StreamPass(n, stats.fps, stats.dropped, stats.latency_ms_median)


def measure_stream(
    est: DepthEstimator,
    video: str | Path,
    rounds: int,
    runs: int,
    warmup: int,
    max_frames: int | None = None,
    on_round: Callable[[int, float, StreamPass], None] | None = None,
) -> dict[str, Any]:
    """Alternate model-only blocks and stream passes; medians, the stream's fraction of model-only FPS."""
    frame = first_frame(video)
    _, x, _ = est.prepare(frame)
    infer = lambda: est.backend.infer(x)  # noqa: E731  (the estimator's own backend, as the stream uses)
    samples: list[float] = []
    passes: list[StreamPass] = []
    for r in range(rounds):
        block = model_only_latencies(infer, runs, warmup if r == 0 else 1)
        samples += block
        passes.append(stream_once(est, video, max_frames))
        if on_round is not None:
            on_round(r, fps_from(statistics.median(block), 1), passes[-1])
    latency = latency_stats(samples)
    model_fps = fps_from(latency["p50"], 1)
    stream_fps = statistics.median(p.fps for p in passes)
    return {
        "source_hw": list(frame.shape[:2]),
        "input_hw": list(x.shape[2:]),
        "frames_per_pass": passes[-1].frames,
        "stream_fps": stream_fps,
        "stream_fps_per_round": [p.fps for p in passes],
        "stream_latency_ms_median": statistics.median(p.latency_ms_median for p in passes),
        "dropped": sum(p.dropped for p in passes),
        "model_only_latency_ms": latency,
        "model_only_fps": model_fps,
        "stream_fraction_of_model_only": stream_fps / model_fps,
    }


def open_estimator(
    model: str | Path | None,
    backend: str,
    precision: Precision | str,
    threads: int | None,
    long_side: int | None = None,
) -> DepthEstimator:
    """The estimator a user would open, at ``long_side`` pixels on the frame's longer side."""
    return DepthEstimator(model, backend=backend, precision=precision, threads=threads, long_side=long_side)
