"""One frame through the model: stage (load and preprocess), infer, finish (back to the frame's size).

``DepthEstimator.predict`` runs the three steps in a row; ``StreamPipeline`` runs staging on its capture
thread and the rest on its inference thread. Both go through :class:`FrameStager`, so the two paths cannot
drift apart. With a backend that preprocesses on its device (TensorRT's fused CUDA kernel), staging only
loads the frame and inference uploads and preprocesses it there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .artifact import ModelSpec, OutputKind
from .backends.base import Backend, FrameRunner
from .errors import InferenceError
from .preprocess import ResizePlan, preprocess, unpad_and_resize

if TYPE_CHECKING:
    from .intrinsics import Intrinsics
    from .metric import MetricFit

DEPTH_EPS = 1e-6  # depth outputs are inverted; this keeps a zero depth finite


@dataclass(frozen=True)
class DepthResult:
    """One prediction at the input image's resolution.

    ``inverse_depth`` is relative (affine-invariant): larger means nearer; align a scale and shift to
    metric data to get depth. Models whose spec says they output depth are inverted here, so every model
    reads the same way. ``confidence`` is the weight of the chosen mixture component, in [0, 1] (all ones
    for models without a confidence output).
    """

    inverse_depth: np.ndarray
    confidence: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)

    def colorize(
        self, cmap: str = "turbo", invert: bool = False, value_range: tuple[float, float] | None = None
    ) -> np.ndarray:
        """The inverse depth as a BGR uint8 image (near is warm with turbo)."""
        from .postprocess import colorize

        return colorize(self.inverse_depth, cmap=cmap, invert=invert, value_range=value_range)

    def to_metric(self, fit: MetricFit) -> np.ndarray:
        """Depth in metres under a scale fit (``edgedepth.metric.fit_points`` / ``fit_camera_height``)."""
        return fit.depth(self.inverse_depth)

    def point_cloud(
        self,
        intrinsics: Intrinsics,
        fit: MetricFit,
        image_bgr: np.ndarray | None = None,
        stride: int = 1,
        max_depth: float | None = None,
        min_confidence: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Metric (N, 3) points and, with the frame, their RGB colours; see ``edgedepth.pointcloud``."""
        from .pointcloud import point_cloud

        return point_cloud(
            self.to_metric(fit), intrinsics, stride, max_depth, self.confidence, min_confidence, image_bgr
        )


@dataclass(frozen=True)
class StagedFrame:
    """A frame ready for inference: the BGR image, and its model input and plan (None when the backend
    preprocesses on its device)."""

    bgr: np.ndarray
    input: np.ndarray | None
    plan: ResizePlan | None
    preprocess_ms: float


class FrameStager:
    """The three steps of one prediction, over a loaded backend.

    ``load`` turns an image argument (array or path) into a BGR array; ``input_hw`` picks the model input
    size for a frame size; ``frame_runner`` is the backend when it preprocesses on its device.
    """

    def __init__(
        self,
        backend: Backend,
        spec: ModelSpec,
        load: Callable[[Any], np.ndarray],
        input_hw: Callable[[tuple[int, int]], tuple[int, int]],
        frame_runner: FrameRunner | None = None,
    ) -> None:
        self.backend, self.spec = backend, spec
        self.load, self.input_hw, self.frame_runner = load, input_hw, frame_runner

    def prepare(self, image: Any) -> tuple[np.ndarray, np.ndarray, ResizePlan]:
        """Load and preprocess on the CPU: (BGR frame, model input, plan)."""
        bgr = self.load(image)
        x, plan = preprocess(bgr, self.spec, self.input_hw(bgr.shape[:2]))
        return bgr, x, plan

    def stage(self, image: Any) -> StagedFrame:
        t0 = time.perf_counter()
        if self.frame_runner is not None:
            bgr, x, plan = self.load(image), None, None
        else:
            bgr, x, plan = self.prepare(image)
        return StagedFrame(bgr, x, plan, (time.perf_counter() - t0) * 1e3)

    def infer(self, staged: StagedFrame) -> tuple[dict[str, np.ndarray], ResizePlan]:
        """Run the model on a staged frame: its CPU input, or the frame itself through device preprocessing."""
        if staged.input is not None and staged.plan is not None:
            return self.backend.infer(staged.input), staged.plan
        assert self.frame_runner is not None, "a frame staged without input needs device preprocessing"
        outputs, (plan,) = self.frame_runner.infer_frames([staged.bgr], self.input_hw(staged.bgr.shape[:2]))
        return outputs, plan

    def depth_map(self, outputs: dict[str, np.ndarray], name: str, index: int) -> np.ndarray:
        """Map ``index`` of output ``name``: (N, 1, H, W), or (N, H, W) as some third-party exports give it;
        any other shape raises InferenceError naming the model file."""
        value = outputs[name]
        if value.ndim == 3:
            value = value[:, None]
        if value.ndim != 4 or value.shape[1] != 1 or not 0 <= index < value.shape[0] or 0 in value.shape:
            raise InferenceError(
                f"{self.backend.source}: output {name!r} has shape {outputs[name].shape}; a depth model gives "
                "(N, 1, H, W) or (N, H, W) maps"
            )
        return value[index, 0]

    def finish(
        self, outputs: dict[str, np.ndarray], index: int, plan: ResizePlan, timings_ms: dict[str, float]
    ) -> DepthResult:
        """Output ``index`` of a batch mapped back to its frame: inverse depth and confidence."""
        out = unpad_and_resize(self.depth_map(outputs, self.spec.output_name, index), plan)
        if self.spec.output_kind is not OutputKind.INVERSE_DEPTH:
            out = 1.0 / np.maximum(out, DEPTH_EPS)
        conf_name = self.spec.confidence_name
        if conf_name and conf_name in outputs:
            conf = np.clip(unpad_and_resize(self.depth_map(outputs, conf_name, index), plan), 0.0, 1.0)
        else:
            conf = np.ones_like(out)
        return DepthResult(out, conf, timings_ms)

    def run(self, staged: StagedFrame) -> DepthResult:
        """Infer and finish a staged frame, with the time each step took."""
        t0 = time.perf_counter()
        outputs, plan = self.infer(staged)
        t1 = time.perf_counter()
        result = self.finish(outputs, 0, plan, {})
        timings = {
            "preprocess": staged.preprocess_ms,
            "infer": (t1 - t0) * 1e3,
            "postprocess": (time.perf_counter() - t1) * 1e3,
        }
        return DepthResult(result.inverse_depth, result.confidence, timings)
